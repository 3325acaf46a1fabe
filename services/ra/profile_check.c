/*
 * What the RA agrees to sign as an Apple configuration profile: only what
 * the frontend makes (services/frontend/profile.c), a SCEP enrollment for
 * this CA. The frontend faces the network and holds no key; were it
 * taken over, the RA would otherwise sign any profile it was sent (a VPN,
 * a proxy, an MDM enrollment, another trust anchor), which devices show
 * as "Verified" by the organization's RA. So the profile is read (XML,
 * as the frontend writes it) and refused unless it holds exactly one SCEP
 * payload and certificate payloads of this RA's CA chain, with no key
 * the frontend does not write. What is signed is the profile as read,
 * written again by libplist (as the frontend writes it): not the bytes
 * received, which a device's parser might read otherwise than libplist
 * (a key given twice: libplist keeps the last).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <plist/plist.h>

#include "profile_check.h"

static const char *const top_keys[] = {"PayloadType", "PayloadVersion",
    "PayloadIdentifier", "PayloadUUID", "PayloadDisplayName",
    "PayloadOrganization", "PayloadDescription", "PayloadContent", NULL};
static const char *const payload_keys[] = {"PayloadType", "PayloadVersion",
    "PayloadIdentifier", "PayloadUUID", "PayloadDisplayName", "PayloadContent",
    "PayloadCertificateFileName", NULL};
static const char *const scep_keys[] = {"URL", "Name", "Subject", "Challenge",
    "Keysize", "Key Type", "Key Usage", "Retries", "RetryDelay",
    "CAFingerprint", "SubjectAltName", NULL};

#define PAYLOAD_SCEP "com.apple.security.scep"
#define PAYLOAD_ROOT "com.apple.security.root"
#define PAYLOAD_PKCS1 "com.apple.security.pkcs1"

static int __attribute__((format(printf, 3, 4)))
refuse(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
	return -1;
}

/* Whether `key` is one of `allowed`. */
static int
key_known(const char *key, const char *const *allowed)
{
	for (; *allowed != NULL; allowed++)
		if (strcmp(key, *allowed) == 0)
			return 1;
	return 0;
}

/* The first key of dictionary `d` not in `allowed`, in `out` ("" if
 * none); 0, or -1 for a node that is no dictionary. */
static int
unknown_key(plist_t d, const char *const *allowed, char *out, size_t outlen)
{
	plist_dict_iter it = NULL;
	char *key = NULL;
	plist_t val = NULL;

	out[0] = '\0';
	if (plist_get_node_type(d) != PLIST_DICT)
		return -1;
	plist_dict_new_iter(d, &it);
	if (it == NULL)
		return -1;
	for (;;) {
		plist_dict_next_item(d, it, &key, &val);
		if (key == NULL)
			break;
		if (out[0] == '\0' && !key_known(key, allowed))
			snprintf(out, outlen, "%s", key);
		free(key);
		key = NULL;
	}
	free(it);
	return 0;
}

/* The string at `key` of `d`, NULL when absent or no string. */
static const char *
dict_string(plist_t d, const char *key)
{
	plist_t item = plist_dict_get_item(d, key);
	uint64_t len;

	if (item == NULL || plist_get_node_type(item) != PLIST_STRING)
		return NULL;
	return plist_get_string_ptr(item, &len);
}

/* The certificate of `chain` whose DER is `der`, or NULL. */
static X509 *
chain_cert(const STACK_OF(X509) * chain, const uint8_t *der, uint64_t len)
{
	for (int i = 0; i < sk_X509_num(chain); i++) {
		X509 *c = sk_X509_value(chain, i);
		uint8_t *mine = NULL;
		int n = i2d_X509(c, &mine), same;

		same =
		    n > 0 && (uint64_t)n == len && memcmp(mine, der, len) == 0;
		OPENSSL_free(mine);
		if (same)
			return c;
	}
	return NULL;
}

/* A certificate payload's content: one of the chain's, and a trust
 * anchor only if self-signed (the frontend marks roots so). */
static int
check_cert_payload(plist_t payload, const char *type,
    const STACK_OF(X509) * chain, char *why, size_t whylen)
{
	plist_t content = plist_dict_get_item(payload, "PayloadContent");
	const char *der;
	uint64_t len = 0;
	X509 *c;

	if (content == NULL || plist_get_node_type(content) != PLIST_DATA ||
	    (der = plist_get_data_ptr(content, &len)) == NULL)
		return refuse(
		    why, whylen, "a %s payload without a certificate", type);
	if ((c = chain_cert(chain, (const uint8_t *)der, len)) == NULL)
		return refuse(why, whylen,
		    "a %s payload with a certificate not of [ra] "
		    "CACertificate",
		    type);
	if (strcmp(type, PAYLOAD_ROOT) == 0 &&
	    X509_check_issued(c, c) != X509_V_OK)
		return refuse(why, whylen,
		    "a %s payload with a certificate that is not self-signed",
		    type);
	return 0;
}

/* The SCEP payload's content: the frontend's keys; its CAFingerprint, if
 * any, one of the chain's (a device checks the CA it is given by it). */
static int
check_scep_payload(
    plist_t payload, const STACK_OF(X509) * chain, char *why, size_t whylen)
{
	plist_t content = plist_dict_get_item(payload, "PayloadContent");
	plist_t fp;
	const char *url;
	char key[64];

	if (content == NULL ||
	    unknown_key(content, scep_keys, key, sizeof(key)) != 0)
		return refuse(why, whylen, "a SCEP payload without settings");
	if (key[0] != '\0')
		return refuse(why, whylen,
		    "a SCEP setting \"%s\" scepd does not write", key);
	if ((url = dict_string(content, "URL")) == NULL ||
	    (strncmp(url, "http://", 7) != 0 &&
	        strncmp(url, "https://", 8) != 0))
		return refuse(
		    why, whylen, "a SCEP payload without an http URL");
	if ((fp = plist_dict_get_item(content, "CAFingerprint")) != NULL) {
		const char *sha1;
		uint64_t len = 0;
		int found = 0;

		if (plist_get_node_type(fp) != PLIST_DATA ||
		    (sha1 = plist_get_data_ptr(fp, &len)) == NULL || len != 20)
			return refuse(why, whylen,
			    "a CAFingerprint that is no SHA-1 digest");
		for (int i = 0; !found && i < sk_X509_num(chain); i++) {
			unsigned char md[EVP_MAX_MD_SIZE];
			unsigned int mdlen = 0;

			found = X509_digest(sk_X509_value(chain, i), EVP_sha1(),
			            md, &mdlen) == 1 &&
			    mdlen == 20 && memcmp(md, sha1, 20) == 0;
		}
		if (!found)
			return refuse(why, whylen,
			    "a CAFingerprint of no certificate of [ra] "
			    "CACertificate");
	}
	return 0;
}

/* The SCEP payload's challenge, wiped in the tree before it is freed
 * (plist_free frees it as is). */
static void
wipe_challenge(plist_t payload)
{
	plist_t content = plist_dict_get_item(payload, "PayloadContent");
	plist_t challenge;
	const char *s;
	uint64_t len = 0;

	if (content != NULL && plist_get_node_type(content) == PLIST_DICT &&
	    (challenge = plist_dict_get_item(content, "Challenge")) != NULL &&
	    plist_get_node_type(challenge) == PLIST_STRING &&
	    (s = plist_get_string_ptr(challenge, &len)) != NULL)
		OPENSSL_cleanse((char *)s, (size_t)len);
}

int
ra_profile_check(const uint8_t *xml, size_t len, const STACK_OF(X509) * chain,
    char **out, uint32_t *out_len, char *why, size_t whylen)
{
	static const char prolog[] = "<?xml";
	plist_t top = NULL, payloads = NULL;
	const char *type;
	char key[64];
	uint32_t n;
	int nscep = 0, rc = -1;

	/* XML, as the frontend writes it: libplist would also read its
	 * binary form, a second parser no profile needs. */
	if (len < sizeof(prolog) - 1 || len > UINT32_MAX ||
	    memcmp(xml, prolog, sizeof(prolog) - 1) != 0)
		return refuse(why, whylen, "not an XML property list");
	plist_from_xml((const char *)xml, (uint32_t)len, &top);
	if (top == NULL)
		return refuse(why, whylen, "not a property list");
	if (unknown_key(top, top_keys, key, sizeof(key)) != 0) {
		refuse(why, whylen, "no dictionary at the top");
		goto out;
	}
	if (key[0] != '\0') {
		refuse(why, whylen, "a profile key \"%s\" scepd does not write",
		    key);
		goto out;
	}
	if ((type = dict_string(top, "PayloadType")) == NULL ||
	    strcmp(type, "Configuration") != 0) {
		refuse(why, whylen, "no Configuration profile");
		goto out;
	}
	payloads = plist_dict_get_item(top, "PayloadContent");
	if (payloads == NULL || plist_get_node_type(payloads) != PLIST_ARRAY) {
		refuse(why, whylen, "a profile without payloads");
		goto out;
	}
	n = plist_array_get_size(payloads);
	for (uint32_t i = 0; i < n; i++) {
		plist_t p = plist_array_get_item(payloads, i);

		if (unknown_key(p, payload_keys, key, sizeof(key)) != 0 ||
		    (type = dict_string(p, "PayloadType")) == NULL) {
			refuse(why, whylen, "payload %u has no type", i + 1);
			goto out;
		}
		if (strcmp(type, PAYLOAD_SCEP) != 0 &&
		    strcmp(type, PAYLOAD_ROOT) != 0 &&
		    strcmp(type, PAYLOAD_PKCS1) != 0) {
			refuse(why, whylen,
			    "a payload of type \"%.64s\", not SCEP or a CA "
			    "certificate",
			    type);
			goto out;
		}
		if (key[0] != '\0') {
			refuse(why, whylen,
			    "a payload key \"%s\" scepd does not write", key);
			goto out;
		}
		if (strcmp(type, PAYLOAD_SCEP) == 0) {
			nscep++;
			if (check_scep_payload(p, chain, why, whylen) != 0)
				goto out;
		} else if (check_cert_payload(p, type, chain, why, whylen) !=
		    0) {
			goto out;
		}
	}
	if (nscep != 1) {
		refuse(why, whylen, "%d SCEP payloads, not one", nscep);
		goto out;
	}
	*out = NULL;
	plist_to_xml(top, out, out_len);
	if (*out == NULL) {
		refuse(why, whylen, "out of memory");
		goto out;
	}
	rc = 0;
out:
	if (payloads != NULL && plist_get_node_type(payloads) == PLIST_ARRAY)
		for (uint32_t i = 0; i < plist_array_get_size(payloads); i++)
			wipe_challenge(plist_array_get_item(payloads, i));
	plist_free(top);
	return rc;
}
