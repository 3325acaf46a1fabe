#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "query.h"

const char *
query_strerror(int err)
{
	switch (err) {
	case QUERY_EINVAL:
		return "malformed encoding";
	case QUERY_EDUP:
		return "parameter given more than once";
	case QUERY_ENOMEM:
		return "out of memory";
	}
	return err >= 0 ? "ok" : "unknown query error";
}

static int
hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static unsigned char
lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

/*
 * Next byte of a percent-encoded segment at *i, advancing *i. -1 on a
 * malformed %XX (the caller stops there).
 */
static int
decode_byte(const char *s, size_t end, size_t *i)
{
	int hi, lo;

	if (s[*i] != '%') /* '+' stays '+': this is not a form */
		return (unsigned char)s[(*i)++];
	if (end - *i < 3 || (hi = hexval(s[*i + 1])) < 0 ||
	    (lo = hexval(s[*i + 2])) < 0)
		return -1;
	*i += 3;
	return hi << 4 | lo;
}

/* 1 if s[start..end) decodes to `name` (ASCII case-insensitive). A name
 * that does not decode is not ours. */
static int
name_matches(const char *s, size_t start, size_t end, const char *name)
{
	size_t i = start, j = 0;

	while (i < end) {
		int c = decode_byte(s, end, &i);

		if (c < 0 || name[j] == '\0' ||
		    lower((unsigned char)c) != lower((unsigned char)name[j]))
			return 0;
		j++;
	}
	return name[j] == '\0';
}

static int
decode_value(
    const char *s, size_t start, size_t end, char **out, size_t *out_len)
{
	size_t i = start, n = 0;
	char *buf = malloc(end - start + 1);

	if (buf == NULL)
		return QUERY_ENOMEM;
	while (i < end) {
		int c = decode_byte(s, end, &i);

		if (c < 0) {
			free(buf);
			return QUERY_EINVAL;
		}
		buf[n++] = (char)c;
	}
	buf[n] = '\0';
	*out = buf;
	*out_len = n;
	return 0;
}

int
query_get(const char *query, size_t len, const char *name, char **value,
    size_t *value_len)
{
	char *found = NULL;
	size_t found_len = 0, i = 0;
	int rc;

	*value = NULL;
	if (value_len != NULL)
		*value_len = 0;
	if (query == NULL)
		len = 0;
	while (i < len) {
		const char *amp = memchr(query + i, '&', len - i);
		size_t end = amp != NULL ? (size_t)(amp - query) : len;
		const char *eq = memchr(query + i, '=', end - i);
		size_t name_end = eq != NULL ? (size_t)(eq - query) : end;

		if (name_matches(query, i, name_end, name)) {
			if (found != NULL) {
				free(found);
				return QUERY_EDUP;
			}
			rc =
			    decode_value(query, eq != NULL ? name_end + 1 : end,
			        end, &found, &found_len);
			if (rc != 0)
				return rc;
		}
		i = end + 1;
	}
	if (found == NULL)
		return 0;
	*value = found;
	if (value_len != NULL)
		*value_len = found_len;
	return 1;
}

static int
is_b64(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9') || c == '+' || c == '/' || c == '=';
}

int
query_base64_decode(
    const char *text, size_t len, uint8_t **out, size_t *out_len)
{
	EVP_ENCODE_CTX *ctx = NULL;
	char *clean = NULL;
	uint8_t *buf = NULL;
	size_t n = 0, used = 0;
	int padded = 0, rc = QUERY_EINVAL, k;

	*out = NULL;
	*out_len = 0;
	if (len > SIZE_MAX - 4)
		return QUERY_EINVAL;
	/* Only the alphabet goes to OpenSSL: EVP_DecodeUpdate would treat a
	 * '-' as the end of data and skip other characters silently. */
	if ((clean = malloc(len + 3)) == NULL)
		return QUERY_ENOMEM;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)text[i];

		if (c == '\n' || c == '\r' || c == ' ' || c == '\t')
			continue;
		if (!is_b64(c))
			goto out;
		padded |= c == '=';
		clean[n++] = (char)c;
	}
	if (n == 0 || n % 4 == 1)
		goto out;
	while (!padded && n % 4 != 0) /* some encoders drop the padding */
		clean[n++] = '=';
	if ((ctx = EVP_ENCODE_CTX_new()) == NULL ||
	    (buf = malloc(n / 4 * 3 + 3)) == NULL) {
		rc = QUERY_ENOMEM;
		goto out;
	}
	EVP_DecodeInit(ctx);
	for (size_t i = 0; i < n;) {
		int chunk = n - i > 65536 ? 65536 : (int)(n - i);

		if (EVP_DecodeUpdate(ctx, buf + used, &k,
		        (const unsigned char *)clean + i, chunk) < 0)
			goto out;
		used += (size_t)k;
		i += (size_t)chunk;
	}
	if (EVP_DecodeFinal(ctx, buf + used, &k) != 1)
		goto out;
	used += (size_t)k;
	if (used == 0)
		goto out;
	*out = buf;
	*out_len = used;
	buf = NULL;
	rc = 0;
out:
	EVP_ENCODE_CTX_free(ctx);
	free(clean);
	free(buf);
	return rc;
}
