/*
 * A certificate subject as an administrator types it, "O=Fabrikam,OU=IT,
 * CN=Robs IPad": untrusted text (a query parameter) into an ordered list of
 * RDNs of (type, value), kept in the order given, never reversed (Apple's
 * configuration profiles list the RDNs from the root down, as written).
 *
 * Syntax, RFC 4514-like: RDNs separated by ',', the attributes of one
 * multi-valued RDN by '+'. In values, '\' escapes one of , + " \ < > ; = #
 * and space, or introduces two hex digits (a byte). Spaces around types and
 * around values are dropped, escaped ones kept. Types are the short names
 * C, L, ST, O, OU, CN (any case, or their long names or OIDs, which become
 * these), any other name OpenSSL knows ("emailAddress", "E", "UID", "DC")
 * or a dotted OID; those become dotted OIDs.
 */
#ifndef SCEPD_SUBJECT_H
#define SCEPD_SUBJECT_H

#include <stddef.h>

#define SUBJECT_TEXT_MAX 2048 /* bytes of text accepted */
#define SUBJECT_ATTRS_MAX 32
#define SUBJECT_TYPE_MAX 64 /* bytes of a type, with its NUL */

enum subject_error {
	SUBJECT_EINVAL = -1, /* not a subject: the message says why */
	SUBJECT_ENOMEM = -2,
};
const char *subject_strerror(int err);

struct subject_attr {
	/* "C", "L", "ST", "O", "OU", "CN" or a dotted OID. */
	char type[SUBJECT_TYPE_MAX];
	/* Unescaped, non-empty UTF-8 that subject_text_ok() accepts (so no
	 * NUL byte: value_len == strlen(value)); owned by the subject. */
	char *value;
	size_t value_len;
	/* Index of the RDN it belongs to: 0 for the first; attributes of one
	 * RDN are adjacent and share it. */
	size_t rdn;
};

struct subject {
	size_t nattrs; /* 1 to SUBJECT_ATTRS_MAX */
	size_t nrdns; /* attrs[nattrs - 1].rdn + 1 */
	struct subject_attr attrs[SUBJECT_ATTRS_MAX];
};

/*
 * Parses text[0..len), which need not be NUL-terminated and may hold any
 * bytes. On 0, *out is the caller's to free with subject_free(). Otherwise
 * *out is NULL, the return is a subject_error and, for SUBJECT_EINVAL,
 * err (when errlen > 0) says in one line, without a newline, what is wrong
 * and where, fit to show the administrator who typed it.
 */
int subject_parse(const char *text, size_t len, struct subject **out, char *err,
    size_t errlen);

/* NULL-safe. */
void subject_free(struct subject *s);

/*
 * 1 if s[0..len) is UTF-8 text an XML document can carry, as subject values
 * must be: no control characters (NUL included), no surrogates, no overlong
 * forms, no U+FFFE or U+FFFF.
 */
int subject_text_ok(const char *s, size_t len);

#endif
