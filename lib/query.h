/*
 * The untrusted-input side of SCEP over HTTP GET: parameters of a raw query
 * string and the base64 pkiMessage they carry.
 *
 * The query must be the raw text after '?' as the client sent it, not a
 * server's parsed arguments: '+' is a literal '+' here (iOS and macOS send
 * base64 with '+' and '/' unescaped), not a space as in HTML forms.
 */
#ifndef SCEPD_QUERY_H
#define SCEPD_QUERY_H

#include <stddef.h>
#include <stdint.h>

enum query_error {
	QUERY_EINVAL = -1, /* bad percent-encoding or base64 */
	QUERY_EDUP = -2, /* the parameter appears more than once */
	QUERY_ENOMEM = -3,
};
const char *query_strerror(int err);

/*
 * Finds parameter `name` (ASCII, compared case-insensitively after
 * percent-decoding) in `query[0..len)`, which need not be NUL-terminated.
 * Parameters are separated by '&'; a parameter without '=' has an empty
 * value. %XX is decoded, '+' is kept as '+'.
 * Returns 1 and sets *value (malloc'ed, NUL-terminated, the caller frees;
 * it may contain NUL bytes from %00, *value_len is its length without the
 * terminator) when found once; 0 when absent (*value NULL); QUERY_EDUP when
 * present twice (ambiguous: refused); QUERY_EINVAL on a malformed %XX.
 * value_len may be NULL.
 */
int query_get(const char *query, size_t len, const char *name, char **value,
    size_t *value_len);

/*
 * Decodes base64 `text[0..len)` with OpenSSL. Line breaks ('\n', as iOS
 * sends %0A every 64 characters), '\r', spaces and tabs are skipped; missing
 * '=' padding is tolerated; any other character outside the base64
 * alphabet, or an empty result, is QUERY_EINVAL. On 0, *out is malloc'ed
 * (the caller frees) and holds *out_len bytes.
 */
int query_base64_decode(
    const char *text, size_t len, uint8_t **out, size_t *out_len);

#endif
