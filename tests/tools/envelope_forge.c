/*
 * envelope_forge: the hostile envelopes of issue 7's "answers that leak
 * nothing", sent to a running scepd and timed.
 *
 *   envelope_forge --url URL --ra-enc PEM --ra-sig PEM --challenge PW
 *       [--rounds N] [--tolerance-ms MS] [--tolerance-pct PCT]
 *       [--max-key-ms MS]
 *
 * Each class is one PKCSReq, built once with OpenSSL's PKCS7 API and then
 * altered through its public structures, posted N times round robin (the
 * starting class moving each round) so that the machine's noise falls on
 * every class alike:
 *
 *   control            a valid request: SUCCESS (the same transaction)
 *   bad-rsa            the RecipientInfo's encrypted key: random bytes
 *   bad-cbc            a key we chose, transported right; the content
 *                      (the CSR) encrypted with a last block whose padding
 *                      is wrong
 *   not-csr            a valid envelope of random bytes
 *   bad-csr-signature  a valid envelope of a CSR whose signature is wrong
 *   bogus-ri-first     two RecipientInfos for the RA, the first bogus
 *   other-ra           an envelope for another RA certificate
 *   csr-rsa16384       a CSR whose key is a 16384-bit RSA modulus (not a
 *                      real key pair: it must be refused before any math)
 *   csr-huge-exponent  a CSR whose RSA-3072 key has a 3071-bit public
 *                      exponent (one check would cost a private-key
 *                      operation's time; OpenSSL allows it up to 3072)
 *   csr-explicit-ec    a CSR whose EC key has explicit curve parameters
 *   signer-rsa16384    the same 16384-bit key in the signer certificate
 *   signer-explicit-ec a signer certificate with an explicit-curve key
 *   reused-key         the control's RecipientInfo (its content key,
 *                      wrapped) with the same CSR encrypted anew under
 *                      another IV: what one copying a device's envelope
 *                      key into envelopes of chosen blocks sends (a
 *                      padding oracle); refused unread as a key seen with
 *                      other content ([ra] EnvelopeKeyMemory)
 *
 * Every class from bad-rsa to csr-explicit-ec, and reused-key, must be
 * answered FAILURE
 * badMessageCheck with one byte-identical failInfoText naming the key
 * limit (8192); the signer-* ones HTTP 400 naming it. Prints each class's
 * median, p90 and offset (see offset()). Exit 0 when all is as expected;
 * 2 when an answer was not; 3 when an envelope failure (bad-rsa to
 * other-ra) is off the others by more than the larger of --tolerance-ms
 * (0.1) and --tolerance-pct (10) of their median, or a key class's median
 * is over --max-key-ms (200); 1 otherwise.
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "scep.h"
#include "scep_client.h"

enum expect { EXPECT_SUCCESS, EXPECT_REFUSED, EXPECT_HTTP_400 };

struct class
{
	const char *name;
	enum expect expect;
	int compared; /* an envelope failure: must take the others' time */
	int key_class; /* a key refused before any math: under --max-key-ms */
	uint8_t *msg;
	size_t len;
	double *ms; /* per round */
	int n;
};

/* What every class is made of. */
struct forge {
	X509 *ra_enc, *ra_sig, *other;
	EVP_PKEY *key; /* the device's RSA-2048 key */
	X509 *cert; /* its self-signed certificate */
	uint8_t *csr; /* its CSR, with the challenge */
	int csr_len;
	EVP_PKEY *big; /* a 16384-bit RSA public key, no private half */
	EVP_PKEY *big_e; /* RSA 3072 with a 3071-bit exponent, no more */
	EVP_PKEY *ec; /* P-256 with explicit parameters */
	X509 *ec_cert;
};

static _Noreturn void
die(const char *what)
{
	fprintf(stderr, "envelope_forge: %s\n", what);
	ERR_print_errors_fp(stderr);
	exit(1);
}

static X509 *
load_cert(const char *path)
{
	FILE *f = fopen(path, "r");
	X509 *x;

	if (f == NULL)
		die(path);
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (x == NULL)
		die(path);
	return x;
}

static X509_REQ *
csr_for(EVP_PKEY *key, const char *challenge)
{
	X509_NAME *name = X509_NAME_new();
	X509_REQ *req;

	if (name == NULL ||
	    !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	        (const unsigned char *)"envelope oracle", -1, -1, 0) ||
	    (req = scep_make_csr(
	         name, challenge, 5, NULL, key, EVP_sha256())) == NULL)
		die("cannot make a CSR");
	X509_NAME_free(name);
	return req;
}

static uint8_t *
req_der(X509_REQ *req, int *len)
{
	unsigned char *der = NULL;

	if ((*len = i2d_X509_REQ(req, &der)) <= 0)
		die("cannot encode a CSR");
	return der;
}

/* An EnvelopedData of `in` to `r1` (and `r2`), AES-128-CBC. */
static PKCS7 *
envelope(const uint8_t *in, int len, X509 *r1, X509 *r2)
{
	STACK_OF(X509) *recips = sk_X509_new_null();
	BIO *bio = BIO_new_mem_buf(in, len);
	PKCS7 *p7;

	if (recips == NULL || bio == NULL || !sk_X509_push(recips, r1) ||
	    (r2 != NULL && !sk_X509_push(recips, r2)) ||
	    (p7 = PKCS7_encrypt(
	         recips, bio, EVP_aes_128_cbc(), PKCS7_BINARY)) == NULL)
		die("cannot build an envelope");
	BIO_free(bio);
	sk_X509_free(recips);
	return p7;
}

static PKCS7_RECIP_INFO *
recipient(PKCS7 *p7, int i)
{
	return sk_PKCS7_RECIP_INFO_value(p7->d.enveloped->recipientinfo, i);
}

/* Random bytes; with `low` the first is zero, so that DER's sorting of a
 * SET OF RecipientInfo puts this one first. */
static void
random_octets(ASN1_OCTET_STRING *os, int len, int low)
{
	unsigned char *buf = malloc((size_t)len);

	if (buf == NULL || RAND_bytes(buf, len) != 1)
		die("cannot make random bytes");
	if (low)
		buf[0] = 0;
	if (!ASN1_OCTET_STRING_set(os, buf, len))
		die("cannot set random bytes");
	free(buf);
}

/* bogus-ri-first: two RecipientInfos for the RA, the one sent first (in
 * DER order) with a random encrypted key. */
static PKCS7 *
bogus_first(const struct forge *f)
{
	for (;;) {
		PKCS7 *p7 = envelope(f->csr, f->csr_len, f->ra_enc, f->ra_enc);
		ASN1_OCTET_STRING *good = recipient(p7, 1)->enc_key;

		if (ASN1_STRING_get0_data(good)[0] != 0) {
			random_octets(recipient(p7, 0)->enc_key,
			    ASN1_STRING_length(good), 1);
			return p7;
		}
		PKCS7_free(p7);
	}
}

/*
 * bad-cbc: our own content key, transported right (PKCS#1 v1.5 to the RA
 * key), and the content encrypted without OpenSSL's padding, ending in
 * zero bytes where the padding should be: a last block that never
 * unpads, whatever the rest.
 */
static void
bad_padding(PKCS7 *p7, X509 *ra, const uint8_t *in, int len)
{
	PKCS7_ENC_CONTENT *ec = p7->d.enveloped->enc_data;
	ASN1_TYPE *param = ec->algorithm->parameter;
	EVP_PKEY_CTX *pctx;
	EVP_CIPHER_CTX *cctx;
	unsigned char cek[16], wrapped[1024], *plain, *ct;
	size_t wlen = sizeof(wrapped), plen = ((size_t)len / 16 + 1) * 16;
	int n, m;

	if (param == NULL || param->type != V_ASN1_OCTET_STRING ||
	    ASN1_STRING_length(param->value.octet_string) != 16)
		die("the envelope has no AES IV");
	if ((plain = calloc(1, plen)) == NULL || (ct = malloc(plen)) == NULL)
		die("out of memory");
	memcpy(plain, in, (size_t)len);
	if (RAND_bytes(cek, sizeof(cek)) != 1 ||
	    (pctx = EVP_PKEY_CTX_new(X509_get0_pubkey(ra), NULL)) == NULL ||
	    EVP_PKEY_encrypt_init(pctx) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) <= 0 ||
	    EVP_PKEY_encrypt(pctx, wrapped, &wlen, cek, sizeof(cek)) <= 0 ||
	    !ASN1_OCTET_STRING_set(
	        recipient(p7, 0)->enc_key, wrapped, (int)wlen))
		die("cannot wrap our content key");
	if ((cctx = EVP_CIPHER_CTX_new()) == NULL ||
	    !EVP_EncryptInit_ex2(cctx, EVP_aes_128_cbc(), cek,
	        ASN1_STRING_get0_data(param->value.octet_string), NULL) ||
	    !EVP_CIPHER_CTX_set_padding(cctx, 0) ||
	    !EVP_EncryptUpdate(cctx, ct, &n, plain, (int)plen) ||
	    !EVP_EncryptFinal_ex(cctx, ct + n, &m) ||
	    !ASN1_OCTET_STRING_set(ec->enc_data, ct, n + m))
		die("cannot encrypt the content");
	EVP_CIPHER_CTX_free(cctx);
	EVP_PKEY_CTX_free(pctx);
	free(plain);
	free(ct);
}

/*
 * The content of `p7` replaced: `in` encrypted with `cek` (AES-128-CBC,
 * padded) under a fresh IV; with `ra`, `cek` wrapped to it in the first
 * RecipientInfo too.
 */
static void
own_content(PKCS7 *p7, X509 *ra, const unsigned char cek[16], const uint8_t *in,
    int len)
{
	PKCS7_ENC_CONTENT *ec = p7->d.enveloped->enc_data;
	ASN1_OCTET_STRING *iv_os = ASN1_OCTET_STRING_new();
	EVP_PKEY_CTX *pctx = NULL;
	EVP_CIPHER_CTX *cctx;
	unsigned char iv[16], wrapped[1024], *ct = malloc((size_t)len + 16);
	size_t wlen = sizeof(wrapped);
	int n, m;

	if (ra != NULL &&
	    ((pctx = EVP_PKEY_CTX_new(X509_get0_pubkey(ra), NULL)) == NULL ||
	        EVP_PKEY_encrypt_init(pctx) <= 0 ||
	        EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) <= 0 ||
	        EVP_PKEY_encrypt(pctx, wrapped, &wlen, cek, 16) <= 0 ||
	        !ASN1_OCTET_STRING_set(
	            recipient(p7, 0)->enc_key, wrapped, (int)wlen)))
		die("cannot wrap our content key");
	if (ct == NULL || iv_os == NULL || RAND_bytes(iv, sizeof(iv)) != 1 ||
	    !ASN1_OCTET_STRING_set(iv_os, iv, sizeof(iv)) ||
	    (cctx = EVP_CIPHER_CTX_new()) == NULL ||
	    !EVP_EncryptInit_ex2(cctx, EVP_aes_128_cbc(), cek, iv, NULL) ||
	    !EVP_EncryptUpdate(cctx, ct, &n, in, len) ||
	    !EVP_EncryptFinal_ex(cctx, ct + n, &m) ||
	    !ASN1_OCTET_STRING_set(ec->enc_data, ct, n + m))
		die("cannot encrypt the content");
	ASN1_TYPE_set(ec->algorithm->parameter, V_ASN1_OCTET_STRING, iv_os);
	EVP_CIPHER_CTX_free(cctx);
	EVP_PKEY_CTX_free(pctx);
	free(ct);
}

/* A PKCSReq carrying the envelope `p7` (freed), signed by cert/key. */
static void
request(struct class *c, int idx, PKCS7 *p7, X509 *cert, EVP_PKEY *key)
{
	struct scep_pkcsreq_params p;
	unsigned char *env = NULL;
	char txid[32];
	int n;

	if ((n = i2d_PKCS7(p7, &env)) <= 0)
		die("cannot encode an envelope");
	PKCS7_free(p7);
	/* One length for all, so the answers differ in nothing else. */
	snprintf(txid, sizeof(txid), "envelope-oracle-%02d", idx);
	memset(&p, 0, sizeof(p));
	p.message_type = SCEP_MSG_PKCSREQ;
	p.transaction_id = txid;
	p.signer = cert;
	p.signer_key = key;
	p.digest = EVP_sha256();
	p.envelope = env;
	p.envelope_len = (size_t)n;
	if (scep_pkcsreq_build(&p, &c->msg, &c->len) != SCEP_OK)
		die("cannot build a request");
	OPENSSL_free(env);
}

/* signer-rsa16384: the signer certificate swapped, after signing, for one
 * of the same issuer and serial holding the 16384-bit key. */
static void
swap_signer(struct class *c, const struct forge *f)
{
	const unsigned char *p = c->msg;
	unsigned char *der = NULL;
	PKCS7 *p7 = d2i_PKCS7(NULL, &p, (long)c->len);
	X509 *fake = X509_dup(f->cert);
	int n;

	if (p7 == NULL || fake == NULL || !X509_set_pubkey(fake, f->big) ||
	    X509_sign(fake, f->key, EVP_sha256()) <= 0)
		die("cannot make the 16384-bit signer certificate");
	X509_free(sk_X509_value(p7->d.sign->cert, 0));
	sk_X509_set(p7->d.sign->cert, 0, fake);
	if ((n = i2d_PKCS7(p7, &der)) <= 0)
		die("cannot encode the request");
	free(c->msg);
	c->msg = malloc((size_t)n);
	if (c->msg == NULL)
		die("out of memory");
	memcpy(c->msg, der, (size_t)n);
	c->len = (size_t)n;
	OPENSSL_free(der);
	PKCS7_free(p7);
}

static void
forge_classes(struct class *cl, const struct forge *f, const char *pw)
{
	X509_REQ *req;
	uint8_t *der, *junk;
	unsigned char cek[16];
	int len, i = 0;
	PKCS7 *p7, *reused;

	/* control, with a content key of ours; reused-key its copy */
	p7 = envelope(f->csr, f->csr_len, f->ra_enc, NULL);
	if (RAND_bytes(cek, sizeof(cek)) != 1)
		die("cannot make a content key");
	own_content(p7, f->ra_enc, cek, f->csr, f->csr_len);
	if ((reused = PKCS7_dup(p7)) == NULL)
		die("out of memory");
	own_content(reused, NULL, cek, f->csr, f->csr_len);
	request(&cl[i], i, p7, f->cert, f->key);
	i++;
	/* bad-rsa */
	p7 = envelope(f->csr, f->csr_len, f->ra_enc, NULL);
	random_octets(recipient(p7, 0)->enc_key,
	    ASN1_STRING_length(recipient(p7, 0)->enc_key), 0);
	request(&cl[i], i, p7, f->cert, f->key);
	i++;
	/* bad-cbc */
	p7 = envelope(f->csr, f->csr_len, f->ra_enc, NULL);
	bad_padding(p7, f->ra_enc, f->csr, f->csr_len);
	request(&cl[i], i, p7, f->cert, f->key);
	i++;
	/* not-csr */
	if ((junk = malloc((size_t)f->csr_len)) == NULL ||
	    RAND_bytes(junk, f->csr_len) != 1)
		die("out of memory");
	request(&cl[i], i, envelope(junk, f->csr_len, f->ra_enc, NULL), f->cert,
	    f->key);
	free(junk);
	i++;
	/* bad-csr-signature: the signature's last byte */
	if ((der = malloc((size_t)f->csr_len)) == NULL)
		die("out of memory");
	memcpy(der, f->csr, (size_t)f->csr_len);
	der[f->csr_len - 1] ^= 0x01;
	request(&cl[i], i, envelope(der, f->csr_len, f->ra_enc, NULL), f->cert,
	    f->key);
	free(der);
	i++;
	/* bogus-ri-first */
	request(&cl[i], i, bogus_first(f), f->cert, f->key);
	i++;
	/* other-ra */
	request(&cl[i], i, envelope(f->csr, f->csr_len, f->other, NULL),
	    f->cert, f->key);
	i++;
	/* csr-rsa16384, csr-huge-exponent: the device's CSR with the fake
	 * key put in, re-signed by the device key (the fake cannot sign) */
	for (int k = 0; k < 2; k++) {
		req = csr_for(f->key, pw);
		if (!X509_REQ_set_pubkey(req, k == 0 ? f->big : f->big_e) ||
		    X509_REQ_sign(req, f->key, EVP_sha256()) <= 0)
			die("cannot make a CSR with a fake key");
		der = req_der(req, &len);
		request(&cl[i], i, envelope(der, len, f->ra_enc, NULL), f->cert,
		    f->key);
		OPENSSL_free(der);
		X509_REQ_free(req);
		i++;
	}
	/* csr-explicit-ec */
	req = csr_for(f->ec, pw);
	der = req_der(req, &len);
	request(
	    &cl[i], i, envelope(der, len, f->ra_enc, NULL), f->cert, f->key);
	OPENSSL_free(der);
	X509_REQ_free(req);
	i++;
	/* signer-rsa16384 */
	request(&cl[i], i, envelope(f->csr, f->csr_len, f->ra_enc, NULL),
	    f->cert, f->key);
	swap_signer(&cl[i], f);
	i++;
	/* signer-explicit-ec */
	request(&cl[i], i, envelope(f->csr, f->csr_len, f->ra_enc, NULL),
	    f->ec_cert, f->ec);
	i++;
	/* reused-key: after the control (the warm-up posts it first) */
	request(&cl[i], i, reused, f->cert, f->key);
}

/* POSTs the message on the kept-alive connection; the answer's time. */
static double
post(CURL *curl, const struct class *c, struct http_reply *r)
{
	double t0, t1;
	CURLcode cc;

	http_reply_clear(r);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDS, c->msg);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)c->len);
	t0 = scep_now_ms();
	cc = curl_easy_perform(curl);
	t1 = scep_now_ms();
	if (cc != CURLE_OK) {
		fprintf(stderr, "envelope_forge: %s: %s\n", c->name,
		    curl_easy_strerror(cc));
		exit(1);
	}
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r->code);
	return t1 - t0;
}

/* 0 when the answer is what the class expects; the refusal's text is
 * kept from the first one and every other must be the same bytes. */
static int
check(const struct class *c, const struct http_reply *r, X509 *ra_sig,
    char **text)
{
	struct scep_certrep *rep = NULL;
	int ok = 0;

	if (c->expect == EXPECT_HTTP_400) {
		ok = r->code == 400 && r->body != NULL &&
		    strstr((const char *)r->body, "8192") != NULL;
		if (!ok)
			printf("   %s: HTTP %ld %.200s\n", c->name, r->code,
			    r->body ? (const char *)r->body : "");
		return ok ? 0 : -1;
	}
	if (r->code != 200 ||
	    scep_certrep_parse(r->body, r->len, ra_sig, NULL, NULL, &rep) !=
	        SCEP_OK) {
		printf("   %s: HTTP %ld, no CertRep signed by the RA\n",
		    c->name, r->code);
		return -1;
	}
	if (c->expect == EXPECT_SUCCESS)
		ok = rep->pki_status == SCEP_STATUS_SUCCESS;
	else if (rep->pki_status == SCEP_STATUS_FAILURE &&
	    rep->failinfo == SCEP_FAILINFO_BAD_MESSAGE_CHECK &&
	    rep->failinfo_text != NULL) {
		if (*text == NULL &&
		    (*text = strdup(rep->failinfo_text)) == NULL)
			die("out of memory");
		ok = strcmp(*text, rep->failinfo_text) == 0;
	}
	if (!ok)
		printf("   %s: status %d failInfo %s text \"%s\"\n", c->name,
		    rep->pki_status, scep_failinfo_name(rep->failinfo),
		    rep->failinfo_text ? rep->failinfo_text : "");
	scep_certrep_free(rep);
	return ok ? 0 : -1;
}

/* The q-quantile (0 < q <= 1) of v[0..n), v left as it is. */
static double
quantile(const double *v, int n, double q)
{
	double *s = malloc((size_t)n * sizeof(*s)), x;
	int i = (int)ceil(q * n) - 1;

	if (s == NULL)
		die("out of memory");
	memcpy(s, v, (size_t)n * sizeof(*s));
	qsort(s, (size_t)n, sizeof(*s), scep_cmp_double);
	x = s[i < 0 ? 0 : i];
	free(s);
	return x;
}

/*
 * How far a class's time is from the compared classes' in the same round,
 * as the median over the rounds: a paired comparison, so that a slow
 * moment of the machine, which slows every class of its round, cancels.
 */
static double
offset(const struct class *cl, int ncl, int c, int rounds)
{
	double row[32], *diff = malloc((size_t)rounds * sizeof(*diff)), x;

	if (diff == NULL)
		die("out of memory");
	for (int i = 0; i < rounds; i++) {
		int k = 0;

		for (int j = 0; j < ncl && k < 32; j++)
			if (cl[j].compared)
				row[k++] = cl[j].ms[i];
		diff[i] = cl[c].ms[i] - quantile(row, k, 0.5);
	}
	x = quantile(diff, rounds, 0.5);
	free(diff);
	return x;
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: envelope_forge --url URL --ra-enc PEM --ra-sig PEM "
	    "--challenge PW [--rounds N] [--tolerance-ms MS] "
	    "[--tolerance-pct PCT] [--max-key-ms MS]\n");
	exit(1);
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"url", required_argument, NULL, 'u'},
	    {"ra-enc", required_argument, NULL, 'e'},
	    {"ra-sig", required_argument, NULL, 's'},
	    {"challenge", required_argument, NULL, 'c'},
	    {"rounds", required_argument, NULL, 'n'},
	    {"tolerance-ms", required_argument, NULL, 't'},
	    {"tolerance-pct", required_argument, NULL, 'p'},
	    {"max-key-ms", required_argument, NULL, 'k'},
	    {NULL, 0, NULL, 0},
	};
	/* The key classes are refused alike but not compared: parsing an
	 * explicit curve costs its sender more, which tells them nothing. */
	struct class cl[] = {
	    {"control", EXPECT_SUCCESS, 0, 0, NULL, 0, NULL, 0},
	    {"bad-rsa", EXPECT_REFUSED, 1, 0, NULL, 0, NULL, 0},
	    {"bad-cbc", EXPECT_REFUSED, 1, 0, NULL, 0, NULL, 0},
	    {"not-csr", EXPECT_REFUSED, 1, 0, NULL, 0, NULL, 0},
	    {"bad-csr-signature", EXPECT_REFUSED, 1, 0, NULL, 0, NULL, 0},
	    {"bogus-ri-first", EXPECT_REFUSED, 1, 0, NULL, 0, NULL, 0},
	    {"other-ra", EXPECT_REFUSED, 1, 0, NULL, 0, NULL, 0},
	    {"csr-rsa16384", EXPECT_REFUSED, 0, 1, NULL, 0, NULL, 0},
	    {"csr-huge-exponent", EXPECT_REFUSED, 0, 1, NULL, 0, NULL, 0},
	    {"csr-explicit-ec", EXPECT_REFUSED, 0, 1, NULL, 0, NULL, 0},
	    {"signer-rsa16384", EXPECT_HTTP_400, 0, 1, NULL, 0, NULL, 0},
	    {"signer-explicit-ec", EXPECT_HTTP_400, 0, 1, NULL, 0, NULL, 0},
	    {"reused-key", EXPECT_REFUSED, 1, 0, NULL, 0, NULL, 0},
	};
	const int ncl = (int)(sizeof(cl) / sizeof(cl[0]));
	const char *url = NULL, *enc = NULL, *sig = NULL, *pw = NULL;
	double tol_ms = 0.1, tol_pct = 10, max_key_ms = 200, meds[32];
	double mid, allowed, off[32];
	int rounds = 200, opt, bad = 0, slow = 0, nmed = 0;
	struct forge f;
	struct http_reply r;
	struct curl_slist *hdr = NULL;
	char *text = NULL, *target;
	CURL *curl;
	X509_REQ *req;

	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (opt) {
		case 'u':
			url = optarg;
			break;
		case 'e':
			enc = optarg;
			break;
		case 's':
			sig = optarg;
			break;
		case 'c':
			pw = optarg;
			break;
		case 'n':
			rounds = atoi(optarg);
			break;
		case 't':
			tol_ms = atof(optarg);
			break;
		case 'p':
			tol_pct = atof(optarg);
			break;
		case 'k':
			max_key_ms = atof(optarg);
			break;
		default:
			usage();
		}
	}
	if (url == NULL || enc == NULL || sig == NULL || pw == NULL ||
	    rounds < 1)
		usage();
	if (scep_init() != SCEP_OK)
		die("cannot initialise the SCEP codec");

	memset(&f, 0, sizeof(f));
	f.ra_enc = load_cert(enc);
	f.ra_sig = load_cert(sig);
	if ((f.key = EVP_RSA_gen(2048)) == NULL ||
	    (f.cert = scep_self_signed(
	         f.key, "envelope oracle", EVP_sha256())) == NULL)
		die("cannot make the device key");
	{
		EVP_PKEY *other_key = EVP_RSA_gen(2048);

		if (other_key == NULL ||
		    (f.other = scep_self_signed(
		         other_key, "other-MSCEP-RA", EVP_sha256())) == NULL)
			die("cannot make the other RA certificate");
		EVP_PKEY_free(other_key);
	}
	req = csr_for(f.key, pw);
	f.csr = req_der(req, &f.csr_len);
	X509_REQ_free(req);
	f.big = scep_fake_rsa_public(16384, 0);
	f.big_e = scep_fake_rsa_public(3072, 3071);
	f.ec = scep_explicit_ec_key();
	if (f.big == NULL || f.big_e == NULL || f.ec == NULL)
		die("cannot make the refused keys");
	if ((f.ec_cert = scep_self_signed(
	         f.ec, "explicit curve", EVP_sha256())) == NULL)
		die("cannot make the explicit-curve certificate");
	forge_classes(cl, &f, pw);

	curl_global_init(CURL_GLOBAL_DEFAULT);
	if ((curl = curl_easy_init()) == NULL ||
	    (target = malloc(strlen(url) + 32)) == NULL ||
	    (hdr = curl_slist_append(
	         NULL, "Content-Type: application/x-pki-message")) == NULL)
		die("cannot set up libcurl");
	sprintf(target, "%s?operation=PKIOperation", url);
	curl_easy_setopt(curl, CURLOPT_URL, target);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, http_reply_append);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, &r);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT, 60L);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	memset(&r, 0, sizeof(r));

	/* Warm-up, untimed: the control's first answer issues. */
	for (int w = 0; w < 3; w++)
		for (int c = 0; c < ncl; c++) {
			(void)post(curl, &cl[c], &r);
			if (check(&cl[c], &r, f.ra_sig, &text) != 0)
				bad++;
		}
	for (int c = 0; c < ncl; c++)
		if ((cl[c].ms = calloc((size_t)rounds, sizeof(double))) == NULL)
			die("out of memory");
	for (int i = 0; i < rounds; i++)
		for (int j = 0; j < ncl; j++) {
			struct class *c = &cl[(i + j) % ncl];

			c->ms[i] = post(curl, c, &r);
			c->n++;
			if (check(c, &r, f.ra_sig, &text) != 0)
				bad++;
		}

	printf("failInfoText of every refused class: \"%s\"\n",
	    text ? text : "(none)");
	if (text == NULL || strstr(text, "8192") == NULL) {
		printf("   the text does not name the key limit (8192)\n");
		bad++;
	}
	for (int c = 0; c < ncl; c++)
		if (cl[c].compared)
			meds[nmed++] = quantile(cl[c].ms, rounds, 0.5);
	mid = quantile(meds, nmed, 0.5);
	allowed = tol_ms > mid * tol_pct / 100 ? tol_ms : mid * tol_pct / 100;
	printf("%-20s %5s %10s %9s %9s  answer\n", "class", "n", "median ms",
	    "p90 ms", "offset");
	for (int c = 0; c < ncl; c++) {
		double med = quantile(cl[c].ms, rounds, 0.5);

		off[c] = offset(cl, ncl, c, rounds);
		printf("%-20s %5d %10.3f %9.3f %+9.3f  %s%s\n", cl[c].name,
		    cl[c].n, med, quantile(cl[c].ms, rounds, 0.9), off[c],
		    cl[c].expect == EXPECT_SUCCESS ? "SUCCESS"
		        : cl[c].expect == EXPECT_REFUSED
		        ? "FAILURE badMessageCheck"
		        : "HTTP 400",
		    cl[c].compared ? ", compared" : "");
		if (cl[c].key_class && med > max_key_ms) {
			printf("   %s: refused in %.3f ms, over %.0f ms\n",
			    cl[c].name, med, max_key_ms);
			slow++;
		}
	}
	/* An oracle is one class apart from the rest; noise moves all. */
	for (int c = 0; c < ncl; c++)
		if (cl[c].compared && fabs(off[c]) > allowed) {
			printf("   %s: %+.3f ms off the other envelope "
			       "failures (allowed +-%.3f)\n",
			    cl[c].name, off[c], allowed);
			slow++;
		}
	printf("envelope failures: median %.3f ms; a class may be off by "
	       "+-%.3f ms (offset: its time minus the compared classes' "
	       "median in the same round, median over rounds)\n",
	    mid, allowed);

	curl_slist_free_all(hdr);
	curl_easy_cleanup(curl);
	curl_global_cleanup();
	http_reply_clear(&r);
	free(target);
	free(text);
	for (int c = 0; c < ncl; c++) {
		free(cl[c].msg);
		free(cl[c].ms);
	}
	OPENSSL_free(f.csr);
	X509_free(f.ra_enc);
	X509_free(f.ra_sig);
	X509_free(f.other);
	X509_free(f.cert);
	X509_free(f.ec_cert);
	EVP_PKEY_free(f.key);
	EVP_PKEY_free(f.big);
	EVP_PKEY_free(f.big_e);
	EVP_PKEY_free(f.ec);
	if (bad > 0) {
		printf("%d answers were not as expected\n", bad);
		return 2;
	}
	return slow > 0 ? 3 : 0;
}
