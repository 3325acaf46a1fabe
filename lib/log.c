#include <fcntl.h>
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

/*
 * Descriptors 0 to 2 taken, where they were closed, before the program
 * opens anything: else the first file it opens takes 2 and every log line
 * is written into it (a CA started with stderr closed wrote them into its
 * ledger's LMDB files). OpenSSH's sanitise_stdfd, but read-only: a write
 * fails as on a closed descriptor (scepctl challenge, its stdout closed,
 * withdraws the password it could not hand out). Not close-on-exec: a
 * service started by scepd inherits them.
 */
static void
log_stdio_open(void)
{
	int fd;

	while ((fd = open("/dev/null", O_RDONLY)) >= 0 && fd <= 2)
		;
	if (fd > 2)
		close(fd);
}

void
log_init(const char *service, enum log_level level)
{
	log_stdio_open();
	log_service = service;
	log_threshold = level;
#ifdef SCEPD_TEST_HOOKS
	/* Such a build serves test-only requests and environment switches
	 * (a probe of the sandbox, faults on demand): say so where an
	 * operator who installed it by mistake would look. */
	log_warn("built with test hooks (SCEPD_TEST_HOOKS): it serves "
	         "test-only requests; not for production (scripts/run.sh "
	         "builds without them)");
#endif
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

/*
 * The length of the well-formed UTF-8 sequence of a character from U+0080
 * on at s[0..n), or 0 (a stray continuation byte, a truncated sequence, an
 * overlong form, a surrogate, past U+10FFFF). By hand: the launcher does
 * not link OpenSSL's UTF8_getc, and this is all it would be used for.
 */
static int
log_utf8_len(const unsigned char *s, int n)
{
	/* The second byte's range after each lead byte (RFC 3629). */
	unsigned char lo = 0x80, hi = 0xbf;
	int len;

	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		lo = s[0] == 0xe0 ? 0xa0 : 0x80;
		hi = s[0] == 0xed ? 0x9f : 0xbf;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		lo = s[0] == 0xf0 ? 0x90 : 0x80;
		hi = s[0] == 0xf4 ? 0x8f : 0xbf;
	} else
		return 0;
	if (len > n || s[1] < lo || s[1] > hi)
		return 0;
	for (int i = 2; i < len; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	return len;
}

/* One write(2) per line so lines from threads and processes don't mix. */
static void
log_vevent(enum log_level level, const char *txid, uint64_t reqid,
    const char *fmt, va_list ap)
{
	char line[2048], out[2048], stamp[LOG_TIME_LEN];
	/* A transactionID (at most 256 bytes as the services keep them),
	 * each byte written %HH at most. */
	char field[3 * 256 + 1];
	size_t o = 0;
	int n, m;

	log_time(time(NULL), stamp);
	n = snprintf(line, sizeof(line), "%s %s[%d] %s", stamp, log_service,
	    (int)getpid(), level_names[level]);
	/* A device's, encoded as a path is (log_escape): with a space or an
	 * '=' in it, it would write fields of its own ("req=1: issued"). */
	if (txid != NULL && n < (int)sizeof(line)) {
		log_escape(field, sizeof(field), txid);
		n += snprintf(line + n, sizeof(line) - n, " txid=%s", field);
	}
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
	/* Untrusted text (a client's User-Agent, a subject) must not forge
	 * log lines: a line break starts none (a space), and other control
	 * bytes, which could move a terminal's cursor over the line
	 * before, are written as \xHH; so are C1 controls in UTF-8 (C2 80
	 * to C2 9F: U+009B is a CSI to some terminals), every byte that is
	 * not well-formed UTF-8 (a lone 0x9B is that CSI to a terminal not
	 * in UTF-8), and a backslash, so that a text "\x1b" does not read
	 * as an escaped byte. */
	for (int i = 0; i < n;) {
		unsigned char c = (unsigned char)line[i];
		int len = c < 0x80
		    ? 1
		    : log_utf8_len((const unsigned char *)line + i, n - i);

		if (c == '\n' || c == '\r')
			c = ' ';
		if (len == 2 && c == 0xc2 && (unsigned char)line[i + 1] <= 0x9f)
			len = 0; /* a C1 control: both bytes escaped */
		if (len == 0 ||
		    (len == 1 && (c < 0x20 || c == 0x7f || c == '\\'))) {
			if (o + 5 > sizeof(out))
				break;
			o += (size_t)snprintf(out + o, 5, "\\x%02x", c);
			i++;
		} else {
			if (o + (size_t)len + 1 > sizeof(out))
				break;
			out[o++] = (char)c;
			memcpy(out + o, line + i + 1, (size_t)len - 1);
			o += (size_t)len - 1;
			i += len;
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
