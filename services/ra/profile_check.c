/*
 * What the RA agrees to sign as an Apple configuration profile: only what
 * the frontend makes (services/frontend/profile.c), a SCEP enrollment for
 * this CA. The frontend faces the network and holds no key; were it
 * taken over, the RA would otherwise sign any profile it was sent (a VPN,
 * a proxy, an MDM enrollment, another trust anchor), which devices show
 * as "Verified" by the organization's RA. So the profile is read (XML,
 * as the frontend writes it) and refused unless it holds exactly one SCEP
 * payload and certificate payloads of this RA's CA chain, with no key
 * the frontend does not write, each value of the type it writes. What is signed is the profile as read,
 * written again by libplist (as the frontend writes it): not the bytes
 * received, which a device's parser might read otherwise than libplist
 * (a key given twice: libplist keeps the last).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <plist/plist.h>

#include "pki.h"
#include "profile_check.h"

/*
 * The keys the frontend writes at each level and the type of each value
 * (PLIST_NONE: checked by the payload's own rule). A value of another
 * type is refused as an unknown key is: what the RA signs is written
 * again by libplist, which indents each level, and arrays nested
 * thousands deep under a key left unchecked would have grown a 256 KiB
 * request into hundreds of megabytes to sign.
 */
struct key_type {
	const char *key;
	plist_type type;
};

static const struct key_type top_keys[] = {{"PayloadType", PLIST_STRING},
    {"PayloadVersion", PLIST_UINT}, {"PayloadIdentifier", PLIST_STRING},
    {"PayloadUUID", PLIST_STRING}, {"PayloadDisplayName", PLIST_STRING},
    {"PayloadOrganization", PLIST_STRING}, {"PayloadDescription", PLIST_STRING},
    {"PayloadContent", PLIST_ARRAY}, {NULL, PLIST_NONE}};
static const struct key_type payload_keys[] = {{"PayloadType", PLIST_STRING},
    {"PayloadVersion", PLIST_UINT}, {"PayloadIdentifier", PLIST_STRING},
    {"PayloadUUID", PLIST_STRING}, {"PayloadDisplayName", PLIST_STRING},
    {"PayloadContent", PLIST_NONE},
    {"PayloadCertificateFileName", PLIST_STRING}, {NULL, PLIST_NONE}};
static const struct key_type scep_keys[] = {{"URL", PLIST_STRING},
    {"Name", PLIST_STRING}, {"Subject", PLIST_ARRAY},
    {"Challenge", PLIST_STRING}, {"Keysize", PLIST_UINT},
    {"Key Type", PLIST_STRING}, {"Key Usage", PLIST_UINT},
    {"Retries", PLIST_UINT}, {"RetryDelay", PLIST_UINT},
    {"CAFingerprint", PLIST_DATA}, {"SubjectAltName", PLIST_DICT},
    {"KeyIsExtractable", PLIST_BOOLEAN}, {NULL, PLIST_NONE}};
/* services/frontend/profile.c's san_kinds. */
static const struct key_type san_keys[] = {{"dNSName", PLIST_ARRAY},
    {"rfc822Name", PLIST_ARRAY}, {"uniformResourceIdentifier", PLIST_ARRAY},
    {NULL, PLIST_NONE}};

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

#define KEYS_OK 0
#define KEYS_NO_DICT (-1) /* or not read whole */
#define KEYS_UNKNOWN 1
#define KEYS_WRONG_TYPE 2

/*
 * Whether dictionary `d` holds only keys of `allowed`, each of its type:
 * KEYS_OK, or what is wrong, with `bad` the first key at fault.
 */
static int
dict_keys_ok(
    plist_t d, const struct key_type *allowed, char *bad, size_t badlen)
{
	plist_dict_iter it = NULL;
	char *key = NULL;
	plist_t val = NULL;
	uint32_t seen = 0;
	int rc = KEYS_OK;

	bad[0] = '\0';
	if (plist_get_node_type(d) != PLIST_DICT)
		return KEYS_NO_DICT;
	plist_dict_new_iter(d, &it);
	for (;;) {
		const struct key_type *k;

		plist_dict_next_item(d, it, &key, &val);
		if (key == NULL)
			break;
		seen++;
		for (k = allowed; k->key != NULL && strcmp(k->key, key) != 0;
		     k++)
			;
		if (rc == KEYS_OK && k->key == NULL)
			rc = KEYS_UNKNOWN;
		else if (rc == KEYS_OK && k->type != PLIST_NONE &&
		    plist_get_node_type(val) != k->type)
			rc = KEYS_WRONG_TYPE;
		if (rc != KEYS_OK && bad[0] == '\0')
			snprintf(bad, badlen, "%s", key);
		free(key);
		key = NULL;
	}
	free(it);
	/* A key whose copy failed ends the walk early: not read whole. */
	return seen == plist_dict_get_size(d) ? rc : KEYS_NO_DICT;
}

/* The refusal for what dict_keys_ok found wrong with `bad` in `what`. */
static int
refuse_keys(int rc, const char *what, const char *bad, char *why, size_t whylen)
{
	if (rc == KEYS_UNKNOWN)
		return refuse(
		    why, whylen, "a %s \"%s\" scepd does not write", what, bad);
	if (rc == KEYS_WRONG_TYPE)
		return refuse(why, whylen,
		    "a %s \"%s\" of another type than scepd writes", what, bad);
	return refuse(why, whylen, "a %s that is no dictionary", what);
}

/* Whether every item of array `a` is of `type`. */
static int
array_of(plist_t a, plist_type type)
{
	for (uint32_t i = 0; i < plist_array_get_size(a); i++)
		if (plist_get_node_type(plist_array_get_item(a, i)) != type)
			return 0;
	return 1;
}

/* A Subject as the frontend writes it: relative names, each an array of
 * [type, value] pairs of strings. */
static int
subject_ok(plist_t subject)
{
	for (uint32_t i = 0; i < plist_array_get_size(subject); i++) {
		plist_t rdn = plist_array_get_item(subject, i);

		if (plist_get_node_type(rdn) != PLIST_ARRAY)
			return 0;
		for (uint32_t j = 0; j < plist_array_get_size(rdn); j++) {
			plist_t pair = plist_array_get_item(rdn, j);

			if (plist_get_node_type(pair) != PLIST_ARRAY ||
			    plist_array_get_size(pair) != 2 ||
			    !array_of(pair, PLIST_STRING))
				return 0;
		}
	}
	return 1;
}

/* SubjectAltName as the frontend writes it: lists of strings. */
static int
sans_ok(plist_t sans)
{
	char bad[64];

	if (dict_keys_ok(sans, san_keys, bad, sizeof(bad)) != KEYS_OK)
		return 0;
	for (const struct key_type *k = san_keys; k->key != NULL; k++) {
		plist_t list = plist_dict_get_item(sans, k->key);

		if (list != NULL && !array_of(list, PLIST_STRING))
			return 0;
	}
	return 1;
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
 * anchor only if self-signed, by the rule of the frontend's
 * cert_self_signed (a certificate naming itself its issuer, as a link
 * certificate of a key rollover does, is not enough). */
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
	if (strcmp(type, PAYLOAD_ROOT) != 0)
		return 0;
	if (!pki_issued_by(c, c))
		return refuse(why, whylen,
		    "a %s payload with a certificate that is not self-signed",
		    type);
	return 0;
}

/* The SCEP payload's content: the frontend's settings, as it writes them;
 * an http(s) URL; the CAFingerprint of the chain's root (a device takes
 * the CA the server gives it by it: Apple's client hashes the top of the
 * chain it builds from GetCACert's certificates). */
static int
check_scep_payload(
    plist_t payload, const STACK_OF(X509) * chain, char *why, size_t whylen)
{
	plist_t content = plist_dict_get_item(payload, "PayloadContent");
	plist_t item;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	const char *url, *sha1;
	uint64_t len = 0;
	X509 *root;
	const char *no_root;
	char bad[64];
	int rc;

	if (content == NULL)
		return refuse(why, whylen, "a SCEP payload without settings");
	if ((rc = dict_keys_ok(content, scep_keys, bad, sizeof(bad))) !=
	    KEYS_OK)
		return refuse_keys(rc, "SCEP setting", bad, why, whylen);
	if ((item = plist_dict_get_item(content, "Subject")) != NULL &&
	    !subject_ok(item))
		return refuse(why, whylen,
		    "a Subject that is not lists of [type, value] pairs");
	if ((item = plist_dict_get_item(content, "SubjectAltName")) != NULL &&
	    !sans_ok(item))
		return refuse(why, whylen,
		    "a SubjectAltName that is not scepd's lists of names");
	/* The frontend takes ExternalURL's scheme in any case. */
	if ((url = dict_string(content, "URL")) == NULL ||
	    (strncasecmp(url, "http://", 7) != 0 &&
	        strncasecmp(url, "https://", 8) != 0))
		return refuse(
		    why, whylen, "a SCEP payload without an http URL");
	if ((root = pki_chain_root((STACK_OF(X509) *)chain, &no_root)) == NULL)
		return refuse(why, whylen,
		    "[ra] CACertificate %s: a profile's CAFingerprint is its "
		    "root's",
		    no_root);
	if ((item = plist_dict_get_item(content, "CAFingerprint")) == NULL ||
	    (sha1 = plist_get_data_ptr(item, &len)) == NULL || len != 20 ||
	    X509_digest(root, EVP_sha1(), md, &mdlen) != 1 || mdlen != 20 ||
	    memcmp(md, sha1, 20) != 0)
		return refuse(why, whylen,
		    "a CAFingerprint not of the root of [ra] CACertificate");
	return 0;
}

/* Every payload's challenge, wiped in the tree before it is freed
 * (plist_free frees it as is). */
static void
wipe_challenges(plist_t top)
{
	plist_t payloads = plist_get_node_type(top) == PLIST_DICT
	    ? plist_dict_get_item(top, "PayloadContent")
	    : NULL;

	if (payloads == NULL || plist_get_node_type(payloads) != PLIST_ARRAY)
		return;
	for (uint32_t i = 0; i < plist_array_get_size(payloads); i++) {
		plist_t p = plist_array_get_item(payloads, i);
		plist_t content = plist_get_node_type(p) == PLIST_DICT
		    ? plist_dict_get_item(p, "PayloadContent")
		    : NULL;
		plist_t challenge = content != NULL &&
		        plist_get_node_type(content) == PLIST_DICT
		    ? plist_dict_get_item(content, "Challenge")
		    : NULL;
		const char *s;
		uint64_t len = 0;

		if (challenge != NULL &&
		    plist_get_node_type(challenge) == PLIST_STRING &&
		    (s = plist_get_string_ptr(challenge, &len)) != NULL)
			OPENSSL_cleanse((char *)s, (size_t)len);
	}
}

/* The payloads' PayloadIdentifiers under the profile's, and that one
 * scepd's: a profile signed here replaces no profile but scepd's when a
 * device installs it (the frontend's profile_ident). */
static int
check_identifiers(plist_t top, char *why, size_t whylen)
{
	static const char prefix[] = "scepd.";
	const char *ident = dict_string(top, "PayloadIdentifier"), *sub;
	plist_t payloads = plist_dict_get_item(top, "PayloadContent");
	size_t n;

	if (ident == NULL || strncmp(ident, prefix, sizeof(prefix) - 1) != 0)
		return refuse(why, whylen,
		    "a PayloadIdentifier not of scepd's (\"scepd.\")");
	n = strlen(ident);
	for (uint32_t i = 0; i < plist_array_get_size(payloads); i++) {
		sub = dict_string(
		    plist_array_get_item(payloads, i), "PayloadIdentifier");
		if (sub == NULL || strncmp(sub, ident, n) != 0 || sub[n] != '.')
			return refuse(why, whylen,
			    "a payload's PayloadIdentifier not under the "
			    "profile's");
	}
	return 0;
}

int
ra_profile_check(const uint8_t *xml, size_t len, const STACK_OF(X509) * chain,
    char **out, uint32_t *out_len, char *why, size_t whylen)
{
	static const char prolog[] = "<?xml";
	plist_t top = NULL, payloads;
	const char *type;
	char bad[64];
	uint32_t n;
	int nscep = 0, rc = -1, keys;

	/* XML, as the frontend writes it: libplist would also read its
	 * binary form, a second parser no profile needs. */
	if (len < sizeof(prolog) - 1 || len > UINT32_MAX ||
	    memcmp(xml, prolog, sizeof(prolog) - 1) != 0)
		return refuse(why, whylen, "not an XML property list");
	plist_from_xml((const char *)xml, (uint32_t)len, &top);
	if (top == NULL)
		return refuse(why, whylen, "not a property list");
	if ((keys = dict_keys_ok(top, top_keys, bad, sizeof(bad))) ==
	    KEYS_NO_DICT) {
		refuse(why, whylen, "no dictionary at the top");
		goto out;
	}
	if (keys != KEYS_OK) {
		refuse_keys(keys, "profile key", bad, why, whylen);
		goto out;
	}
	if ((type = dict_string(top, "PayloadType")) == NULL ||
	    strcmp(type, "Configuration") != 0) {
		refuse(why, whylen, "no Configuration profile");
		goto out;
	}
	if ((payloads = plist_dict_get_item(top, "PayloadContent")) == NULL) {
		refuse(why, whylen, "a profile without payloads");
		goto out;
	}
	n = plist_array_get_size(payloads);
	for (uint32_t i = 0; i < n; i++) {
		plist_t p = plist_array_get_item(payloads, i);

		keys = dict_keys_ok(p, payload_keys, bad, sizeof(bad));
		if (keys == KEYS_NO_DICT ||
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
		if (keys != KEYS_OK) {
			refuse_keys(keys, "payload key", bad, why, whylen);
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
	if (check_identifiers(top, why, whylen) != 0)
		goto out;
	*out = NULL;
	plist_to_xml(top, out, out_len);
	if (*out == NULL) {
		refuse(why, whylen, "out of memory");
		goto out;
	}
	rc = 0;
out:
	wipe_challenges(top);
	plist_free(top);
	return rc;
}
