/*
 * libFuzzer target: a configuration profile as a frontend asks the RA to
 * sign it (SignProfile), read by the RA's check of what it signs
 * (services/ra/profile_check.c, libplist's XML reader under it) against a
 * fixed chain (profile-chain.pem: an issuing CA and its root), which the
 * corpus's profiles name. Checked: a refusal says why; what an
 * acceptance gives to sign passes the check again, unchanged.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/pem.h>
#include <plist/plist.h>

#include "profile_check.h"

static STACK_OF(X509) * chain;

static void
chain_load(void)
{
	FILE *fp = fopen(PROFILE_CHAIN, "r");
	X509 *x;

	if (fp == NULL || (chain = sk_X509_new_null()) == NULL)
		abort();
	while ((x = PEM_read_X509(fp, NULL, NULL, NULL)) != NULL)
		if (!sk_X509_push(chain, x))
			abort();
	fclose(fp);
	if (sk_X509_num(chain) != 2)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char why[160] = "", *out = NULL, *again = NULL;
	uint32_t out_len = 0, again_len = 0;

	if (chain == NULL)
		chain_load();
	if (ra_profile_check(
	        data, size, chain, &out, &out_len, why, sizeof(why)) != 0) {
		if (why[0] == '\0')
			abort();
		return 0;
	}
	/* What is signed passes the check as it is. */
	if (why[0] != '\0' || out == NULL ||
	    ra_profile_check((const uint8_t *)out, out_len, chain, &again,
	        &again_len, why, sizeof(why)) != 0 ||
	    again_len != out_len || memcmp(again, out, out_len) != 0)
		abort();
	plist_to_xml_free(out);
	plist_to_xml_free(again);
	return 0;
}
