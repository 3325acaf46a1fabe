/*
 * OpenSSL's error queue into the log. A file of its own so that a program
 * that logs but does not use OpenSSL (scepd, the launcher) does not link it.
 */
#include <openssl/err.h>

#include "log.h"

void
log_openssl(enum log_level level, const char *txid, const char *what)
{
	unsigned long e;
	char buf[256];
	const char *file, *data;
	int line, flags, any = 0;

	while (
	    (e = ERR_get_error_all(&file, &line, NULL, &data, &flags)) != 0) {
		ERR_error_string_n(e, buf, sizeof(buf));
		log_event(level, txid, 0, "%s: %s%s%s", what, buf,
		    (flags & ERR_TXT_STRING) ? ": " : "",
		    (flags & ERR_TXT_STRING) ? data : "");
		any = 1;
	}
	if (!any)
		log_event(level, txid, 0, "%s", what);
}
