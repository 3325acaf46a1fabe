/*
 * libFuzzer target: scep_csr_parse, the PKCS#10 request and its
 * challengePassword from inside a decrypted envelope.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "scep.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	X509_REQ *csr = NULL;
	char *challenge = NULL;
	const char *why = NULL;
	int failinfo;

	if (scep_init() != SCEP_OK)
		abort();
	if (scep_csr_parse(data, size, &csr, &challenge, &failinfo, &why) ==
	    SCEP_OK) {
		if (csr == NULL)
			abort();
		if (challenge != NULL)
			(void)strlen(challenge);
	} else if (csr != NULL || challenge != NULL || why == NULL) {
		abort();
	}
	free(challenge);
	X509_REQ_free(csr);
	return 0;
}
