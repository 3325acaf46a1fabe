/*
 * The SCEP (RFC 8894) message codec on OpenSSL 3's PKCS7 API. The PKCS7
 * structs are public, so the envelope's content-encryption algorithm and the
 * SignerInfo digest can be read before anything is decrypted or trusted.
 *
 * Every function drains OpenSSL's error queue before it returns, so one bad
 * request never leaves errors behind for the next one on the same thread.
 */
#include "scep.h"
#include "x509parse.h"
#include "log.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/asn1t.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>
#include <openssl/provider.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#define SCEP_NONCE_LEN 16
#define SCEP_NONCE_MAX 64 /* longest nonce accepted from a peer */
#define SCEP_TXID_MAX 256 /* longest transactionID accepted */

const struct scep_alg_policy scep_default_policy = {
    .allow_des = 0,
    .allow_des3 = 1,
    .allow_sha1 = 1,
};

/* NIDs of the SCEP attributes, registered once by scep_init(). */
static int nid_message_type = NID_undef;
static int nid_pki_status = NID_undef;
static int nid_fail_info = NID_undef;
static int nid_sender_nonce = NID_undef;
static int nid_recipient_nonce = NID_undef;
static int nid_transaction_id = NID_undef;
static int nid_fail_info_text = NID_undef;

static CRYPTO_ONCE init_once = CRYPTO_ONCE_STATIC_INIT;
static int init_rc = SCEP_E_NOMEM;
/* Kept loaded for the life of the process. */
static OSSL_PROVIDER *prov_default;
static OSSL_PROVIDER *prov_legacy;

static const char why_decrypt[] =
    "the envelope cannot be decrypted with the RA certificate's key";
/* The one answer to every failure to open an envelope and read what it
 * holds, per kind: a client learns nothing about which step failed. */
#define KEY_RULE \
	"a key of RSA up to 8192 bits (public exponent up to 64 bits), EC on " \
	"a named curve, Ed25519 or Ed448"
#define CSR_RULE "a PKCS#10 request with a valid self-signature and " KEY_RULE
static const char why_csr[] = "the certificate request is not " CSR_RULE;
static const char *const why_read[SCEP_CONTENT_KINDS] = {
    [SCEP_CONTENT_CSR] = "the envelope does not open with the RA "
                         "certificate's key to " CSR_RULE,
    [SCEP_CONTENT_ISSUER_SERIAL] = "the envelope does not open with the RA "
                                   "certificate's key to an "
                                   "IssuerAndSerialNumber",
    [SCEP_CONTENT_ISSUER_SUBJECT] = "the envelope does not open with the RA "
                                    "certificate's key to an "
                                    "IssuerAndSubject",
};
static const char why_signer_key[] =
    "the signer certificate's key is refused before its signature is "
    "checked: sign with " KEY_RULE;

static const char why_signer_not_rsa[] =
    "the reply is encrypted to the signer certificate by key transport "
    "(RFC 8894 3.1): sign the request with an RSA key (an EC key is "
    "certified by a renewal signed with an RSA certificate of this CA)";

/*
 * What a failed read reads instead, so that it costs what a successful one
 * does (see csr_read, content_read): per kind, a valid DER content made
 * once, and the request also parsed once (shared read-only by every
 * thread, for its signature check). The request is an RSA-2048 one, the
 * most common device key; its private key is not kept anywhere.
 */
static const char decoy_csr_pem[] =
    "-----BEGIN CERTIFICATE REQUEST-----\n"
    "MIICYzCCAUsCAQAwHjEcMBoGA1UEAwwTc2NlcGQgZGVjb3kgcmVxdWVzdDCCASIw\n"
    "DQYJKoZIhvcNAQEBBQADggEPADCCAQoCggEBAKub/0Fh6RJAq2s2ldDeozlP4Ja+\n"
    "+l7niZRlZAvU6Q0dGHtf0h6ppzj+zjmsOyOyLQxqPNSB5kzuAfWzxsH68rjTpbwU\n"
    "hvSAvE1byPxfvPHXq5djs1om/87bbutpAmQKalmEeCcauuhelWyT39BVi3zAa6Bs\n"
    "RStSrhNd0BTaqRuezychMfPQlVeIZlySh1bgSiswt8vP9/9DFDICQpxD579D+dBW\n"
    "tfqYucGvl6BAqIMEfaPvXrkEOGcw7eF2rB4lxlW9IvTe97AS21vN4hSS13sGogxN\n"
    "N8Rk8k3MZY7pJqAUCDdv/bbNeTUGG54V/Q9EoC9yiqgTrrw4+n3x2TCn2xcCAwEA\n"
    "AaAAMA0GCSqGSIb3DQEBCwUAA4IBAQAmWJTsaVn51BZXuNzTJy/bxnHRnolQX4nS\n"
    "mCbGqn1P9W9AZ63jlLw1VhDO7GpGpQb1YjAeSNRzNcivrXZVD0cT+fPliKbTnu1D\n"
    "aqmN73nkJOqj+1YBxM2fiJ1dN4fKT053iIFpa1eBiHLz0NzjpkjNJFTOktQuhxq/\n"
    "rsse2I5lPG9p43oe549EC1CaW0/5j0QAAck4X6keAiL5d38dp+27CRWvi6IGbtYW\n"
    "5eB57gntMQJkysenCkipetoqBkqXoBvQ/MlErEWzT/MZylBi/mR8tRlbqkQj+c7+\n"
    "AqYzZU+GtzzyOBHDM4PISp3XHzPZfG7hxOxWZkgXuHlH9lR6QTok\n"
    "-----END CERTIFICATE REQUEST-----\n";
static uint8_t *decoy_der[SCEP_CONTENT_KINDS];
static size_t decoy_len[SCEP_CONTENT_KINDS];
static X509_REQ *decoy_req;
static const char why_des[] = "single DES is refused (RFC 8894); set "
                              "AllowDES = 1 in the [ra] section to allow it";

const char *
scep_strerror(int err)
{
	switch (err) {
	case SCEP_OK:
		return "success";
	case SCEP_E_NOMEM:
		return "out of memory";
	case SCEP_E_PARSE:
		return "malformed message";
	case SCEP_E_CONTENT:
		return "wrong content type or missing part";
	case SCEP_E_SIGNATURE:
		return "signature does not verify";
	case SCEP_E_ATTRIBUTE:
		return "required signed attribute missing or malformed";
	case SCEP_E_ALGORITHM:
		return "algorithm refused by policy";
	case SCEP_E_DECRYPT:
		return "envelope cannot be decrypted";
	case SCEP_E_CSR:
		return "certificate request unreadable or badly signed";
	case SCEP_E_BUILD:
		return "building the message failed";
	case SCEP_E_KEY:
		return "key refused before any signature math";
	}
	return "unknown error";
}

const char *
scep_failinfo_name(int failinfo)
{
	switch (failinfo) {
	case SCEP_FAILINFO_NONE:
		return "none";
	case SCEP_FAILINFO_BAD_ALG:
		return "badAlg";
	case SCEP_FAILINFO_BAD_MESSAGE_CHECK:
		return "badMessageCheck";
	case SCEP_FAILINFO_BAD_REQUEST:
		return "badRequest";
	case SCEP_FAILINFO_BAD_TIME:
		return "badTime";
	case SCEP_FAILINFO_BAD_CERT_ID:
		return "badCertId";
	}
	return "unknown";
}

const char *
scep_message_type_name(int type)
{
	switch (type) {
	case SCEP_MSG_CERTREP:
		return "CertRep";
	case SCEP_MSG_RENEWALREQ:
		return "RenewalReq";
	case SCEP_MSG_PKCSREQ:
		return "PKCSReq";
	case SCEP_MSG_CERTPOLL:
		return "CertPoll";
	case SCEP_MSG_GETCERT:
		return "GetCert";
	case SCEP_MSG_GETCRL:
		return "GetCRL";
	}
	return "unknown";
}

/* --- initialisation ------------------------------------------------------ */

static int
register_oid(const char *oid, const char *sn, const char *ln)
{
	int nid = OBJ_txt2nid(oid);

	if (nid == NID_undef)
		nid = OBJ_create(oid, sn, ln);
	return nid;
}

static int der_take(unsigned char *der, int n, uint8_t **out, size_t *out_len);

/* The stand-ins of decoy_der, made once; 0 or -1. */
static int
decoys_make(void)
{
	BIO *bio = NULL;
	X509_REQ *req = NULL;
	X509_NAME *name = NULL;
	ASN1_INTEGER *serial = NULL;
	unsigned char *der = NULL;
	int n, rc = -1;

	if ((bio = BIO_new_mem_buf(decoy_csr_pem, -1)) == NULL ||
	    (req = PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL)) == NULL ||
	    (n = i2d_X509_REQ(req, &der)) <= 0 ||
	    der_take(der, n, &decoy_der[SCEP_CONTENT_CSR],
	        &decoy_len[SCEP_CONTENT_CSR]) != SCEP_OK)
		goto out;
	decoy_req = req;
	req = NULL;
	if ((name = X509_NAME_new()) == NULL ||
	    !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	        (const unsigned char *)"scepd decoy", -1, -1, 0) ||
	    (serial = ASN1_INTEGER_new()) == NULL ||
	    !ASN1_INTEGER_set(serial, 1) ||
	    scep_issuer_serial_build(name, serial,
	        &decoy_der[SCEP_CONTENT_ISSUER_SERIAL],
	        &decoy_len[SCEP_CONTENT_ISSUER_SERIAL]) != SCEP_OK ||
	    scep_issuer_subject_build(name, name,
	        &decoy_der[SCEP_CONTENT_ISSUER_SUBJECT],
	        &decoy_len[SCEP_CONTENT_ISSUER_SUBJECT]) != SCEP_OK)
		goto out;
	rc = 0;
out:
	ASN1_INTEGER_free(serial);
	X509_NAME_free(name);
	X509_REQ_free(req);
	BIO_free(bio);
	return rc;
}

static void
init_once_fn(void)
{
	nid_message_type = register_oid(
	    "2.16.840.1.113733.1.9.2", "scepMessageType", "SCEP messageType");
	nid_pki_status = register_oid(
	    "2.16.840.1.113733.1.9.3", "scepPkiStatus", "SCEP pkiStatus");
	nid_fail_info = register_oid(
	    "2.16.840.1.113733.1.9.4", "scepFailInfo", "SCEP failInfo");
	nid_sender_nonce = register_oid(
	    "2.16.840.1.113733.1.9.5", "scepSenderNonce", "SCEP senderNonce");
	nid_recipient_nonce = register_oid("2.16.840.1.113733.1.9.6",
	    "scepRecipientNonce", "SCEP recipientNonce");
	nid_transaction_id = register_oid("2.16.840.1.113733.1.9.7",
	    "scepTransactionID", "SCEP transactionID");
	nid_fail_info_text = register_oid(
	    "1.3.6.1.5.5.7.24.1", "scepFailInfoText", "SCEP failInfoText");
	if (nid_message_type == NID_undef || nid_pki_status == NID_undef ||
	    nid_fail_info == NID_undef || nid_sender_nonce == NID_undef ||
	    nid_recipient_nonce == NID_undef ||
	    nid_transaction_id == NID_undef ||
	    nid_fail_info_text == NID_undef) {
		init_rc = SCEP_E_NOMEM;
		ERR_clear_error();
		return;
	}
	/*
	 * Loading a provider explicitly stops OpenSSL from loading the
	 * default one implicitly: the default first, the legacy one (single
	 * DES) only when asked (scep_load_single_des).
	 */
	prov_default = OSSL_PROVIDER_load(NULL, "default");
	init_rc =
	    prov_default != NULL && decoys_make() == 0 ? SCEP_OK : SCEP_E_NOMEM;
	ERR_clear_error();
}

int
scep_init(void)
{
	if (!CRYPTO_THREAD_run_once(&init_once, init_once_fn)) {
		ERR_clear_error();
		return SCEP_E_NOMEM;
	}
	return init_rc;
}

static CRYPTO_ONCE legacy_once = CRYPTO_ONCE_STATIC_INIT;

static void
legacy_once_fn(void)
{
	prov_legacy = OSSL_PROVIDER_load(NULL, "legacy");
	ERR_clear_error();
}

int
scep_load_single_des(void)
{
	if (scep_init() != SCEP_OK ||
	    !CRYPTO_THREAD_run_once(&legacy_once, legacy_once_fn)) {
		ERR_clear_error();
		return SCEP_E_NOMEM;
	}
	return prov_legacy != NULL ? SCEP_OK : SCEP_E_ALGORITHM;
}

/* --- helpers ------------------------------------------------------------- */

static PKCS7 *
pkcs7_read(const uint8_t *der, size_t len)
{
	const unsigned char *p = der;

	if (der == NULL || len == 0 || len > LONG_MAX)
		return NULL;
	return x509parse_pkcs7(&p, (long)len);
}

/* Same, refusing bytes after the structure. */
static PKCS7 *
pkcs7_read_exact(const uint8_t *der, size_t len)
{
	const unsigned char *p = der;
	PKCS7 *p7;

	if (der == NULL || len == 0 || len > LONG_MAX)
		return NULL;
	if ((p7 = x509parse_pkcs7(&p, (long)len)) != NULL && p != der + len) {
		PKCS7_free(p7);
		p7 = NULL;
	}
	return p7;
}

/* An OpenSSL-allocated encoding (freed here) into a malloc'ed buffer. */
static int
der_take(unsigned char *der, int n, uint8_t **out, size_t *out_len)
{
	uint8_t *buf;

	if (n <= 0) {
		OPENSSL_free(der);
		return SCEP_E_BUILD;
	}
	if ((buf = malloc((size_t)n)) == NULL) {
		OPENSSL_free(der);
		return SCEP_E_NOMEM;
	}
	memcpy(buf, der, (size_t)n);
	OPENSSL_free(der);
	*out = buf;
	*out_len = (size_t)n;
	return SCEP_OK;
}

/* DER (or streamed BER) of a PKCS7 into a malloc'ed buffer. */
static int
bio_to_buf(BIO *bio, uint8_t **out, size_t *out_len)
{
	char *data = NULL;
	long n = BIO_get_mem_data(bio, &data);
	uint8_t *buf;

	if (n <= 0)
		return SCEP_E_BUILD;
	if ((buf = malloc((size_t)n)) == NULL)
		return SCEP_E_NOMEM;
	memcpy(buf, data, (size_t)n);
	*out = buf;
	*out_len = (size_t)n;
	return SCEP_OK;
}

static int
pkcs7_to_der(PKCS7 *p7, uint8_t **out, size_t *out_len)
{
	unsigned char *der = NULL;
	int n = i2d_PKCS7(p7, &der);

	return der_take(der, n, out, out_len);
}

static int
is_text_type(int type)
{
	return type == V_ASN1_PRINTABLESTRING || type == V_ASN1_UTF8STRING ||
	    type == V_ASN1_IA5STRING || type == V_ASN1_T61STRING ||
	    type == V_ASN1_VISIBLESTRING || type == V_ASN1_GENERALSTRING;
}

/*
 * A signed attribute holding text of any string type (clients differ),
 * returned as a C string; only printable ASCII, as it ends up in logs and as
 * a database key.
 */
static char *
attr_text(PKCS7_SIGNER_INFO *si, int nid, size_t maxlen)
{
	ASN1_TYPE *t = PKCS7_get_signed_attribute(si, nid);
	const unsigned char *data;
	char *s;
	int len;

	if (t == NULL || !is_text_type(t->type) || t->value.asn1_string == NULL)
		return NULL;
	data = ASN1_STRING_get0_data(t->value.asn1_string);
	len = ASN1_STRING_length(t->value.asn1_string);
	if (len <= 0 || (size_t)len > maxlen)
		return NULL;
	for (int i = 0; i < len; i++)
		if (data[i] < 0x20 || data[i] > 0x7e)
			return NULL;
	if ((s = malloc((size_t)len + 1)) == NULL)
		return NULL;
	memcpy(s, data, (size_t)len);
	s[len] = '\0';
	return s;
}

/* Same for failInfoText: UTF-8 allowed, control characters refused. */
static char *
attr_utf8(PKCS7_SIGNER_INFO *si, int nid)
{
	ASN1_TYPE *t = PKCS7_get_signed_attribute(si, nid);
	const unsigned char *data;
	char *s;
	int len;

	if (t == NULL || !is_text_type(t->type) || t->value.asn1_string == NULL)
		return NULL;
	data = ASN1_STRING_get0_data(t->value.asn1_string);
	len = ASN1_STRING_length(t->value.asn1_string);
	if (len < 0 || len > 4096)
		return NULL;
	for (int i = 0; i < len; i++)
		if (data[i] < 0x20 || data[i] == 0x7f)
			return NULL;
	if ((s = malloc((size_t)len + 1)) == NULL)
		return NULL;
	memcpy(s, data, (size_t)len);
	s[len] = '\0';
	return s;
}

/*
 * Each signed attribute once, with one value (RFC 5652 11 for contentType,
 * messageDigest and signingTime; SCEP's are single-valued): the readers
 * below take the first, and the SET's DER order decides which that is,
 * so messageType {22, 19} was read as whichever sorts first.
 */
static int
attrs_single(PKCS7_SIGNER_INFO *si)
{
	STACK_OF(X509_ATTRIBUTE) *attrs = PKCS7_get_signed_attributes(si);
	int n = sk_X509_ATTRIBUTE_num(attrs);

	/* A client sends 6 to 10; the loop below is quadratic. */
	if (n > 64)
		return 0;
	for (int i = 0; i < n; i++) {
		X509_ATTRIBUTE *a = sk_X509_ATTRIBUTE_value(attrs, i);

		if (X509_ATTRIBUTE_count(a) != 1)
			return 0;
		for (int j = 0; j < i; j++)
			if (OBJ_cmp(X509_ATTRIBUTE_get0_object(a),
			        X509_ATTRIBUTE_get0_object(
			            sk_X509_ATTRIBUTE_value(attrs, j))) == 0)
				return 0;
	}
	return 1;
}

/* A decimal number in a PrintableString (messageType, pkiStatus, ...). */
static int
attr_number(PKCS7_SIGNER_INFO *si, int nid, int *value)
{
	ASN1_TYPE *t = PKCS7_get_signed_attribute(si, nid);
	const unsigned char *data;
	int len, v = 0;

	if (t == NULL || !is_text_type(t->type) || t->value.asn1_string == NULL)
		return -1;
	data = ASN1_STRING_get0_data(t->value.asn1_string);
	len = ASN1_STRING_length(t->value.asn1_string);
	if (len <= 0 || len > 4)
		return -1;
	for (int i = 0; i < len; i++) {
		if (data[i] < '0' || data[i] > '9')
			return -1;
		v = v * 10 + (data[i] - '0');
	}
	*value = v;
	return 0;
}

static int
attr_octets(PKCS7_SIGNER_INFO *si, int nid, uint8_t **out, size_t *out_len)
{
	ASN1_TYPE *t = PKCS7_get_signed_attribute(si, nid);
	int len;

	*out = NULL;
	*out_len = 0;
	if (t == NULL || t->type != V_ASN1_OCTET_STRING ||
	    t->value.octet_string == NULL)
		return -1;
	len = ASN1_STRING_length(t->value.octet_string);
	if (len <= 0 || len > SCEP_NONCE_MAX)
		return -1;
	if ((*out = malloc((size_t)len)) == NULL)
		return -1;
	memcpy(*out, ASN1_STRING_get0_data(t->value.octet_string), (size_t)len);
	*out_len = (size_t)len;
	return 0;
}

/* Adds a copy of the bytes as a signed attribute (ownership stays ours). */
static int
attr_add(
    PKCS7_SIGNER_INFO *si, int nid, int type, const void *bytes, size_t len)
{
	if (len > INT_MAX)
		return -1;
	if (X509at_add1_attr_by_NID(
	        &si->auth_attr, nid, type, bytes, (int)len) == NULL)
		return -1;
	return 0;
}

static int
attr_add_text(PKCS7_SIGNER_INFO *si, int nid, const char *s)
{
	size_t len = strlen(s);
	int type;

	if (len > INT_MAX)
		return -1;
	/* PrintableString where the characters allow it (RFC 8894), else
	 * the narrowest type that holds them, so strict decoders (Go's
	 * encoding/asn1) accept what we echo back. */
	type = ASN1_PRINTABLE_type((const unsigned char *)s, (int)len);
	if (type == V_ASN1_T61STRING)
		type = V_ASN1_UTF8STRING;
	return attr_add(si, nid, type, s, len);
}

static int
attr_add_number(PKCS7_SIGNER_INFO *si, int nid, int value)
{
	char buf[16];

	snprintf(buf, sizeof(buf), "%d", value);
	return attr_add(si, nid, V_ASN1_PRINTABLESTRING, buf, strlen(buf));
}

static int
digest_nid_of(PKCS7_SIGNER_INFO *si)
{
	if (si->digest_alg == NULL || si->digest_alg->algorithm == NULL)
		return NID_undef;
	return OBJ_obj2nid(si->digest_alg->algorithm);
}

/*
 * Whether a key is one whose signature we check (scep.h: RSA up to
 * SCEP_RSA_MAX_BITS, EC on a named curve, Ed25519, Ed448), decided on its
 * public parameters alone. OpenSSL verifies RSA up to 16384 bits, with any
 * exponent up to 3072 bits (one such check costs what a private-key
 * operation does), and builds an EC group from whatever explicit
 * parameters come (an attacker's curve; CVE-2022-0778's loop was there).
 */
static int
key_affordable(EVP_PKEY *pk)
{
	BIGNUM *e = NULL;
	char enc[32];
	int ok = 0;

	switch (pk == NULL ? EVP_PKEY_NONE : EVP_PKEY_get_base_id(pk)) {
	case EVP_PKEY_RSA:
	case EVP_PKEY_RSA_PSS:
		ok = EVP_PKEY_get_bits(pk) <= SCEP_RSA_MAX_BITS &&
		    EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_E, &e) == 1 &&
		    BN_num_bits(e) <= SCEP_RSA_MAX_EXP_BITS;
		break;
	case EVP_PKEY_EC:
		ok = EVP_PKEY_get_utf8_string_param(pk,
		         OSSL_PKEY_PARAM_EC_ENCODING, enc, sizeof(enc),
		         NULL) == 1 &&
		    strcmp(enc, OSSL_PKEY_EC_ENCODING_GROUP) == 0;
		break;
	case EVP_PKEY_ED25519:
	case EVP_PKEY_ED448:
		ok = 1;
		break;
	}
	BN_free(e);
	return ok;
}

/*
 * A SignerInfo signed with RSASSA-PSS (RFC 4056; strongSwan's pki
 * --rsa-padding pss), which OpenSSL's PKCS#7 verifies only as PKCS#1 v1.5:
 * the messageDigest attribute (an OCTET STRING, checked by the caller) the
 * content's digest, and the signature over the signed attributes checked
 * with the parameters it names (ASN1_item_verify reads them). Its hash
 * must be the SignerInfo's digestAlgorithm, which the caller's policy
 * judges. 1 when it verifies.
 */
static int
pss_verify(PKCS7_SIGNER_INFO *si, const ASN1_OCTET_STRING *content,
    const ASN1_OCTET_STRING *message_digest, X509 *signer)
{
	const EVP_MD *md = EVP_get_digestbyobj(si->digest_alg->algorithm);
	const X509_ALGOR *pss_alg = si->digest_enc_alg;
	const ASN1_STRING *params;
	const unsigned char *p;
	RSA_PSS_PARAMS *pss = NULL;
	unsigned char got[EVP_MAX_MD_SIZE];
	unsigned int got_len = 0;
	int pss_md, ok = 0;

	if (md == NULL || sk_X509_ATTRIBUTE_num(si->auth_attr) == 0 ||
	    pss_alg->parameter == NULL ||
	    pss_alg->parameter->type != V_ASN1_SEQUENCE)
		goto out;
	params = pss_alg->parameter->value.sequence;
	p = ASN1_STRING_get0_data(params);
	if ((pss = d2i_RSA_PSS_PARAMS(NULL, &p, ASN1_STRING_length(params))) ==
	    NULL)
		goto out;
	pss_md = pss->hashAlgorithm != NULL
	    ? OBJ_obj2nid(pss->hashAlgorithm->algorithm)
	    : NID_sha1;
	if (pss_md != EVP_MD_get_type(md) ||
	    EVP_Digest(content != NULL ? ASN1_STRING_get0_data(content)
	                               : (const unsigned char *)"",
	        content != NULL ? (size_t)ASN1_STRING_length(content) : 0, got,
	        &got_len, md, NULL) != 1 ||
	    (int)got_len != ASN1_STRING_length(message_digest) ||
	    CRYPTO_memcmp(
	        got, ASN1_STRING_get0_data(message_digest), got_len) != 0)
		goto out;
	ok = ASN1_item_verify(ASN1_ITEM_rptr(PKCS7_ATTR_VERIFY), pss_alg,
	         si->enc_digest, si->auth_attr, X509_get0_pubkey(signer)) == 1;
out:
	RSA_PSS_PARAMS_free(pss);
	ERR_clear_error();
	return ok;
}

/*
 * Verifies a SignedData with exactly one SignerInfo, the content (if any)
 * being id-data. `certs` (may be NULL) with `flags` PKCS7_NOINTERN restricts
 * the signer to those certificates. With `check_key` (a request's signer)
 * the signer's key must pass key_affordable() (SCEP_E_KEY) and be RSA
 * (SCEP_E_ALGORITHM: the reply's envelope is key transport to it, RFC 8894
 * 3.1), both before any signature math: OpenSSL 3.0's PKCS#7 cannot verify
 * Ed25519 or Ed448 at all, and an EC signer would be refused anyway.
 * Returns the signer (up-ref'd) or NULL; *err tells why.
 */
static X509 *
signed_verify(
    PKCS7 *p7, STACK_OF(X509) * certs, int flags, int check_key, int *err)
{
	STACK_OF(X509) *signers = NULL;
	PKCS7_SIGNED *sd;
	PKCS7_SIGNER_INFO *si;
	ASN1_TYPE *digest = NULL;
	BIO *indata = NULL;
	X509 *signer = NULL;

	*err = SCEP_E_CONTENT;
	if (!PKCS7_type_is_signed(p7) || (sd = p7->d.sign) == NULL ||
	    sd->contents == NULL || !PKCS7_type_is_data(sd->contents))
		goto out;
	if (sk_PKCS7_SIGNER_INFO_num(sd->signer_info) != 1)
		goto out;
	signers = PKCS7_get0_signers(p7, certs, flags);
	if (signers == NULL || sk_X509_num(signers) != 1)
		goto out;
	if (check_key &&
	    !key_affordable(X509_get0_pubkey(sk_X509_value(signers, 0)))) {
		*err = SCEP_E_KEY;
		goto out;
	}
	if (check_key &&
	    EVP_PKEY_get_base_id(X509_get0_pubkey(sk_X509_value(signers, 0))) !=
	        EVP_PKEY_RSA) {
		*err = SCEP_E_ALGORITHM;
		goto out;
	}
	/* No eContent means the signature covers empty content. */
	if (sd->contents->d.data == NULL &&
	    (indata = BIO_new_mem_buf("", 0)) == NULL) {
		*err = SCEP_E_NOMEM;
		goto out;
	}
	*err = SCEP_E_SIGNATURE;
	/* Signed attributes' messageDigest an OCTET STRING before OpenSSL
	 * reads it: releases before 3.0.19 took any type (CVE-2026-22796: a
	 * BOOLEAN crashed them), and CMakeLists asks only for 3.0. */
	si = sk_PKCS7_SIGNER_INFO_value(sd->signer_info, 0);
	if (sk_X509_ATTRIBUTE_num(PKCS7_get_signed_attributes(si)) > 0 &&
	    ((digest = PKCS7_get_signed_attribute(
	          si, NID_pkcs9_messageDigest)) == NULL ||
	        digest->type != V_ASN1_OCTET_STRING))
		goto out;
	if (OBJ_obj2nid(si->digest_enc_alg->algorithm) == NID_rsassaPss) {
		if (digest == NULL ||
		    !pss_verify(si, sd->contents->d.data,
		        digest->value.octet_string, sk_X509_value(signers, 0)))
			goto out;
	} else if (PKCS7_verify(p7, certs, NULL, indata, NULL,
	               flags | PKCS7_NOVERIFY | PKCS7_BINARY) != 1)
		goto out;
	signer = sk_X509_value(signers, 0);
	if (!X509_up_ref(signer)) {
		signer = NULL;
		*err = SCEP_E_NOMEM;
		goto out;
	}
	*err = SCEP_OK;
out:
	BIO_free(indata);
	sk_X509_free(signers);
	return signer;
}

/* --- server side --------------------------------------------------------- */

void
scep_request_free(struct scep_request *req)
{
	if (req == NULL)
		return;
	free(req->transaction_id);
	free(req->sender_nonce);
	X509_free(req->signer);
	free(req->envelope);
	free(req);
}

/* Digests accepted in a request's SignerInfo; *why on refusal. */
static int
digest_allowed(int nid, const struct scep_alg_policy *policy, const char **why)
{
	switch (nid) {
	case NID_sha224:
	case NID_sha256:
	case NID_sha384:
	case NID_sha512:
		return 1;
	case NID_sha1:
		if (policy->allow_sha1)
			return 1;
		*why = "SHA-1 signatures are refused; set AllowSHA1 = 1 in the "
		       "[ra] section to allow them";
		return 0;
	case NID_md5:
		*why = "MD5 signatures are refused";
		return 0;
	}
	*why = "the request's digest algorithm is not supported";
	return 0;
}

/* RSASSA-PSS names its digest in its parameters (RFC 4055): SHA-1 when
 * they say none. NID_undef when they cannot be read. */
static int
csr_pss_digest(const X509_REQ *csr)
{
	const X509_ALGOR *alg = NULL;
	const ASN1_OBJECT *obj;
	const void *pval;
	const ASN1_STRING *seq;
	const unsigned char *p;
	RSA_PSS_PARAMS *pss;
	int ptype, md = NID_undef;

	X509_REQ_get0_signature(csr, NULL, &alg);
	X509_ALGOR_get0(&obj, &ptype, &pval, alg);
	if (ptype != V_ASN1_SEQUENCE || (seq = pval) == NULL)
		return NID_undef;
	p = ASN1_STRING_get0_data(seq);
	if ((pss = d2i_RSA_PSS_PARAMS(NULL, &p, ASN1_STRING_length(seq))) ==
	    NULL) {
		ERR_clear_error();
		return NID_undef;
	}
	md = pss->hashAlgorithm != NULL
	    ? OBJ_obj2nid(pss->hashAlgorithm->algorithm)
	    : NID_sha1;
	RSA_PSS_PARAMS_free(pss);
	return md;
}

int
scep_csr_digest_allowed(
    const X509_REQ *csr, const struct scep_alg_policy *policy, const char **why)
{
	int md = NID_undef, pk = NID_undef;

	if (OBJ_find_sigid_algs(X509_REQ_get_signature_nid(csr), &md, &pk) !=
	    1) {
		*why = "the CSR's signature algorithm is not supported";
		return 0;
	}
	if (pk == EVP_PKEY_RSA_PSS && md == NID_undef)
		md = csr_pss_digest(csr);
	if (digest_allowed(md, policy, why))
		return 1;
	/* The request's policy, in words about the CSR. */
	*why = md == NID_sha1 ? "the CSR is signed with SHA-1, which is "
	                        "refused; set AllowSHA1 = 1 in the [ra] "
	                        "section to allow it"
	    : md == NID_md5 || md == NID_md4 || md == NID_md2
	    ? "the CSR is signed with MD5 (or MD4, MD2), which is refused"
	    /* EdDSA names no digest: its key is what the CA refuses. */
	    : pk == NID_ED25519 || pk == NID_ED448
	    ? "the CSR's key is Ed25519 or Ed448: keys are accepted as RSA "
	      "or EC only"
	    : "the CSR's signature digest is not supported";
	return 0;
}

int
scep_request_parse(const uint8_t *der, size_t len,
    const struct scep_alg_policy *policy, struct scep_request **out,
    int *failinfo, const char **why)
{
	struct scep_request *req = NULL;
	PKCS7 *p7 = NULL;
	PKCS7_SIGNER_INFO *si;
	ASN1_OCTET_STRING *os;
	int rc, fi = SCEP_FAILINFO_NONE;
	const char *w = NULL;

	*out = NULL;
	if (policy == NULL)
		policy = &scep_default_policy;
	if ((rc = scep_init()) != SCEP_OK) {
		w = "SCEP codec not initialised";
		goto out;
	}
	if ((p7 = pkcs7_read(der, len)) == NULL) {
		rc = SCEP_E_PARSE;
		w = "not a PKCS#7 message";
		goto out;
	}
	if ((req = calloc(1, sizeof(*req))) == NULL) {
		rc = SCEP_E_NOMEM;
		w = "out of memory";
		goto out;
	}
	req->signer = signed_verify(p7, NULL, 0, 1, &rc);
	if (req->signer == NULL && rc != SCEP_E_ALGORITHM) {
		if (rc == SCEP_E_KEY)
			w = why_signer_key;
		else if (rc == SCEP_E_CONTENT)
			w = "not a SignedData with one signer whose "
			    "certificate "
			    "is included";
		else if (rc == SCEP_E_SIGNATURE)
			w = "the request's signature does not verify";
		else
			w = "out of memory";
		goto out;
	}
	si = sk_PKCS7_SIGNER_INFO_value(p7->d.sign->signer_info, 0);
	req->digest_nid = digest_nid_of(si);
	if (!attrs_single(si)) {
		rc = SCEP_E_ATTRIBUTE;
		w = "a signed attribute given twice, or with two values";
		goto out;
	}

	/* Without these two no CertRep can be addressed. */
	req->transaction_id = attr_text(si, nid_transaction_id, SCEP_TXID_MAX);
	if (req->transaction_id == NULL ||
	    attr_octets(si, nid_sender_nonce, &req->sender_nonce,
	        &req->sender_nonce_len) != 0) {
		rc = SCEP_E_ATTRIBUTE;
		w = req->transaction_id == NULL
		    ? "transactionID missing or malformed"
		    : "senderNonce missing or malformed";
		goto out;
	}
	/* From here on the caller can answer with a signed CertRep. */
	if (req->signer == NULL) {
		/* Not verified, and no envelope can be made for it: a refusal
		 * the device can read is still better than HTTP 400. Nothing
		 * else of it is read (its messageType for the log only). */
		(void)attr_number(si, nid_message_type, &req->message_type);
		rc = SCEP_E_ALGORITHM;
		fi = SCEP_FAILINFO_BAD_ALG;
		w = why_signer_not_rsa;
		goto out;
	}
	if (!digest_allowed(req->digest_nid, policy, &w)) {
		rc = SCEP_E_ALGORITHM;
		fi = SCEP_FAILINFO_BAD_ALG;
		goto out;
	}
	if (attr_number(si, nid_message_type, &req->message_type) != 0) {
		rc = SCEP_E_ATTRIBUTE;
		fi = SCEP_FAILINFO_BAD_REQUEST;
		w = "messageType missing or malformed";
		goto out;
	}
	os = p7->d.sign->contents->d.data;
	if (os != NULL && ASN1_STRING_length(os) > 0) {
		req->envelope_len = (size_t)ASN1_STRING_length(os);
		if ((req->envelope = malloc(req->envelope_len)) == NULL) {
			req->envelope_len = 0;
			rc = SCEP_E_NOMEM;
			w = "out of memory";
			goto out;
		}
		memcpy(req->envelope, ASN1_STRING_get0_data(os),
		    req->envelope_len);
	}
	rc = SCEP_OK;
out:
	if (rc != SCEP_OK && fi == SCEP_FAILINFO_NONE) {
		scep_request_free(req);
		req = NULL;
	}
	*out = req;
	*failinfo = rc == SCEP_OK ? SCEP_FAILINFO_NONE : fi;
	*why = rc == SCEP_OK ? NULL : w;
	PKCS7_free(p7);
	ERR_clear_error();
	return rc;
}

/* Content-encryption algorithms accepted in a request envelope. */
static int
cipher_allowed(int nid, const struct scep_alg_policy *policy, const char **why)
{
	switch (nid) {
	case NID_aes_128_cbc:
	case NID_aes_192_cbc:
	case NID_aes_256_cbc:
		return 1;
	case NID_des_ede3_cbc:
		if (policy->allow_des3)
			return 1;
		*why = "3DES envelopes are refused; set AllowDES3 = 1 in the "
		       "[ra] section to allow them";
		return 0;
	case NID_des_cbc:
		if (policy->allow_des)
			return 1;
		*why = why_des;
		return 0;
	}
	*why = "the envelope's content-encryption algorithm is not supported";
	return 0;
}

/*
 * Constant-time helpers (OpenSSL's constant_time_* are internal): all ones
 * when the condition holds, else zero, without a branch on the values.
 */
static size_t
ct_lt(size_t a, size_t b)
{
	return 0 -
	    ((a ^ ((a ^ b) | ((a - b) ^ b))) >> (sizeof(size_t) * 8 - 1));
}

static size_t
ct_eq(size_t a, size_t b)
{
	size_t x = a ^ b;

	return 0 - ((~x & (x - 1)) >> (sizeof(size_t) * 8 - 1));
}

/*
 * The length of the PKCS#7 padding ending the `len` bytes (len >= bs), or
 * 0 with *ok cleared when it is not valid. The same bytes are read and the
 * same steps taken whatever they hold: the padding's validity shows only
 * in the final answer, never as an earlier exit (no CBC padding oracle).
 */
static size_t
cbc_unpad(const uint8_t *buf, size_t len, size_t bs, size_t *ok)
{
	size_t pad = buf[len - 1];
	size_t good = ~ct_eq(pad, 0) & ct_lt(pad, bs + 1);

	for (size_t i = 1; i <= bs; i++)
		good &= ct_lt(pad, i) | ct_eq(buf[len - i], pad);
	*ok &= good;
	return pad & good;
}

/* What an envelope decrypted to, right or wrong. */
struct envelope_plain {
	uint8_t *buf; /* the whole decrypted content, padding included */
	size_t len; /* the content without its padding */
	size_t ok; /* all ones when every step succeeded */
	const char *detail; /* the first step that failed, for the log */
	int other_cert; /* no RecipientInfo named a key's certificate: the
	                   first was tried with the RA's */
	size_t key_index; /* the key tried: 0 the RA's, else an earlier one */
	const ASN1_OCTET_STRING *wrapped; /* the key unwrapped; NULL: none */
};

static void
envelope_plain_clear(struct envelope_plain *ep, size_t cap)
{
	if (ep->buf != NULL)
		OPENSSL_clear_free(ep->buf, cap);
	ep->buf = NULL;
}

/* Whether `r` is addressed to `cert` (its issuer and serial). */
static int
recip_names(const PKCS7_RECIP_INFO *r, X509 *cert)
{
	return X509_NAME_cmp(r->issuer_and_serial->issuer,
	           X509_get_issuer_name(cert)) == 0 &&
	    ASN1_INTEGER_cmp(r->issuer_and_serial->serial,
	        X509_get0_serialNumber(cert)) == 0;
}

/*
 * The content-encryption key, as OpenSSL's PKCS7_dataDecode does it with a
 * certificate given (the first RecipientInfo naming keys[0]'s certificate,
 * the RA's, else one naming an earlier RA certificate of keys[1..], whose
 * key is then used: devices that fetched it before the RA's key was
 * replaced still encrypt to it; when none is named, the first RecipientInfo
 * of all with the RA's key, ep->other_cert set: an RA
 * certificate reissued with the same key, at a CA switch or its renewal,
 * is still named by clients and files that fetched it before, and the key
 * opens only what was encrypted to it), and always with one RSA
 * private-key operation: on a ciphertext that is not a number below our
 * modulus, or when there is no RecipientInfo, on a stand-in. Whatever does
 * not unwrap (PKCS#1 v1.5) to a key of
 * the cipher's length is replaced by a random key, chosen without a
 * branch (the MMA defence): the failure then shows only at the end. With
 * OpenSSL's implicit rejection (3.2 and later) a bad block yields a
 * deterministic message instead of an error; that is covered the same
 * way, as a wrong key.
 */
static void
envelope_cek(const PKCS7_ENVELOPE *env, const struct scep_ra_key *keys,
    size_t nkeys, uint8_t *cek, size_t keylen, struct envelope_plain *ep)
{
	EVP_PKEY_CTX *ctx = NULL;
	PKCS7_RECIP_INFO *ri = NULL, *first = NULL;
	BIGNUM *n = NULL;
	uint8_t rnd[EVP_MAX_KEY_LENGTH];
	uint8_t *mod = NULL, *dummy = NULL, *out = NULL;
	const uint8_t *ct;
	size_t k, outlen, usable = 0, got = 0, mask;
	EVP_PKEY *ra_key;
	int size;

	/* Which key is public: the RecipientInfos name their certificates. */
	for (size_t j = 0; j < nkeys && ri == NULL; j++)
		for (int i = 0; i < sk_PKCS7_RECIP_INFO_num(env->recipientinfo);
		     i++) {
			PKCS7_RECIP_INFO *r =
			    sk_PKCS7_RECIP_INFO_value(env->recipientinfo, i);

			if (r->issuer_and_serial == NULL || r->enc_key == NULL)
				continue;
			if (first == NULL)
				first = r;
			if (recip_names(r, keys[j].cert)) {
				ri = r;
				ep->key_index = j;
				break;
			}
		}
	ra_key = keys[ep->key_index].key;
	size = EVP_PKEY_get_size(ra_key);
	if (ri == NULL && (ri = first) != NULL) {
		ep->other_cert = 1;
		/* Whatever the block gives: with implicit rejection (OpenSSL
		 * 3.2) a wrong one may unwrap to a key of the right length and
		 * fail only at the padding. */
		ep->detail = nkeys > 1
		    ? "no RecipientInfo names an RA certificate (the RA's "
		      "key was tried on the first)"
		    : "no RecipientInfo names the RA certificate (the RA's "
		      "key was tried on the first; one replaced with a new "
		      "key opens with [ra] PreviousEncryptionCertificate)";
	}
	if (RAND_priv_bytes(rnd, sizeof(rnd)) != 1 || size <= 0)
		goto out;
	k = (size_t)size;
	if ((mod = OPENSSL_zalloc(k)) == NULL ||
	    (dummy = OPENSSL_zalloc(k)) == NULL ||
	    (out = OPENSSL_zalloc(k)) == NULL)
		goto out;
	/* Below the modulus: its top byte is zero. */
	if (RAND_bytes(dummy + 1, (int)k - 1) != 1)
		goto out;
	ct = dummy;
	if (ri == NULL)
		ep->detail = "no RecipientInfo names the RA certificate";
	else if ((size_t)ri->enc_key->length != k ||
	    EVP_PKEY_get_bn_param(ra_key, OSSL_PKEY_PARAM_RSA_N, &n) != 1 ||
	    BN_bn2binpad(n, mod, (int)k) != (int)k ||
	    memcmp(ri->enc_key->data, mod, k) >= 0) {
		if (ep->detail == NULL)
			ep->detail = "the RecipientInfo's encrypted key is not "
			             "a number below the RA key's modulus";
	} else {
		ct = ri->enc_key->data;
		usable = 1;
	}
	if (ri != NULL)
		ep->wrapped = ri->enc_key;
	outlen = k;
	if ((ctx = EVP_PKEY_CTX_new_from_pkey(NULL, ra_key, NULL)) == NULL ||
	    EVP_PKEY_decrypt_init(ctx) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) <= 0)
		goto out;
	got = usable &
	    (size_t)(EVP_PKEY_decrypt(ctx, out, &outlen, ct, k) == 1) &
	    (size_t)(outlen == keylen);
out:
	mask = 0 - got;
	for (size_t i = 0; i < keylen; i++)
		cek[i] = (uint8_t)((out != NULL ? out[i] & mask : 0) |
		    (rnd[i] & ~mask));
	ep->ok &= mask;
	if (ep->detail == NULL && !got)
		ep->detail = "the RecipientInfo's key does not unwrap (RSA "
		             "PKCS#1 v1.5) to a key of the cipher's length";
	OPENSSL_cleanse(rnd, sizeof(rnd));
	if (out != NULL)
		OPENSSL_clear_free(out, k);
	OPENSSL_free(dummy);
	OPENSSL_free(mod);
	BN_free(n);
	EVP_PKEY_CTX_free(ctx);
}

/*
 * Whether the key ep unwrapped came with this content before, or never:
 * 1; 0 when it came with other content (struct scep_wrapped_keys), -1
 * when that cannot be told. The content is the ciphertext with its
 * cipher and IV, under what it is read as.
 */
static int
envelope_seen(struct scep_wrapped_keys *seen, struct envelope_plain *ep,
    const PKCS7_ENC_CONTENT *ec, enum scep_content_kind kind)
{
	/* The kind, then the cipher and its IV (DER: AES's or 3DES's take
	 * some 30 bytes) */
	uint8_t more[128], *p = more + 1;
	int alg_len, rc = -1;

	if (ep->wrapped == NULL)
		return 1; /* nothing unwrapped: it fails as it is */
	if ((alg_len = i2d_X509_ALGOR(ec->algorithm, NULL)) > 0 &&
	    (size_t)alg_len < sizeof(more) &&
	    i2d_X509_ALGOR(ec->algorithm, &p) == alg_len) {
		more[0] = (uint8_t)kind;
		rc = scep_wrapped_keys_check(seen, ep->wrapped->data,
		    (size_t)ep->wrapped->length,
		    ec->enc_data != NULL ? ec->enc_data->data : NULL,
		    ec->enc_data != NULL ? (size_t)ec->enc_data->length : 0,
		    more, (size_t)alg_len + 1);
	}
	/* Before any other step's reason (an earlier RA certificate named):
	 * this refusal is the one the operator must see. */
	if (rc != 1)
		ep->detail = rc == 0
		    ? "its RecipientInfo's wrapped key came before with other "
		      "content: a device's envelope key reused (refused "
		      "unread: a padding oracle otherwise)"
		    : "its cipher's parameters cannot be read";
	return rc;
}

/*
 * Decrypts the content of `p7` (an EnvelopedData whose cipher passed the
 * policy) into ep, padding and all, whatever goes wrong on the way: every
 * failure only clears ep->ok. SCEP_OK, or SCEP_E_NOMEM when nothing could
 * be decrypted at all; *cap is the size of ep->buf.
 */
static int
envelope_decrypt(PKCS7 *p7, int cipher_nid, const struct scep_ra_key *keys,
    size_t nkeys, struct envelope_plain *ep, size_t *cap)
{
	PKCS7_ENC_CONTENT *ec = p7->d.enveloped->enc_data;
	EVP_CIPHER *cipher = NULL;
	EVP_CIPHER_CTX *ctx = NULL;
	ASN1_TYPE *param = ec->algorithm->parameter;
	uint8_t cek[EVP_MAX_KEY_LENGTH], iv[EVP_MAX_IV_LENGTH];
	const uint8_t *ct = NULL;
	size_t keylen, ivlen, bs, ct_len = 0, aligned;
	int n = 0, m = 0, rc = SCEP_E_NOMEM;

	memset(ep, 0, sizeof(*ep));
	*cap = 0;
	ep->ok = ~(size_t)0;
	if ((cipher = EVP_CIPHER_fetch(NULL, OBJ_nid2sn(cipher_nid), NULL)) ==
	    NULL) {
		/* Single DES without the legacy provider: public, and
		 * answered as any envelope that does not open. */
		ep->ok = 0;
		ep->detail = "the content cipher is not available";
		goto out;
	}
	keylen = (size_t)EVP_CIPHER_get_key_length(cipher);
	ivlen = (size_t)EVP_CIPHER_get_iv_length(cipher);
	bs = (size_t)EVP_CIPHER_get_block_size(cipher);
	if (keylen > sizeof(cek) || ivlen > sizeof(iv) || bs == 0)
		goto out;
	envelope_cek(p7->d.enveloped, keys, nkeys, cek, keylen, ep);

	memset(iv, 0, sizeof(iv));
	if (param != NULL && param->type == V_ASN1_OCTET_STRING &&
	    (size_t)ASN1_STRING_length(param->value.octet_string) == ivlen)
		memcpy(iv, ASN1_STRING_get0_data(param->value.octet_string),
		    ivlen);
	else {
		ep->ok = 0;
		if (ep->detail == NULL)
			ep->detail = "the content cipher's IV is missing or of "
			             "the wrong length";
	}
	if (ec->enc_data != NULL && ASN1_STRING_length(ec->enc_data) > 0) {
		ct = ASN1_STRING_get0_data(ec->enc_data);
		ct_len = (size_t)ASN1_STRING_length(ec->enc_data);
	}
	aligned = ct_len - ct_len % bs;
	if (aligned == 0 || aligned != ct_len || aligned > INT_MAX - bs) {
		ep->ok = 0;
		if (ep->detail == NULL)
			ep->detail = "the encrypted content is empty or not "
			             "whole blocks";
		if (aligned > INT_MAX - bs)
			aligned = 0;
	}
	if ((ep->buf = OPENSSL_zalloc(aligned + bs)) == NULL)
		goto out;
	*cap = aligned + bs;
	/* Padding is checked below, not by OpenSSL's early exit. */
	if ((ctx = EVP_CIPHER_CTX_new()) == NULL ||
	    !EVP_DecryptInit_ex2(ctx, cipher, cek, iv, NULL) ||
	    !EVP_CIPHER_CTX_set_padding(ctx, 0) ||
	    (aligned > 0 &&
	        !EVP_DecryptUpdate(ctx, ep->buf, &n, ct, (int)aligned)) ||
	    !EVP_DecryptFinal_ex(ctx, ep->buf + n, &m) ||
	    (size_t)n + (size_t)m != aligned)
		goto out;
	if (aligned >= bs) {
		size_t before = ep->ok;

		ep->len = aligned - cbc_unpad(ep->buf, aligned, bs, &ep->ok);
		if (ep->detail == NULL && before != ep->ok)
			ep->detail = "the decrypted content's padding is wrong "
			             "(another key, or an altered ciphertext)";
	}
	rc = SCEP_OK;
out:
	if (rc != SCEP_OK) {
		envelope_plain_clear(ep, *cap);
		*cap = 0;
		ep->len = 0;
		ep->ok = 0;
	}
	OPENSSL_cleanse(cek, sizeof(cek));
	EVP_CIPHER_CTX_free(ctx);
	EVP_CIPHER_free(cipher);
	return rc;
}

/*
 * The envelope's public header: an EnvelopedData whose cipher the policy
 * allows. SCEP_OK with *p7 set, or the error, failInfo and why to answer.
 */
static int
envelope_header(const uint8_t *env, size_t len,
    const struct scep_alg_policy *policy, PKCS7 **p7, int *cipher_nid, int *fi,
    const char **w)
{
	PKCS7_ENC_CONTENT *ec;

	*cipher_nid = NID_undef;
	*fi = SCEP_FAILINFO_BAD_REQUEST;
	if (policy == NULL)
		policy = &scep_default_policy;
	if (scep_init() != SCEP_OK) {
		*w = "SCEP codec not initialised";
		return SCEP_E_NOMEM;
	}
	if ((*p7 = pkcs7_read(env, len)) == NULL) {
		*w = "the pkcsPKIEnvelope is not a PKCS#7 message";
		return SCEP_E_PARSE;
	}
	if (!PKCS7_type_is_enveloped(*p7) || (*p7)->d.enveloped == NULL ||
	    (ec = (*p7)->d.enveloped->enc_data) == NULL ||
	    ec->algorithm == NULL) {
		*w = "the pkcsPKIEnvelope is not an EnvelopedData";
		return SCEP_E_CONTENT;
	}
	*cipher_nid = OBJ_obj2nid(ec->algorithm->algorithm);
	if (!cipher_allowed(*cipher_nid, policy, w)) {
		*fi = SCEP_FAILINFO_BAD_ALG;
		return SCEP_E_ALGORITHM;
	}
	return SCEP_OK;
}

int
scep_envelope_open(const uint8_t *env, size_t len, X509 *ra_cert,
    EVP_PKEY *ra_key, const struct scep_alg_policy *policy, uint8_t **plain,
    size_t *plain_len, int *cipher_nid, int *failinfo, const char **why)
{
	struct envelope_plain ep = {0};
	PKCS7 *p7 = NULL;
	size_t cap = 0;
	int rc, fi;
	const char *w = NULL;

	*plain = NULL;
	*plain_len = 0;
	if ((rc = envelope_header(
	         env, len, policy, &p7, cipher_nid, &fi, &w)) != SCEP_OK)
		goto out;
	rc = SCEP_E_DECRYPT;
	fi = SCEP_FAILINFO_BAD_MESSAGE_CHECK;
	w = why_decrypt;
	if (ra_cert == NULL || ra_key == NULL ||
	    envelope_decrypt(p7, *cipher_nid,
	        &(const struct scep_ra_key){ra_cert, ra_key}, 1, &ep,
	        &cap) != SCEP_OK ||
	    !ep.ok || ep.len == 0)
		goto out;
	if ((*plain = malloc(ep.len)) == NULL) {
		rc = SCEP_E_NOMEM;
		w = "out of memory";
		goto out;
	}
	memcpy(*plain, ep.buf, ep.len);
	*plain_len = ep.len;
	rc = SCEP_OK;
out:
	*failinfo = rc == SCEP_OK ? SCEP_FAILINFO_NONE : fi;
	*why = rc == SCEP_OK ? NULL : w;
	envelope_plain_clear(&ep, cap);
	PKCS7_free(p7);
	ERR_clear_error();
	return rc;
}

/*
 * The challengePassword as a C string; exactly one attribute, one value,
 * one of DirectoryString's types (RFC 2985): PrintableString, UTF8String
 * and T61String as sent, BMPString and UniversalString in UTF-8; and
 * IA5String, which clients send too.
 */
static int
csr_challenge(X509_REQ *req, char **challenge, const char **why)
{
	X509_ATTRIBUTE *attr;
	ASN1_TYPE *t;
	const unsigned char *data;
	unsigned char *utf8 = NULL;
	int idx, len, rc = SCEP_E_CSR;

	*challenge = NULL;
	idx = X509_REQ_get_attr_by_NID(req, NID_pkcs9_challengePassword, -1);
	if (idx < 0)
		return SCEP_OK;
	if (X509_REQ_get_attr_by_NID(req, NID_pkcs9_challengePassword, idx) >=
	    0) {
		*why = "more than one challengePassword attribute";
		return SCEP_E_CSR;
	}
	attr = X509_REQ_get_attr(req, idx);
	if (attr == NULL || X509_ATTRIBUTE_count(attr) != 1 ||
	    (t = X509_ATTRIBUTE_get0_type(attr, 0)) == NULL ||
	    (t->type != V_ASN1_PRINTABLESTRING &&
	        t->type != V_ASN1_UTF8STRING && t->type != V_ASN1_IA5STRING &&
	        t->type != V_ASN1_T61STRING && t->type != V_ASN1_BMPSTRING &&
	        t->type != V_ASN1_UNIVERSALSTRING) ||
	    t->value.asn1_string == NULL) {
		*why = "challengePassword is not a single text string";
		return SCEP_E_CSR;
	}
	if (t->type == V_ASN1_BMPSTRING || t->type == V_ASN1_UNIVERSALSTRING) {
		if ((len = ASN1_STRING_to_UTF8(&utf8, t->value.asn1_string)) <
		    0) {
			*why = "challengePassword is not a valid BMPString or "
			       "UniversalString";
			goto out;
		}
		data = utf8;
	} else {
		data = ASN1_STRING_get0_data(t->value.asn1_string);
		len = ASN1_STRING_length(t->value.asn1_string);
	}
	if (len < 0 || memchr(data, '\0', (size_t)len) != NULL) {
		*why = "challengePassword contains a NUL character";
		goto out;
	}
	if ((*challenge = malloc((size_t)len + 1)) == NULL) {
		*why = "out of memory";
		rc = SCEP_E_NOMEM;
		goto out;
	}
	memcpy(*challenge, data, (size_t)len);
	(*challenge)[len] = '\0';
	rc = SCEP_OK;
out:
	if (utf8 != NULL)
		OPENSSL_clear_free(utf8, (size_t)len);
	ERR_clear_error();
	return rc;
}

/*
 * A PKCS#10 request filling `der` exactly, whose key passes
 * key_affordable() and then whose self-signature verifies; 0, or -1 with
 * *detail (static) saying which. Whatever fails, one request is parsed
 * whole and one signature checked, as on success: unparsable bytes are
 * followed by a parse of the stand-in, and a request that fails before
 * its signature has the stand-in's checked instead. Version is not
 * checked: Apple devices send 2 (RFC 2986 says 0).
 */
static int
csr_read(const uint8_t *der, size_t len, X509_REQ **out, const char **detail)
{
	const unsigned char *p = der, *q = decoy_der[SCEP_CONTENT_CSR];
	X509_REQ *req = NULL, *checked = decoy_req;
	EVP_PKEY *pub = NULL, *decoy_pub = NULL;
	int ok;

	*out = NULL;
	if (der != NULL && len > 0 && len <= LONG_MAX)
		req = x509parse_req(&p, (long)len, &pub);
	if (req == NULL) {
		*detail = "not a PKCS#10 request";
		X509_REQ_free(x509parse_req(
		    &q, (long)decoy_len[SCEP_CONTENT_CSR], &decoy_pub));
		EVP_PKEY_free(decoy_pub);
	} else if (p != der + len)
		*detail = "bytes after the PKCS#10 request";
	else if (pub == NULL)
		*detail = "the request's key is unreadable";
	else if (!key_affordable(pub))
		*detail = "the request's key is refused before any signature "
		          "math (type, size or explicit curve)";
	else
		checked = req;
	ok = checked != NULL &&
	    X509_REQ_verify(checked,
	        checked == req ? pub : X509_REQ_get0_pubkey(checked)) == 1;
	if (checked == req && req != NULL) {
		if (ok) {
			/* Only now: i2d may re-encode it from here on. */
			*out = x509parse_req_keyed(req, pub, der, (long)len);
			EVP_PKEY_free(pub);
			if (*out != NULL)
				return 0;
			*detail = "the request's key is unreadable";
			return -1;
		}
		*detail = "the request's self-signature does not verify";
	}
	EVP_PKEY_free(pub);
	X509_REQ_free(req);
	return -1;
}

int
scep_csr_parse(const uint8_t *der, size_t len, X509_REQ **csr, char **challenge,
    int *failinfo, const char **why)
{
	X509_REQ *req = NULL;
	int rc, fi = SCEP_FAILINFO_BAD_REQUEST;
	const char *w = NULL, *detail = NULL;

	*csr = NULL;
	*challenge = NULL;
	if (csr_read(der, len, &req, &detail) != 0) {
		rc = SCEP_E_CSR;
		fi = SCEP_FAILINFO_BAD_MESSAGE_CHECK;
		w = why_csr;
		goto out;
	}
	if ((rc = csr_challenge(req, challenge, &w)) != SCEP_OK)
		goto out;
	*csr = req;
	req = NULL;
	rc = SCEP_OK;
out:
	*failinfo = rc == SCEP_OK ? SCEP_FAILINFO_NONE : fi;
	*why = rc == SCEP_OK ? NULL : w;
	X509_REQ_free(req);
	ERR_clear_error();
	return rc;
}

/*
 * IssuerAndSubject (RFC 8894 3.3.3), CertPoll's content:
 * SEQUENCE { issuer Name, subject Name }.
 */
struct issuer_and_subject {
	X509_NAME *issuer;
	X509_NAME *subject;
};

/* OpenSSL's template macros, laid out as OpenSSL does. */
/* clang-format off */
ASN1_SEQUENCE(ISSUER_AND_SUBJECT) = {
	ASN1_SIMPLE(struct issuer_and_subject, issuer, X509_NAME),
	ASN1_SIMPLE(struct issuer_and_subject, subject, X509_NAME),
} static_ASN1_SEQUENCE_END_name(struct issuer_and_subject, ISSUER_AND_SUBJECT);
/* clang-format on */

/*
 * A decoded X509_NAME re-encodes as the bytes it was read from, BER
 * included; rebuilt from its entries it encodes as DER, so names handed on
 * (to the CA, to a database key) are canonical whatever the client sent.
 */
static X509_NAME *
name_der(const X509_NAME *in)
{
	X509_NAME *out;
	int prev_set = -1;

	if ((out = X509_NAME_new()) == NULL)
		return NULL;
	for (int i = 0; i < X509_NAME_entry_count(in); i++) {
		const X509_NAME_ENTRY *ne = X509_NAME_get_entry(in, i);
		int set = X509_NAME_ENTRY_set(ne);

		/* 0: a new RDN; -1: another value of the previous one. */
		if (!X509_NAME_add_entry(
		        out, ne, -1, i > 0 && set == prev_set ? -1 : 0)) {
			X509_NAME_free(out);
			return NULL;
		}
		prev_set = set;
	}
	return out;
}

int
scep_issuer_serial_parse(const uint8_t *der, size_t len, X509_NAME **issuer,
    ASN1_INTEGER **serial, int *failinfo, const char **why)
{
	PKCS7_ISSUER_AND_SERIAL *ias = NULL;
	const unsigned char *p = der;
	int rc = SCEP_E_PARSE;
	const char *w = "the content is not an IssuerAndSerialNumber";

	*issuer = NULL;
	*serial = NULL;
	if (der == NULL || len == 0 || len > LONG_MAX ||
	    (ias = d2i_PKCS7_ISSUER_AND_SERIAL(NULL, &p, (long)len)) == NULL)
		goto out;
	if (p != der + len) {
		w = "bytes after the IssuerAndSerialNumber";
		goto out;
	}
	if ((*issuer = name_der(ias->issuer)) == NULL) {
		rc = SCEP_E_NOMEM;
		w = "out of memory";
		goto out;
	}
	*serial = ias->serial;
	ias->serial = NULL;
	rc = SCEP_OK;
out:
	*failinfo =
	    rc == SCEP_OK ? SCEP_FAILINFO_NONE : SCEP_FAILINFO_BAD_REQUEST;
	*why = rc == SCEP_OK ? NULL : w;
	PKCS7_ISSUER_AND_SERIAL_free(ias);
	ERR_clear_error();
	return rc;
}

int
scep_issuer_subject_parse(const uint8_t *der, size_t len, X509_NAME **issuer,
    X509_NAME **subject, int *failinfo, const char **why)
{
	struct issuer_and_subject *ias = NULL;
	const unsigned char *p = der;
	int rc = SCEP_E_PARSE;
	const char *w = "the content is not an IssuerAndSubject";

	*issuer = NULL;
	*subject = NULL;
	if (der == NULL || len == 0 || len > LONG_MAX ||
	    (ias = (struct issuer_and_subject *)ASN1_item_d2i(NULL, &p,
	         (long)len, ASN1_ITEM_rptr(ISSUER_AND_SUBJECT))) == NULL)
		goto out;
	if (p != der + len) {
		w = "bytes after the IssuerAndSubject";
		goto out;
	}
	if ((*issuer = name_der(ias->issuer)) == NULL ||
	    (*subject = name_der(ias->subject)) == NULL) {
		X509_NAME_free(*issuer);
		*issuer = NULL;
		rc = SCEP_E_NOMEM;
		w = "out of memory";
		goto out;
	}
	rc = SCEP_OK;
out:
	*failinfo =
	    rc == SCEP_OK ? SCEP_FAILINFO_NONE : SCEP_FAILINFO_BAD_REQUEST;
	*why = rc == SCEP_OK ? NULL : w;
	ASN1_item_free((ASN1_VALUE *)ias, ASN1_ITEM_rptr(ISSUER_AND_SUBJECT));
	ERR_clear_error();
	return rc;
}

void
scep_content_clear(struct scep_content *c)
{
	if (c == NULL)
		return;
	if (c->challenge != NULL) {
		OPENSSL_cleanse(c->challenge, strlen(c->challenge));
		free(c->challenge);
	}
	X509_REQ_free(c->csr);
	if (c->csr_der != NULL) /* its challengePassword */
		OPENSSL_cleanse(c->csr_der, c->csr_der_len);
	free(c->csr_der);
	X509_NAME_free(c->issuer);
	X509_NAME_free(c->subject);
	ASN1_INTEGER_free(c->serial);
	memset(c, 0, sizeof(*c));
}

/* An IssuerAndSerialNumber or IssuerAndSubject into c; 0 or -1. */
static int
names_read(enum scep_content_kind kind, const uint8_t *der, size_t len,
    struct scep_content *c, const char **detail)
{
	int fi;

	if (kind == SCEP_CONTENT_ISSUER_SERIAL)
		return scep_issuer_serial_parse(der, len, &c->issuer,
		           &c->serial, &fi, detail) == SCEP_OK
		    ? 0
		    : -1;
	return scep_issuer_subject_parse(
	           der, len, &c->issuer, &c->subject, &fi, detail) == SCEP_OK
	    ? 0
	    : -1;
}

/*
 * One read of `kind` from decrypted bytes; 0, or -1 with *detail. A
 * failed read is followed by one of the stand-in, so that it costs what a
 * successful one does (csr_read does the same within).
 */
static int
content_read(enum scep_content_kind kind, const uint8_t *der, size_t len,
    struct scep_content *c, const char **detail)
{
	struct scep_content decoy = {0};
	const char *unused;

	if (kind == SCEP_CONTENT_CSR) {
		if (csr_read(der, len, &c->csr, detail) != 0)
			return -1;
		if ((c->csr_der = malloc(len)) == NULL) {
			X509_REQ_free(c->csr);
			c->csr = NULL;
			*detail = "out of memory";
			return -1;
		}
		memcpy(c->csr_der, der, len);
		c->csr_der_len = len;
		return 0;
	}
	if (names_read(kind, der, len, c, detail) == 0)
		return 0;
	(void)names_read(
	    kind, decoy_der[kind], decoy_len[kind], &decoy, &unused);
	scep_content_clear(&decoy);
	return -1;
}

int
scep_envelope_read(const uint8_t *env, size_t len,
    const struct scep_ra_key *keys, size_t nkeys,
    const struct scep_alg_policy *policy, struct scep_wrapped_keys *seen,
    enum scep_content_kind kind, struct scep_content *out, int *cipher_nid,
    int *failinfo, const char **why, const char **detail)
{
	struct envelope_plain ep = {0};
	PKCS7 *p7 = NULL;
	size_t cap = 0;
	int rc, fi, read_ok, unread;
	const char *w = NULL, *d = NULL;

	memset(out, 0, sizeof(*out));
	*detail = NULL;
	if ((unsigned)kind >= SCEP_CONTENT_KINDS) {
		rc = SCEP_E_CONTENT;
		fi = SCEP_FAILINFO_BAD_REQUEST;
		w = "unknown content kind";
		goto out;
	}
	if ((rc = envelope_header(
	         env, len, policy, &p7, cipher_nid, &fi, &w)) != SCEP_OK)
		goto out;
	/*
	 * From here on one path: every step runs whatever the previous one
	 * gave, and a failed read costs what a good one does (content_read),
	 * so that a client can tell neither by the answer nor by its time
	 * which step failed (a padding oracle needs one or the other).
	 */
	if (nkeys == 0 || keys[0].cert == NULL || keys[0].key == NULL ||
	    envelope_decrypt(p7, *cipher_nid, keys, nkeys, &ep, &cap) !=
	        SCEP_OK)
		ep.ok = 0;
	/* Decrypted all the same (the same work whatever is refused), but
	 * its content never read, the stand-in in its place: how long
	 * chosen blocks take to parse is the oracle. ep.ok cleared fails
	 * the read whatever it gives. */
	unread = seen != NULL &&
	    envelope_seen(seen, &ep, p7->d.enveloped->enc_data, kind) != 1;
	if (unread)
		ep.ok = 0;
	read_ok = content_read(kind, unread ? decoy_der[kind] : ep.buf,
	              unread ? decoy_len[kind] : ep.len, out, &d) == 0;
	if (!(ep.ok && read_ok)) {
		rc = SCEP_E_DECRYPT;
		fi = SCEP_FAILINFO_BAD_MESSAGE_CHECK;
		w = why_read[kind];
		*detail = ep.detail != NULL ? ep.detail
		    : d != NULL             ? d
		                            : "the envelope does not open";
		goto out;
	}
	/* Authentic from here (its own key signed it): answered plainly. */
	if (kind == SCEP_CONTENT_CSR &&
	    (rc = csr_challenge(out->csr, &out->challenge, &w)) != SCEP_OK) {
		fi = SCEP_FAILINFO_BAD_REQUEST;
		*detail = w;
		goto out;
	}
	if (ep.other_cert)
		*detail =
		    "opened with the RA's key, though addressed to "
		    "another certificate (an earlier one of the same key)";
	else if (ep.key_index > 0)
		*detail = "addressed to an earlier RA encryption certificate, "
		          "opened with its key";
	rc = SCEP_OK;
out:
	if (rc != SCEP_OK) {
		scep_content_clear(out);
		if (*detail == NULL)
			*detail = w;
	}
	*failinfo = rc == SCEP_OK ? SCEP_FAILINFO_NONE : fi;
	*why = rc == SCEP_OK ? NULL : w;
	envelope_plain_clear(&ep, cap);
	PKCS7_free(p7);
	ERR_clear_error();
	return rc;
}

static int
is_single_des(const EVP_CIPHER *cipher)
{
	switch (EVP_CIPHER_get_nid(cipher)) {
	case NID_des_cbc:
	case NID_des_ecb:
	case NID_des_cfb64:
	case NID_des_ofb64:
		return 1;
	}
	return 0;
}

/* A degenerate certs-only SignedData holding `first` (may be NULL) and then
 * `rest` (may be NULL), in that order, and the CRL `crl` (may be NULL). */
static PKCS7 *
certs_only_new(X509 *first, STACK_OF(X509) * rest, X509_CRL *crl)
{
	PKCS7 *p7;

	if ((p7 = PKCS7_new()) == NULL)
		return NULL;
	if (!PKCS7_set_type(p7, NID_pkcs7_signed) ||
	    !PKCS7_content_new(p7, NID_pkcs7_data) ||
	    !PKCS7_set_detached(p7, 1))
		goto err;
	if (first != NULL && !PKCS7_add_certificate(p7, first))
		goto err;
	for (int i = 0; i < sk_X509_num(rest); i++)
		if (!PKCS7_add_certificate(p7, sk_X509_value(rest, i)))
			goto err;
	if (crl != NULL && !PKCS7_add_crl(p7, crl))
		goto err;
	return p7;
err:
	PKCS7_free(p7);
	return NULL;
}

int
scep_certs_only_build(STACK_OF(X509) * certs, uint8_t **out, size_t *out_len)
{
	PKCS7 *p7 = NULL;
	int rc = SCEP_E_BUILD;

	*out = NULL;
	*out_len = 0;
	if (sk_X509_num(certs) <= 0)
		goto out;
	if ((p7 = certs_only_new(NULL, certs, NULL)) == NULL)
		goto out;
	rc = pkcs7_to_der(p7, out, out_len);
out:
	PKCS7_free(p7);
	ERR_clear_error();
	return rc;
}

int
scep_crl_only_build(
    const uint8_t *der, size_t len, uint8_t **out, size_t *out_len)
{
	const unsigned char *p = der;
	X509_CRL *crl = NULL;
	PKCS7 *p7 = NULL;
	int rc = SCEP_E_PARSE;

	*out = NULL;
	*out_len = 0;
	if (len > LONG_MAX ||
	    (crl = d2i_X509_CRL(NULL, &p, (long)len)) == NULL || p != der + len)
		goto out;
	rc = SCEP_E_BUILD;
	if ((p7 = certs_only_new(NULL, NULL, crl)) != NULL)
		rc = pkcs7_to_der(p7, out, out_len);
out:
	PKCS7_free(p7);
	X509_CRL_free(crl);
	ERR_clear_error();
	return rc;
}

int
scep_certs_only_parse(const uint8_t *der, size_t len, STACK_OF(X509) * *certs)
{
	PKCS7 *p7 = NULL;
	int rc;

	*certs = NULL;
	if ((p7 = pkcs7_read(der, len)) == NULL) {
		rc = SCEP_E_PARSE;
		goto out;
	}
	if (!PKCS7_type_is_signed(p7) || p7->d.sign == NULL ||
	    sk_X509_num(p7->d.sign->cert) <= 0) {
		rc = SCEP_E_CONTENT;
		goto out;
	}
	if ((*certs = X509_chain_up_ref(p7->d.sign->cert)) == NULL) {
		rc = SCEP_E_NOMEM;
		goto out;
	}
	rc = SCEP_OK;
out:
	PKCS7_free(p7);
	ERR_clear_error();
	return rc;
}

/*
 * The certificates and CRLs of a degenerate SignedData (up-ref'd, NULL when
 * it has none of a kind); at least one of either. `exact` refuses bytes
 * after the structure.
 */
static int
degenerate_parse(const uint8_t *der, size_t len, int exact,
    STACK_OF(X509) * *certs, STACK_OF(X509_CRL) * *crls)
{
	STACK_OF(X509_CRL) * in_crls;
	PKCS7 *p7;
	int rc = SCEP_E_NOMEM;

	*certs = NULL;
	*crls = NULL;
	p7 = exact ? pkcs7_read_exact(der, len) : pkcs7_read(der, len);
	if (p7 == NULL)
		return SCEP_E_PARSE;
	if (!PKCS7_type_is_signed(p7) || p7->d.sign == NULL ||
	    (sk_X509_num(p7->d.sign->cert) <= 0 &&
	        sk_X509_CRL_num(p7->d.sign->crl) <= 0)) {
		rc = SCEP_E_CONTENT;
		goto out;
	}
	if (sk_X509_num(p7->d.sign->cert) > 0 &&
	    (*certs = X509_chain_up_ref(p7->d.sign->cert)) == NULL)
		goto out;
	in_crls = p7->d.sign->crl;
	if (sk_X509_CRL_num(in_crls) > 0 &&
	    (*crls = sk_X509_CRL_new_reserve(NULL, sk_X509_CRL_num(in_crls))) ==
	        NULL)
		goto out;
	for (int i = 0; i < sk_X509_CRL_num(in_crls); i++) {
		X509_CRL *crl = sk_X509_CRL_value(in_crls, i);

		if (!X509_CRL_up_ref(crl))
			goto out;
		if (!sk_X509_CRL_push(*crls, crl)) {
			X509_CRL_free(crl);
			goto out;
		}
	}
	rc = SCEP_OK;
out:
	if (rc != SCEP_OK) {
		sk_X509_pop_free(*certs, X509_free);
		sk_X509_CRL_pop_free(*crls, X509_CRL_free);
		*certs = NULL;
		*crls = NULL;
	}
	PKCS7_free(p7);
	return rc;
}

/* EnvelopedData DER of `in` to `recipient`. */
static int
envelope_build(const uint8_t *in, size_t in_len, X509 *recipient,
    const EVP_CIPHER *cipher, int ber, uint8_t **out, size_t *out_len)
{
	STACK_OF(X509) *recips = NULL;
	BIO *inbio = NULL, *outbio = NULL;
	PKCS7 *p7 = NULL;
	int rc = SCEP_E_NOMEM;
	int flags = PKCS7_BINARY | (ber ? PKCS7_STREAM : 0);

	if (in_len > INT_MAX)
		return SCEP_E_BUILD;
	if ((recips = sk_X509_new_null()) == NULL ||
	    !sk_X509_push(recips, recipient) ||
	    (inbio = BIO_new_mem_buf(in, (int)in_len)) == NULL)
		goto out;
	rc = SCEP_E_BUILD;
	if ((p7 = PKCS7_encrypt(recips, inbio, cipher, flags)) == NULL)
		goto out;
	if (!ber) {
		rc = pkcs7_to_der(p7, out, out_len);
		goto out;
	}
	if ((outbio = BIO_new(BIO_s_mem())) == NULL) {
		rc = SCEP_E_NOMEM;
		goto out;
	}
	if (!i2d_PKCS7_bio_stream(outbio, p7, inbio, flags))
		goto out;
	rc = bio_to_buf(outbio, out, out_len);
out:
	BIO_free(outbio);
	BIO_free(inbio);
	PKCS7_free(p7);
	sk_X509_free(recips);
	return rc;
}

struct sign_attrs {
	int message_type;
	const char *transaction_id;
	const uint8_t *sender_nonce;
	size_t sender_nonce_len;
	const uint8_t *recipient_nonce;
	size_t recipient_nonce_len;
	int pki_status; /* -1: none (requests) */
	int failinfo; /* -1: none */
	const char *failinfo_text;
};

/* The length of the UTF-8 character at s (n bytes left): 1 to 4, or 0
 * when none begins there (cut short, overlong, a surrogate, past
 * U+10FFFF). */
static size_t
utf8_char_len(const unsigned char *s, size_t n)
{
	size_t len = s[0] < 0x80           ? 1
	    : s[0] >= 0xC2 && s[0] <= 0xDF ? 2
	    : s[0] >= 0xE0 && s[0] <= 0xEF ? 3
	    : s[0] >= 0xF0 && s[0] <= 0xF4 ? 4
	                                   : 0;

	if (len == 0 || len > n)
		return 0;
	for (size_t i = 1; i < len; i++)
		if ((s[i] & 0xC0) != 0x80)
			return 0;
	if ((s[0] == 0xE0 && s[1] < 0xA0) || (s[0] == 0xED && s[1] >= 0xA0) ||
	    (s[0] == 0xF0 && s[1] < 0x90) || (s[0] == 0xF4 && s[1] >= 0x90))
		return 0;
	return len;
}

/* failInfoText as a UTF8String holds: each byte that begins no UTF-8
 * character made '?' (a plugin's reason cut short in a character, a
 * subject's Latin-1), which a strict client would refuse the whole
 * reply for. */
static int
attr_add_utf8_text(PKCS7_SIGNER_INFO *si, int nid, const char *text)
{
	size_t n = strlen(text), i = 0, len;
	char *clean = malloc(n + 1);
	int rc;

	if (clean == NULL)
		return -1;
	while (i < n) {
		len = utf8_char_len((const unsigned char *)text + i, n - i);
		if (len == 0) {
			clean[i++] = '?';
			continue;
		}
		memcpy(clean + i, text + i, len);
		i += len;
	}
	rc = attr_add(si, nid, V_ASN1_UTF8STRING, clean, n);
	free(clean);
	return rc;
}

/* SCEP's signed attributes; OpenSSL adds contentType, signingTime and
 * messageDigest. */
static int
sign_attrs_add(PKCS7_SIGNER_INFO *si, const struct sign_attrs *a)
{
	if (attr_add_number(si, nid_message_type, a->message_type) != 0 ||
	    (a->transaction_id != NULL &&
	        attr_add_text(si, nid_transaction_id, a->transaction_id) != 0))
		return -1;
	if (a->pki_status >= 0 &&
	    attr_add_number(si, nid_pki_status, a->pki_status) != 0)
		return -1;
	if (a->failinfo >= 0 &&
	    attr_add_number(si, nid_fail_info, a->failinfo) != 0)
		return -1;
	if (a->failinfo_text != NULL &&
	    attr_add_utf8_text(si, nid_fail_info_text, a->failinfo_text) != 0)
		return -1;
	if (a->sender_nonce != NULL &&
	    attr_add(si, nid_sender_nonce, V_ASN1_OCTET_STRING, a->sender_nonce,
	        a->sender_nonce_len) != 0)
		return -1;
	if (a->recipient_nonce != NULL && a->recipient_nonce_len > 0 &&
	    attr_add(si, nid_recipient_nonce, V_ASN1_OCTET_STRING,
	        a->recipient_nonce, a->recipient_nonce_len) != 0)
		return -1;
	return 0;
}

/*
 * A SignedData over `content` (may be empty: eContent present, zero
 * length) whose SignerInfo carries the SCEP attributes `a` (NULL: only
 * CMS's own); DER, or BER with indefinite lengths when `ber`.
 */
static int
signed_build(const uint8_t *content, size_t content_len, X509 *signer,
    EVP_PKEY *key, const EVP_MD *md, const struct sign_attrs *a, int ber,
    uint8_t **out, size_t *out_len)
{
	PKCS7 *p7 = NULL;
	PKCS7_SIGNER_INFO *si;
	BIO *inbio = NULL, *outbio = NULL;
	int rc = SCEP_E_BUILD;
	int flags = PKCS7_BINARY | PKCS7_NOSMIMECAP;

	if (content_len > INT_MAX)
		goto out;
	p7 = PKCS7_sign(NULL, NULL, NULL, NULL, PKCS7_PARTIAL | PKCS7_BINARY);
	if (p7 == NULL)
		goto out;
	if ((si = PKCS7_sign_add_signer(p7, signer, key, md, flags)) == NULL)
		goto out;
	if (a != NULL && sign_attrs_add(si, a) != 0)
		goto out;

	rc = SCEP_E_NOMEM;
	if ((inbio = BIO_new_mem_buf(
	         content_len > 0 ? content : (const void *)"",
	         (int)content_len)) == NULL)
		goto out;
	rc = SCEP_E_BUILD;
	if (!ber) {
		if (!PKCS7_final(p7, inbio, PKCS7_BINARY))
			goto out;
		rc = pkcs7_to_der(p7, out, out_len);
		goto out;
	}
	if ((outbio = BIO_new(BIO_s_mem())) == NULL) {
		rc = SCEP_E_NOMEM;
		goto out;
	}
	if (!i2d_PKCS7_bio_stream(
	        outbio, p7, inbio, PKCS7_STREAM | PKCS7_BINARY))
		goto out;
	rc = bio_to_buf(outbio, out, out_len);
out:
	BIO_free(outbio);
	BIO_free(inbio);
	PKCS7_free(p7);
	return rc;
}

int
scep_certrep_build(
    const struct scep_certrep_params *params, uint8_t **out, size_t *out_len)
{
	PKCS7 *inner = NULL;
	uint8_t *inner_der = NULL, *env = NULL;
	size_t inner_len = 0, env_len = 0;
	uint8_t nonce[SCEP_NONCE_LEN];
	struct sign_attrs a;
	const EVP_MD *md;
	int rc;

	*out = NULL;
	*out_len = 0;
	if ((rc = scep_init()) != SCEP_OK)
		goto out;
	rc = SCEP_E_BUILD;
	if (params == NULL || params->transaction_id == NULL ||
	    params->signer == NULL || params->signer_key == NULL)
		goto out;
	memset(&a, 0, sizeof(a));
	a.message_type = SCEP_MSG_CERTREP;
	a.transaction_id = params->transaction_id;
	a.recipient_nonce = params->recipient_nonce;
	a.recipient_nonce_len = params->recipient_nonce_len;
	a.pki_status = params->pki_status;
	a.failinfo = -1;
	switch (params->pki_status) {
	case SCEP_STATUS_SUCCESS:
		if ((params->issued == NULL && params->crl == NULL &&
		        params->certs_only_len == 0) ||
		    params->recipient == NULL || params->cipher == NULL)
			goto out;
		if (is_single_des(params->cipher)) {
			rc = SCEP_E_ALGORITHM;
			goto out;
		}
		if (params->certs_only_len > 0)
			rc = envelope_build(params->certs_only,
			    params->certs_only_len, params->recipient,
			    params->cipher, 0, &env, &env_len);
		else if ((inner = certs_only_new(params->issued,
		              params->issued_chain, params->crl)) == NULL ||
		    (rc = pkcs7_to_der(inner, &inner_der, &inner_len)) !=
		        SCEP_OK)
			goto out;
		else
			rc = envelope_build(inner_der, inner_len,
			    params->recipient, params->cipher, 0, &env,
			    &env_len);
		if (rc != SCEP_OK)
			goto out;
		break;
	case SCEP_STATUS_FAILURE:
		if (params->failinfo < SCEP_FAILINFO_BAD_ALG ||
		    params->failinfo > SCEP_FAILINFO_BAD_CERT_ID)
			goto out;
		a.failinfo = params->failinfo;
		a.failinfo_text = params->failinfo_text;
		break;
	case SCEP_STATUS_PENDING:
		break;
	default:
		goto out;
	}
	if (RAND_bytes(nonce, sizeof(nonce)) != 1)
		goto out;
	a.sender_nonce = nonce;
	a.sender_nonce_len = sizeof(nonce);
	md = params->digest != NULL ? params->digest : EVP_sha256();
	rc = signed_build(env, env_len, params->signer, params->signer_key, md,
	    &a, 0, out, out_len);
out:
	free(env);
	free(inner_der);
	PKCS7_free(inner);
	ERR_clear_error();
	return rc;
}

int
scep_next_ca_build(STACK_OF(X509) * next_certs, X509 *signer,
    EVP_PKEY *signer_key, const EVP_MD *md, uint8_t **out, size_t *out_len)
{
	PKCS7 *inner = NULL;
	uint8_t *inner_der = NULL;
	size_t inner_len = 0;
	int rc = SCEP_E_BUILD;

	*out = NULL;
	*out_len = 0;
	if (sk_X509_num(next_certs) <= 0 || signer == NULL ||
	    signer_key == NULL)
		goto out;
	if ((inner = certs_only_new(NULL, next_certs, NULL)) == NULL ||
	    (rc = pkcs7_to_der(inner, &inner_der, &inner_len)) != SCEP_OK)
		goto out;
	rc = signed_build(inner_der, inner_len, signer, signer_key,
	    md != NULL ? md : EVP_sha256(), NULL, 0, out, out_len);
out:
	free(inner_der);
	PKCS7_free(inner);
	ERR_clear_error();
	return rc;
}

const EVP_CIPHER *
scep_reply_cipher(int cipher_nid)
{
	switch (cipher_nid) {
	case NID_des_cbc:
	case NID_des_ede3_cbc:
		return EVP_des_ede3_cbc();
	case NID_aes_192_cbc:
		return EVP_aes_192_cbc();
	case NID_aes_256_cbc:
		return EVP_aes_256_cbc();
	}
	return EVP_aes_128_cbc();
}

const EVP_MD *
scep_reply_digest(int digest_nid)
{
	switch (digest_nid) {
	case NID_sha384:
		return EVP_sha384();
	case NID_sha512:
		return EVP_sha512();
	}
	return EVP_sha256();
}

/* --- client side --------------------------------------------------------- */

/* Upper-case hex SHA-256 of the request's SubjectPublicKeyInfo. */
static char *
default_txid(X509_REQ *csr)
{
	unsigned char *spki = NULL, md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_PKEY *pub = X509_REQ_get0_pubkey(csr);
	char *hex = NULL;
	int n;

	if (pub == NULL || (n = i2d_PUBKEY(pub, &spki)) <= 0)
		goto out;
	if (!EVP_Digest(spki, (size_t)n, md, &mdlen, EVP_sha256(), NULL))
		goto out;
	if ((hex = malloc(2 * (size_t)mdlen + 1)) == NULL)
		goto out;
	if (!OPENSSL_buf2hexstr_ex(
	        hex, 2 * (size_t)mdlen + 1, NULL, md, mdlen, '\0')) {
		free(hex);
		hex = NULL;
	}
out:
	OPENSSL_free(spki);
	return hex;
}

int
scep_issuer_serial_build(const X509_NAME *issuer, const ASN1_INTEGER *serial,
    uint8_t **out, size_t *out_len)
{
	PKCS7_ISSUER_AND_SERIAL *ias = NULL;
	unsigned char *der = NULL;
	int n, rc = SCEP_E_BUILD;

	*out = NULL;
	*out_len = 0;
	if (issuer == NULL || serial == NULL)
		goto out;
	rc = SCEP_E_NOMEM;
	if ((ias = PKCS7_ISSUER_AND_SERIAL_new()) == NULL ||
	    !X509_NAME_set(&ias->issuer, issuer))
		goto out;
	ASN1_INTEGER_free(ias->serial);
	if ((ias->serial = ASN1_INTEGER_dup(serial)) == NULL)
		goto out;
	n = i2d_PKCS7_ISSUER_AND_SERIAL(ias, &der);
	rc = der_take(der, n, out, out_len);
out:
	PKCS7_ISSUER_AND_SERIAL_free(ias);
	ERR_clear_error();
	return rc;
}

int
scep_issuer_subject_build(const X509_NAME *issuer, const X509_NAME *subject,
    uint8_t **out, size_t *out_len)
{
	struct issuer_and_subject *ias = NULL;
	unsigned char *der = NULL;
	int n, rc = SCEP_E_BUILD;

	*out = NULL;
	*out_len = 0;
	if (issuer == NULL || subject == NULL)
		goto out;
	rc = SCEP_E_NOMEM;
	if ((ias = (struct issuer_and_subject *)ASN1_item_new(
	         ASN1_ITEM_rptr(ISSUER_AND_SUBJECT))) == NULL ||
	    !X509_NAME_set(&ias->issuer, issuer) ||
	    !X509_NAME_set(&ias->subject, subject))
		goto out;
	n = ASN1_item_i2d(
	    (ASN1_VALUE *)ias, &der, ASN1_ITEM_rptr(ISSUER_AND_SUBJECT));
	rc = der_take(der, n, out, out_len);
out:
	ASN1_item_free((ASN1_VALUE *)ias, ASN1_ITEM_rptr(ISSUER_AND_SUBJECT));
	ERR_clear_error();
	return rc;
}

int
scep_pkcsreq_build(
    const struct scep_pkcsreq_params *params, uint8_t **out, size_t *out_len)
{
	unsigned char *csr_der = NULL;
	uint8_t *content = NULL, *env = NULL;
	const uint8_t *body;
	size_t content_len = 0, body_len, env_len = 0, nonce_len;
	uint8_t *nonce = NULL;
	char *txid = NULL;
	struct sign_attrs a;
	int n, rc;

	*out = NULL;
	*out_len = 0;
	if ((rc = scep_init()) != SCEP_OK)
		goto out;
	rc = SCEP_E_BUILD;
	if (params == NULL || params->signer == NULL ||
	    params->signer_key == NULL)
		goto out;
	if (params->envelope != NULL) {
		if (params->envelope_len == 0 ||
		    (params->csr == NULL && params->transaction_id == NULL))
			goto out;
	} else if (params->recipient == NULL || params->cipher == NULL) {
		goto out;
	} else if (params->csr == NULL) {
		/* Caller-made content (CertPoll, GetCert, GetCRL): no key to
		 * derive a transactionID from. */
		if (params->content == NULL || params->content_len == 0 ||
		    params->transaction_id == NULL)
			goto out;
	} else if (params->message_type == SCEP_MSG_CERTPOLL) {
		if ((rc = scep_issuer_subject_build(
		         X509_get_issuer_name(params->recipient),
		         X509_REQ_get_subject_name(params->csr), &content,
		         &content_len)) != SCEP_OK)
			goto out;
	} else {
		if ((n = i2d_X509_REQ(params->csr, &csr_der)) <= 0)
			goto out;
		if ((content = malloc((size_t)n)) == NULL) {
			rc = SCEP_E_NOMEM;
			goto out;
		}
		memcpy(content, csr_der, (size_t)n);
		content_len = (size_t)n;
	}
	body = params->csr != NULL ? content : params->content;
	body_len = params->csr != NULL ? content_len : params->content_len;
	if (params->envelope == NULL &&
	    (rc = envelope_build(body, body_len, params->recipient,
	         params->cipher, params->ber_indefinite, &env, &env_len)) !=
	        SCEP_OK)
		goto out;
	rc = SCEP_E_BUILD;
	if (params->transaction_id == NULL &&
	    (txid = default_txid(params->csr)) == NULL)
		goto out;
	/* Hostile variants for tests: another nonce length, or none. */
	nonce_len = params->sender_nonce_len > 0
	    ? (size_t)params->sender_nonce_len
	    : params->sender_nonce_len == SCEP_NONCE_EMPTY ? 0
	                                                   : SCEP_NONCE_LEN;
	if ((nonce = malloc(nonce_len + 1)) == NULL ||
	    RAND_bytes(nonce, (int)nonce_len + 1) != 1)
		goto out;
	memset(&a, 0, sizeof(a));
	/* Sent as given, 0 included: tests send what servers must refuse. */
	a.message_type = params->message_type;
	a.transaction_id = params->omit_transaction_id ? NULL
	    : params->transaction_id != NULL           ? params->transaction_id
	                                               : txid;
	a.sender_nonce =
	    params->sender_nonce_len == SCEP_NONCE_NONE ? NULL : nonce;
	a.sender_nonce_len = nonce_len;
	a.pki_status = -1;
	a.failinfo = -1;
	rc = signed_build(params->envelope != NULL ? params->envelope : env,
	    params->envelope != NULL ? params->envelope_len : env_len,
	    params->signer, params->signer_key,
	    params->digest != NULL ? params->digest : EVP_sha256(), &a,
	    params->ber_indefinite, out, out_len);
out:
	free(nonce);
	free(txid);
	free(env);
	free(content);
	OPENSSL_free(csr_der);
	ERR_clear_error();
	return rc;
}

void
scep_certrep_free(struct scep_certrep *rep)
{
	if (rep == NULL)
		return;
	free(rep->failinfo_text);
	free(rep->transaction_id);
	free(rep->recipient_nonce);
	free(rep->sender_nonce);
	X509_free(rep->signer);
	sk_X509_pop_free(rep->certs, X509_free);
	sk_X509_CRL_pop_free(rep->crls, X509_CRL_free);
	free(rep);
}

/*
 * The envelope of a SUCCESS CertRep. With client_key NULL it is not
 * decrypted: only its algorithm is read (cipher_nid) and certs stays NULL,
 * so a CertRep can be checked without the device's key (the NDES vector).
 * With a key it is decrypted and its degenerate SignedData's certificates
 * and CRLs returned.
 */
static int
certrep_open(ASN1_OCTET_STRING *os, X509 *client_cert, EVP_PKEY *client_key,
    struct scep_certrep *rep)
{
	PKCS7 *env = NULL;
	BIO *mem = NULL;
	char *plain = NULL;
	long plain_len;
	int rc;

	if (os == NULL || ASN1_STRING_length(os) <= 0 ||
	    (env = pkcs7_read(ASN1_STRING_get0_data(os),
	         (size_t)ASN1_STRING_length(os))) == NULL) {
		rc = SCEP_E_CONTENT;
		goto out;
	}
	if (!PKCS7_type_is_enveloped(env) || env->d.enveloped == NULL ||
	    env->d.enveloped->enc_data == NULL ||
	    env->d.enveloped->enc_data->algorithm == NULL) {
		rc = SCEP_E_CONTENT;
		goto out;
	}
	rep->cipher_nid =
	    OBJ_obj2nid(env->d.enveloped->enc_data->algorithm->algorithm);
	if (client_key == NULL) {
		rc = SCEP_OK;
		goto out;
	}
	if ((mem = BIO_new(BIO_s_mem())) == NULL) {
		rc = SCEP_E_NOMEM;
		goto out;
	}
	if (PKCS7_decrypt(env, client_key, client_cert, mem, PKCS7_BINARY) !=
	    1) {
		rc = SCEP_E_DECRYPT;
		goto out;
	}
	plain_len = BIO_get_mem_data(mem, &plain);
	if (plain_len <= 0) {
		rc = SCEP_E_CONTENT;
		goto out;
	}
	rc = degenerate_parse((const uint8_t *)plain, (size_t)plain_len, 0,
	    &rep->certs, &rep->crls);
out:
	BIO_free(mem);
	PKCS7_free(env);
	return rc;
}

int
scep_certrep_parse(const uint8_t *der, size_t len, X509 *ra_signer,
    X509 *client_cert, EVP_PKEY *client_key, struct scep_certrep **out)
{
	struct scep_certrep *rep = NULL;
	STACK_OF(X509) *trusted = NULL;
	PKCS7 *p7 = NULL;
	PKCS7_SIGNER_INFO *si;
	int rc, flags = 0, mtype, v;

	*out = NULL;
	if ((rc = scep_init()) != SCEP_OK)
		goto out;
	if ((p7 = pkcs7_read(der, len)) == NULL) {
		rc = SCEP_E_PARSE;
		goto out;
	}
	if ((rep = calloc(1, sizeof(*rep))) == NULL) {
		rc = SCEP_E_NOMEM;
		goto out;
	}
	rep->failinfo = SCEP_FAILINFO_NONE;
	rep->cipher_nid = NID_undef;
	if (ra_signer != NULL) {
		/* Only the RA certificate from GetCACert may have signed. */
		if ((trusted = sk_X509_new_null()) == NULL ||
		    !sk_X509_push(trusted, ra_signer)) {
			rc = SCEP_E_NOMEM;
			goto out;
		}
		flags = PKCS7_NOINTERN;
	}
	if ((rep->signer = signed_verify(p7, trusted, flags, 0, &rc)) == NULL)
		goto out;
	si = sk_PKCS7_SIGNER_INFO_value(p7->d.sign->signer_info, 0);
	rep->digest_nid = digest_nid_of(si);

	rc = SCEP_E_ATTRIBUTE;
	if (attr_number(si, nid_message_type, &mtype) != 0 ||
	    mtype != SCEP_MSG_CERTREP)
		goto out;
	if (attr_number(si, nid_pki_status, &rep->pki_status) != 0 ||
	    (rep->pki_status != SCEP_STATUS_SUCCESS &&
	        rep->pki_status != SCEP_STATUS_FAILURE &&
	        rep->pki_status != SCEP_STATUS_PENDING))
		goto out;
	if ((rep->transaction_id =
	            attr_text(si, nid_transaction_id, SCEP_TXID_MAX)) == NULL)
		goto out;
	/* Nonces are optional on read: cryptlib sends no senderNonce. */
	if (PKCS7_get_signed_attribute(si, nid_recipient_nonce) != NULL &&
	    attr_octets(si, nid_recipient_nonce, &rep->recipient_nonce,
	        &rep->recipient_nonce_len) != 0)
		goto out;
	if (PKCS7_get_signed_attribute(si, nid_sender_nonce) != NULL &&
	    attr_octets(si, nid_sender_nonce, &rep->sender_nonce,
	        &rep->sender_nonce_len) != 0)
		goto out;
	if (rep->pki_status == SCEP_STATUS_FAILURE &&
	    PKCS7_get_signed_attribute(si, nid_fail_info) != NULL) {
		if (attr_number(si, nid_fail_info, &v) != 0 ||
		    v > SCEP_FAILINFO_BAD_CERT_ID)
			goto out;
		rep->failinfo = v;
	}
	if (PKCS7_get_signed_attribute(si, nid_fail_info_text) != NULL &&
	    (rep->failinfo_text = attr_utf8(si, nid_fail_info_text)) == NULL)
		goto out;
	if (rep->pki_status == SCEP_STATUS_SUCCESS &&
	    (rc = certrep_open(p7->d.sign->contents->d.data, client_cert,
	         client_key, rep)) != SCEP_OK)
		goto out;
	*out = rep;
	rep = NULL;
	rc = SCEP_OK;
out:
	scep_certrep_free(rep);
	sk_X509_free(trusted);
	PKCS7_free(p7);
	ERR_clear_error();
	return rc;
}

int
scep_next_ca_parse(
    const uint8_t *der, size_t len, X509 *signer, STACK_OF(X509) * *certs)
{
	STACK_OF(X509) *trusted = NULL;
	STACK_OF(X509_CRL) *crls = NULL;
	ASN1_OCTET_STRING *os;
	PKCS7 *p7 = NULL;
	X509 *verified = NULL;
	int rc, flags = 0;

	*certs = NULL;
	if ((p7 = pkcs7_read_exact(der, len)) == NULL) {
		rc = SCEP_E_PARSE;
		goto out;
	}
	if (signer != NULL) {
		if ((trusted = sk_X509_new_null()) == NULL ||
		    !sk_X509_push(trusted, signer)) {
			rc = SCEP_E_NOMEM;
			goto out;
		}
		flags = PKCS7_NOINTERN;
	}
	if ((verified = signed_verify(p7, trusted, flags, 0, &rc)) == NULL)
		goto out;
	/* Signed, then read: the next certificates, and nothing else. */
	os = p7->d.sign->contents->d.data;
	if (os == NULL || ASN1_STRING_length(os) <= 0) {
		rc = SCEP_E_CONTENT;
		goto out;
	}
	if ((rc = degenerate_parse(ASN1_STRING_get0_data(os),
	         (size_t)ASN1_STRING_length(os), 1, certs, &crls)) != SCEP_OK)
		goto out;
	if (*certs == NULL || crls != NULL) {
		rc = SCEP_E_CONTENT;
		goto out;
	}
	rc = SCEP_OK;
out:
	if (rc != SCEP_OK) {
		sk_X509_pop_free(*certs, X509_free);
		*certs = NULL;
	}
	sk_X509_CRL_pop_free(crls, X509_CRL_free);
	X509_free(verified);
	sk_X509_free(trusted);
	PKCS7_free(p7);
	ERR_clear_error();
	return rc;
}
