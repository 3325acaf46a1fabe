/*
 * libFuzzer target: the lines of the admin accounts file (AdminPasswordFile)
 * as the frontend reads them at each admin login: passwd_split, then
 * passwd_parse of the hash, whose parameters decide how much memory and
 * time scrypt gets before any password is checked. Both are static: the
 * file is included. A hash that parses is written again as passwd_hash
 * writes one and must read back the same.
 */
#include "../../lib/passwd.c"

#include <stdint.h>

static void
check_hash(const char *hash)
{
	struct passwd_hash h, again;
	char salt64[96], key64[96], text[256];

	memset(&h, 0, sizeof(h));
	if (passwd_parse(hash, &h) != 0)
		return;
	if (h.n < 2 || (h.n & (h.n - 1)) != 0 || h.r < 1 || h.p < 1 ||
	    128ull * h.r * (h.n + h.p) > PASSWD_MAXMEM || h.salt_len < 8 ||
	    h.salt_len > sizeof(h.salt) || h.key_len < 16 ||
	    h.key_len > sizeof(h.key))
		abort();
	EVP_EncodeBlock((unsigned char *)salt64, h.salt, (int)h.salt_len);
	EVP_EncodeBlock((unsigned char *)key64, h.key, (int)h.key_len);
	snprintf(text, sizeof(text), "$scrypt$%lu$%lu$%lu$%s$%s", h.n, h.r, h.p,
	    salt64, key64);
	if (passwd_parse(text, &again) != 0 || again.n != h.n ||
	    again.r != h.r || again.p != h.p || again.salt_len != h.salt_len ||
	    again.key_len != h.key_len ||
	    memcmp(again.salt, h.salt, h.salt_len) != 0 ||
	    memcmp(again.key, h.key, h.key_len) != 0)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *line = malloc(size + 1);

	if (line == NULL)
		return 0;
	/* One line at a time, with its '\n', as getline gives them. */
	for (size_t at = 0, len; at < size; at += len) {
		const uint8_t *nl = memchr(data + at, '\n', size - at);
		char *u, *h, *r;

		len = nl != NULL ? (size_t)(nl - data) + 1 - at : size - at;
		memcpy(line, data + at, len);
		line[len] = '\0';
		if (passwd_split(line, &u, &h, &r) == 0) {
			if (strchr(u, ':') != NULL || strchr(h, ':') != NULL ||
			    strpbrk(r, "\r\n") != NULL)
				abort();
			check_hash(h);
		}
	}
	free(line);
	return 0;
}
