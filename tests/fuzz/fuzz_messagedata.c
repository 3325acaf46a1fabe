/*
 * libFuzzer target: the messageData of GetCert/GetCRL
 * (scep_issuer_serial_parse) and CertPoll (scep_issuer_subject_parse) from
 * inside a decrypted envelope, and a client's reading of a GetNextCACert
 * answer (scep_next_ca_parse). Whatever is accepted must survive a round
 * trip through the builders: the names come back as the same DER.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "scep.h"

/* A name the parser returned re-encodes identically after a round trip. */
static void
same_name(X509_NAME *a, X509_NAME *b)
{
	unsigned char *da = NULL, *db = NULL;
	int la, lb;

	if (a == NULL || b == NULL || X509_NAME_cmp(a, b) != 0)
		abort();
	la = i2d_X509_NAME(a, &da);
	lb = i2d_X509_NAME(b, &db);
	if (la <= 0 || la != lb || memcmp(da, db, (size_t)la) != 0)
		abort();
	OPENSSL_free(da);
	OPENSSL_free(db);
}

static void
issuer_serial(const uint8_t *data, size_t size)
{
	X509_NAME *issuer = NULL, *issuer2 = NULL;
	ASN1_INTEGER *serial = NULL, *serial2 = NULL;
	uint8_t *der = NULL;
	size_t len = 0;
	const char *why = NULL;
	int failinfo;

	if (scep_issuer_serial_parse(
	        data, size, &issuer, &serial, &failinfo, &why) != SCEP_OK) {
		if (issuer != NULL || serial != NULL || why == NULL ||
		    failinfo != SCEP_FAILINFO_BAD_REQUEST)
			abort();
		return;
	}
	if (issuer == NULL || serial == NULL || why != NULL)
		abort();
	if (scep_issuer_serial_build(issuer, serial, &der, &len) != SCEP_OK ||
	    scep_issuer_serial_parse(
	        der, len, &issuer2, &serial2, &failinfo, &why) != SCEP_OK)
		abort();
	same_name(issuer, issuer2);
	if (ASN1_INTEGER_cmp(serial, serial2) != 0)
		abort();
	free(der);
	X509_NAME_free(issuer);
	X509_NAME_free(issuer2);
	ASN1_INTEGER_free(serial);
	ASN1_INTEGER_free(serial2);
}

static void
issuer_subject(const uint8_t *data, size_t size)
{
	X509_NAME *issuer = NULL, *subject = NULL;
	X509_NAME *issuer2 = NULL, *subject2 = NULL;
	uint8_t *der = NULL;
	size_t len = 0;
	const char *why = NULL;
	int failinfo;

	if (scep_issuer_subject_parse(
	        data, size, &issuer, &subject, &failinfo, &why) != SCEP_OK) {
		if (issuer != NULL || subject != NULL || why == NULL ||
		    failinfo != SCEP_FAILINFO_BAD_REQUEST)
			abort();
		return;
	}
	if (issuer == NULL || subject == NULL || why != NULL)
		abort();
	if (scep_issuer_subject_build(issuer, subject, &der, &len) != SCEP_OK ||
	    scep_issuer_subject_parse(
	        der, len, &issuer2, &subject2, &failinfo, &why) != SCEP_OK)
		abort();
	same_name(issuer, issuer2);
	same_name(subject, subject2);
	free(der);
	X509_NAME_free(issuer);
	X509_NAME_free(issuer2);
	X509_NAME_free(subject);
	X509_NAME_free(subject2);
}

static void
next_ca(const uint8_t *data, size_t size)
{
	STACK_OF(X509) *certs = NULL;

	if (scep_next_ca_parse(data, size, NULL, &certs) == SCEP_OK) {
		if (sk_X509_num(certs) <= 0)
			abort();
	} else if (certs != NULL) {
		abort();
	}
	sk_X509_pop_free(certs, X509_free);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (scep_init() != SCEP_OK || scep_load_single_des() != SCEP_OK)
		abort();
	issuer_serial(data, size);
	issuer_subject(data, size);
	next_ca(data, size);
	return 0;
}
