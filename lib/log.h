/*
 * One log module for every process: one line per event on stderr,
 *   2026-11-25T06:30:00Z scepd-ra[123] info txid=ABC req=7: message
 * The launcher collects its children's stderr, so nothing else is needed.
 */
#ifndef SCEPD_LOG_H
#define SCEPD_LOG_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

enum log_level {
	LOG_LEVEL_ERROR,
	LOG_LEVEL_WARN,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG
};

/* Names the process in every line; call once at start-up, before any
 * file is opened: descriptors 0 to 2, if closed, are taken by /dev/null
 * read-only (writing to them fails as before). */
void log_init(const char *service, enum log_level level);
/* Parses "error|warn|info|debug"; -1 when unknown. */
int log_level_parse(const char *name);

/* `t` as the log's lines stamp it, "2024-05-01T10:00:00Z" ("?" if it
 * cannot be one): for times a line names. */
#define LOG_TIME_LEN 24
void log_time(time_t t, char out[LOG_TIME_LEN]);

/* txid and reqid identify the SCEP transaction and the RPC request; NULL/0
 * when there is none. */
void log_event(enum log_level level, const char *txid, uint64_t reqid,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#define log_error(...) log_event(LOG_LEVEL_ERROR, NULL, 0, __VA_ARGS__)
#define log_warn(...) log_event(LOG_LEVEL_WARN, NULL, 0, __VA_ARGS__)
#define log_info(...) log_event(LOG_LEVEL_INFO, NULL, 0, __VA_ARGS__)
#define log_debug(...) log_event(LOG_LEVEL_DEBUG, NULL, 0, __VA_ARGS__)

/*
 * `in` made fit for one field of a log line, into `out` (at most outlen - 1
 * bytes, cut short at a whole escape): bytes that would end the field or
 * the line or reach a terminal (space, control characters, DEL and
 * beyond), open or close a quoted field ('"', '\\'), or forge a
 * "key=value" field ('=') are percent-encoded, '%' too, so that the text
 * decodes back to `in`. For what a client chose: a URL path, a method.
 */
void log_escape(char *out, size_t outlen, const char *in);

/* Logs `what` with every entry of OpenSSL's error queue, and empties it. */
void log_openssl(enum log_level level, const char *txid, const char *what);

#endif
