#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static const char *log_service = "scepd";
static enum log_level log_threshold = LOG_LEVEL_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void
log_init(const char *service, enum log_level level)
{
	log_service = service;
	log_threshold = level;
}

int
log_level_parse(const char *name)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]);
	     i++)
		if (strcasecmp(name, level_names[i]) == 0)
			return (int)i;
	return -1;
}

void
log_time(time_t t, char out[LOG_TIME_LEN])
{
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(out, LOG_TIME_LEN, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, LOG_TIME_LEN, "?");
}

void
log_escape(char *out, size_t outlen, const char *in)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = 0;

	if (outlen == 0)
		return;
	for (; *in != '\0'; in++) {
		unsigned char b = (unsigned char)*in;

		if (b > 0x20 && b < 0x7f && b != '"' && b != '%' && b != '\\' &&
		    b != '=') {
			if (n + 1 >= outlen)
				break;
			out[n++] = (char)b;
			continue;
		}
		if (n + 3 >= outlen)
			break;
		out[n++] = '%';
		out[n++] = hex[b >> 4];
		out[n++] = hex[b & 0xf];
	}
	out[n] = '\0';
}

/* One write(2) per line so lines from threads and processes don't mix. */
static void
log_vevent(enum log_level level, const char *txid, uint64_t reqid,
    const char *fmt, va_list ap)
{
	char line[2048], out[2048], stamp[LOG_TIME_LEN];
	size_t o = 0;
	int n, m;

	log_time(time(NULL), stamp);
	n = snprintf(line, sizeof(line), "%s %s[%d] %s", stamp, log_service,
	    (int)getpid(), level_names[level]);
	if (txid != NULL && n < (int)sizeof(line))
		n += snprintf(line + n, sizeof(line) - n, " txid=%.128s", txid);
	if (reqid != 0 && n < (int)sizeof(line))
		n += snprintf(line + n, sizeof(line) - n, " req=%llu",
		    (unsigned long long)reqid);
	if (n < (int)sizeof(line))
		n += snprintf(line + n, sizeof(line) - n, ": ");
	if (n < (int)sizeof(line)) {
		m = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
		if (m > 0)
			n += m;
	}
	if (n >= (int)sizeof(line) - 1)
		n = sizeof(line) - 2;
	/* Untrusted text (a device's transactionID) must not forge log
	 * lines: a line break starts none (a space), and other control
	 * bytes, which could move a terminal's cursor over the line
	 * before, are written as \xHH; so are C1 controls in UTF-8 (C2 80
	 * to C2 9F: U+009B is a CSI to some terminals), and a backslash,
	 * so that a text "\x1b" does not read as an escaped byte. */
	for (int i = 0; i < n; i++) {
		unsigned char c = (unsigned char)line[i];
		int c1 = c == 0xc2 && i + 1 < n &&
		    (unsigned char)line[i + 1] >= 0x80 &&
		    (unsigned char)line[i + 1] <= 0x9f;

		if (c == '\n' || c == '\r')
			c = ' ';
		if (c1 ||
		    (i > 0 && (unsigned char)line[i - 1] == 0xc2 && c >= 0x80 &&
		        c <= 0x9f) ||
		    c < 0x20 || c == 0x7f || c == '\\') {
			if (o + 5 > sizeof(out))
				break;
			o += (size_t)snprintf(out + o, 5, "\\x%02x", c);
		} else {
			if (o + 2 > sizeof(out))
				break;
			out[o++] = (char)c;
		}
	}
	out[o++] = '\n';
	(void)!write(STDERR_FILENO, out, o);
}

void
log_event(enum log_level level, const char *txid, uint64_t reqid,
    const char *fmt, ...)
{
	va_list ap;

	if (level > log_threshold)
		return;
	va_start(ap, fmt);
	log_vevent(level, txid, reqid, fmt, ap);
	va_end(ap);
}
