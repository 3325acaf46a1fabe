/*
 * The raw query string of a SCEP GET as a client sends it: the parameters
 * the frontend reads, and the base64 of `message` (and of the whole input,
 * as a POSTed base64 body).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "query.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const names[] = {"operation", "message"};
	const char *q = (const char *)data;

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char *v = NULL;
		size_t len = 0;
		uint8_t *der = NULL;
		size_t der_len = 0;
		int rc = query_get(q, size, names[i], &v, &len);

		if (rc == 1) {
			/* The value must be NUL-terminated at len. */
			if (v[len] != '\0')
				abort();
			if (query_base64_decode(v, len, &der, &der_len) == 0 &&
			    (der == NULL || der_len == 0 || der_len > len))
				abort();
			free(der);
		} else if (v != NULL)
			abort();
		free(v);
	}
	{
		uint8_t *der = NULL;
		size_t der_len = 0;

		if (query_base64_decode(q, size, &der, &der_len) == 0 &&
		    (der_len == 0 || der_len > size))
			abort();
		free(der);
	}
	return 0;
}
