/*
 * libFuzzer target: the CA's policy on the PKCS#10 bytes a device sent
 * (services/ca/csr.c ca_csr_check, ca_csr_sans; template.c ca_csr_usage)
 * and what the RA shows a challenge webhook of them (services/ra/csrinfo.c
 * ra_csr_subject, ra_csr_sans). The CA is the last line of defence: it
 * walks the device's subjectAltNames against the template's patterns
 * whatever the RA decided. Templates as the CA loads them from the
 * configuration below: RSA and EC, SAN patterns of every type, one with a
 * fixed subject, one for keyEncipherment alone.
 */
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ca.h"
#include "ra.h"
#include "x509parse.h"

static const char templates_conf[] =
    "[template.Fuzz]\n"
    "KeyTypes = RSA EC\n"
    "ECCurves = P-256 P-384 P-521\n"
    "AllowedSANs = DNS:*.devices.example.com DNS:device-?.example.org "
    "email:*@example.com URI:https://mdm.example.com/* IP:10.* "
    "IP:fd00:* UPN:*@corp.example.com\n"
    "[template.FuzzSigning]\n"
    "KeyUsage = digitalSignature\n"
    "Subject = O=Fuzz,OU=Devices\n"
    "AllowedSANs = DNS:* email:*\n"
    "[template.FuzzEncryption]\n"
    "KeyUsage = keyEncipherment\n";

static struct ca ca;

static int
ca_ready(void)
{
	char path[] = "/tmp/fuzz_ca_csr.XXXXXX";
	FILE *f;
	int fd, rc;

	if (ca.by_usage[CA_USAGE_GENERAL] != NULL)
		return 0;
	ca.settings.validity_days = 365;
	ca.settings.min_rsa_bits = 2048;
	ca.settings.signature_template = "FuzzSigning";
	ca.settings.encryption_template = "FuzzEncryption";
	ca.settings.general_purpose_template = "Fuzz";
	if ((fd = mkstemp(path)) < 0 || (f = fdopen(fd, "w")) == NULL)
		return -1;
	fputs(templates_conf, f);
	fclose(f);
	rc = ca_templates_load(&ca, path);
	unlink(path);
	return rc;
}

/* What is shown or logged holds no control byte. */
static void
check_text(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct ca_template *tpl = NULL;
	const unsigned char *p = data;
	struct ca_refusal refusal;
	struct rpc_arena *arena;
	X509_REQ *req = NULL;
	EVP_PKEY *key = NULL;
	char **sans, **shown, *subject;
	size_t nshown;

	if (ca_ready() != 0)
		abort();
	memset(&refusal, 0, sizeof(refusal));
	if (ca_csr_check(&ca, data, size, 1, &req, &tpl, &refusal) == 0) {
		if (req == NULL || tpl == NULL)
			abort();
	} else if (req != NULL || refusal.why[0] == '\0') {
		abort();
	}
	X509_REQ_free(req);
	req = NULL;

	/*
	 * The rules once more, on the request read as the CA and the RA
	 * read it but without its self-signature checked: the device signs
	 * what it sends, so any request here can come signed, and a mutated
	 * one never verifies.
	 */
	if (size == 0 || size > LONG_MAX ||
	    (req = x509parse_req(&p, (long)size, &key)) == NULL ||
	    p != data + size || key == NULL ||
	    (req = x509parse_req_keyed(req, key, data, (long)size)) == NULL) {
		X509_REQ_free(req);
		EVP_PKEY_free(key);
		return 0;
	}
	tpl = ca.by_usage[ca_csr_usage(req)];
	(void)ca_csr_rules(&ca, tpl, req, &refusal);
	sans = ca_csr_sans(req);
	for (size_t i = 0; sans != NULL && sans[i] != NULL; i++)
		check_text(sans[i]);
	ca_strings_free(sans);

	if ((arena = rpc_arena_new()) == NULL)
		abort();
	if ((subject = ra_csr_subject(req, arena)) != NULL)
		check_text(subject);
	nshown = ra_csr_sans(req, &shown, arena);
	for (size_t i = 0; i < nshown; i++)
		check_text(shown[i]);
	rpc_arena_free(arena);
	X509_REQ_free(req);
	EVP_PKEY_free(key);
	return 0;
}
