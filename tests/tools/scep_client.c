/*
 * What the SCEP test clients share; see scep_client.h.
 */
#include "scep_client.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/param_build.h>
#include <openssl/x509v3.h>
#include <zmq.h>

#include "rpc.h"
#include "scep.h"

/* --- HTTP ---------------------------------------------------------------- */

void
http_reply_clear(struct http_reply *r)
{
	free(r->body);
	free(r->content_type);
	memset(r, 0, sizeof(*r));
}

/* Keeps Retry-After: what a device is told when to come back. */
static size_t
on_header(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct http_reply *r = arg;
	size_t n = size * nmemb;
	static const char name[] = "retry-after:";

	if (n > sizeof(name) - 1 &&
	    strncasecmp(ptr, name, sizeof(name) - 1) == 0) {
		size_t skip = sizeof(name) - 1;

		while (skip < n && ptr[skip] == ' ')
			skip++;
		snprintf(r->retry_after, sizeof(r->retry_after), "%.*s",
		    (int)strcspn(ptr + skip, "\r\n"), ptr + skip);
	}
	return n;
}

size_t
http_reply_append(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct http_reply *r = arg;
	size_t n = size * nmemb;
	uint8_t *p;

	if (r->len + n > SCEP_CLIENT_MAX_BODY)
		return 0;
	if ((p = realloc(r->body, r->len + n + 1)) == NULL)
		return 0;
	memcpy(p + r->len, ptr, n);
	r->body = p;
	r->len += n;
	r->body[r->len] = '\0';
	return n;
}

int
http_get(const struct http_client *hc, const char *query, struct http_reply *r)
{
	CURL *curl = NULL;
	char *url = NULL;
	char *ct = NULL;
	CURLcode cc;
	size_t n;
	int rc = -1;

	memset(r, 0, sizeof(*r));
	n = strlen(hc->url) + strlen(query) + 2;
	if ((url = malloc(n)) == NULL)
		goto out;
	snprintf(url, n, "%s?%s", hc->url, query);
	if ((curl = curl_easy_init()) == NULL)
		goto out;
	curl_easy_setopt(curl, CURLOPT_URL, url);
	if (hc->user_agent != NULL)
		curl_easy_setopt(curl, CURLOPT_USERAGENT, hc->user_agent);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, http_reply_append);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(curl, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT, 60L);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	if (hc->source != NULL)
		curl_easy_setopt(curl, CURLOPT_INTERFACE, hc->source);
	if ((cc = curl_easy_perform(curl)) != CURLE_OK) {
		fprintf(
		    stderr, "GET %.80s...: %s\n", url, curl_easy_strerror(cc));
		goto out;
	}
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r->code);
	if (curl_easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK &&
	    ct != NULL && (r->content_type = strdup(ct)) == NULL)
		goto out;
	rc = 0;
out:
	if (rc != 0)
		http_reply_clear(r);
	curl_easy_cleanup(curl);
	free(url);
	return rc;
}

int
http_content_type_is(const char *content_type, const char *type)
{
	size_t n = strlen(type);

	return content_type != NULL &&
	    strncasecmp(content_type, type, n) == 0 &&
	    (content_type[n] == '\0' || content_type[n] == ';' ||
	        content_type[n] == ' ');
}

/* GET url?operation=OP&message=<ca_name, escaped>. */
static int
get_operation(const struct http_client *hc, const char *op, const char *ca_name,
    struct http_reply *r)
{
	char *name = NULL, *query = NULL;
	size_t n;
	int rc = -1;

	memset(r, 0, sizeof(*r));
	if ((name = curl_easy_escape(NULL, ca_name, 0)) == NULL)
		return -1;
	n = strlen(op) + strlen(name) + 32;
	if ((query = malloc(n)) == NULL)
		goto out;
	snprintf(query, n, "operation=%s&message=%s", op, name);
	rc = http_get(hc, query, r);
out:
	free(query);
	curl_free(name);
	return rc;
}

/* --- the CA's certificates ---------------------------------------------- */

void
scep_ca_certs_clear(struct scep_ca_certs *c)
{
	sk_X509_pop_free(c->all, X509_free);
	memset(c, 0, sizeof(*c));
}

static int
is_ca(X509 *x)
{
	return X509_check_ca(x) != 0 || X509_check_issued(x, x) == X509_V_OK;
}

/*
 * Picks the certificates as iOS does: encryption = keyEncipherment,
 * signing = digitalSignature, among the non-CA certificates; with none,
 * the CA itself serves as RA. Pointers borrow from c->all.
 */
static int
ca_certs_pick(struct scep_ca_certs *c)
{
	X509 *any_ra = NULL;

	for (int i = 0; i < sk_X509_num(c->all); i++) {
		X509 *x = sk_X509_value(c->all, i);
		uint32_t ku = X509_get_key_usage(x);

		if (is_ca(x)) {
			if (c->ca == NULL)
				c->ca = x;
			continue;
		}
		if (any_ra == NULL)
			any_ra = x;
		if (c->ra_enc == NULL && (ku & KU_KEY_ENCIPHERMENT) != 0)
			c->ra_enc = x;
		if (c->ra_sig == NULL && (ku & KU_DIGITAL_SIGNATURE) != 0)
			c->ra_sig = x;
	}
	if (any_ra == NULL)
		any_ra = c->ca;
	if (c->ra_enc == NULL)
		c->ra_enc = any_ra;
	if (c->ra_sig == NULL)
		c->ra_sig = any_ra;
	if (c->ra_enc == NULL || c->ra_sig == NULL) {
		fprintf(stderr, "GetCACert: no usable RA certificate\n");
		return -1;
	}
	return 0;
}

void
scep_print_name(FILE *f, const char *what, X509 *x)
{
	char *s = X509_NAME_oneline(X509_get_subject_name(x), NULL, 0);

	fprintf(f, "%s: %s\n", what, s != NULL ? s : "?");
	OPENSSL_free(s);
}

int
scep_get_ca_certs(const struct http_client *hc, const char *ca_name, FILE *log,
    struct scep_ca_certs *c)
{
	struct http_reply r;
	const unsigned char *p;
	X509 *x = NULL;
	int rc = -1, err;

	memset(c, 0, sizeof(*c));
	if (get_operation(hc, "GetCACert", ca_name, &r) != 0)
		return -1;
	if (log != NULL)
		fprintf(log, "GetCACert: HTTP %ld, %s, %zu bytes\n", r.code,
		    r.content_type != NULL ? r.content_type : "(no type)",
		    r.len);
	if (r.code != 200) {
		fprintf(stderr, "GetCACert: HTTP %ld\n", r.code);
		goto out;
	}
	if (http_content_type_is(
	        r.content_type, "application/x-x509-ca-cert")) {
		/* One certificate: the CA is its own RA. */
		p = r.body;
		if ((x = d2i_X509(NULL, &p, (long)r.len)) == NULL ||
		    (c->all = sk_X509_new_null()) == NULL ||
		    !sk_X509_push(c->all, x)) {
			fprintf(stderr, "GetCACert: not one DER certificate\n");
			X509_free(x);
			goto out;
		}
		c->ca = c->ra_enc = c->ra_sig = x;
	} else if (http_content_type_is(
	               r.content_type, "application/x-x509-ca-ra-cert")) {
		if ((err = scep_certs_only_parse(r.body, r.len, &c->all)) !=
		    SCEP_OK) {
			fprintf(stderr, "GetCACert: %s\n", scep_strerror(err));
			goto out;
		}
		if (ca_certs_pick(c) != 0)
			goto out;
	} else {
		fprintf(stderr, "GetCACert: unexpected content type %s\n",
		    r.content_type != NULL ? r.content_type : "(none)");
		goto out;
	}
	if (log != NULL) {
		fprintf(
		    log, "GetCACert: %d certificate(s)\n", sk_X509_num(c->all));
		scep_print_name(log, "  RA encryption", c->ra_enc);
		scep_print_name(log, "  RA signing", c->ra_sig);
		if (c->ca != NULL)
			scep_print_name(log, "  CA", c->ca);
	}
	rc = 0;
out:
	if (rc != 0)
		scep_ca_certs_clear(c);
	http_reply_clear(&r);
	return rc;
}

int
scep_get_ca_caps(const struct http_client *hc, const char *ca_name, char **caps)
{
	struct http_reply r;
	int rc = -1;

	*caps = NULL;
	if (get_operation(hc, "GetCACaps", ca_name, &r) != 0)
		return -1;
	if (r.code != 200) {
		fprintf(stderr, "GetCACaps: HTTP %ld\n", r.code);
		goto out;
	}
	if ((*caps = strdup(r.body != NULL ? (char *)r.body : "")) == NULL)
		goto out;
	rc = 0;
out:
	http_reply_clear(&r);
	return rc;
}

int
scep_has_cap(const char *caps, const char *cap)
{
	size_t n = strlen(cap);
	const char *p = caps;

	while (*p != '\0') {
		size_t len = strcspn(p, "\r\n");
		size_t l = len;

		while (l > 0 && (p[l - 1] == ' ' || p[l - 1] == '\t'))
			l--;
		if (l == n && strncasecmp(p, cap, n) == 0)
			return 1;
		p += len;
		p += strspn(p, "\r\n");
	}
	return 0;
}

/* --- the device's signer and CSR ---------------------------------------- */

X509 *
scep_self_signed(EVP_PKEY *key, const char *cn, const EVP_MD *md)
{
	X509 *x = NULL;
	X509_NAME *name = NULL;
	BIGNUM *bn = NULL;
	int ok = 0;

	if ((x = X509_new()) == NULL || (name = X509_NAME_new()) == NULL ||
	    (bn = BN_new()) == NULL)
		goto out;
	if (!X509_set_version(x, X509_VERSION_3) ||
	    !BN_rand(bn, 64, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY) ||
	    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL ||
	    !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	        (const unsigned char *)cn, -1, -1, 0) ||
	    !X509_set_subject_name(x, name) || !X509_set_issuer_name(x, name) ||
	    X509_gmtime_adj(X509_getm_notBefore(x), -3600) == NULL ||
	    X509_gmtime_adj(X509_getm_notAfter(x), 365L * 24 * 3600) == NULL ||
	    !X509_set_pubkey(x, key) || X509_sign(x, key, md) <= 0)
		goto out;
	ok = 1;
out:
	BN_free(bn);
	X509_NAME_free(name);
	if (!ok) {
		X509_free(x);
		x = NULL;
	}
	return x;
}

X509_REQ *
scep_make_csr(const X509_NAME *subject, const char *challenge, int key_usage,
    const char *san, EVP_PKEY *key, const EVP_MD *md)
{
	X509_REQ *req = NULL;
	STACK_OF(X509_EXTENSION) *exts = NULL;
	X509_EXTENSION *ext = NULL;
	int ok = 0;

	if ((req = X509_REQ_new()) == NULL ||
	    !X509_REQ_set_version(req, X509_REQ_VERSION_1) ||
	    !X509_REQ_set_subject_name(req, subject) ||
	    !X509_REQ_set_pubkey(req, key))
		goto out;
	/* An empty one (a hostile test) as a raw UTF8String: OpenSSL's
	 * string rules would refuse to make it. */
	if (challenge != NULL &&
	    !X509_REQ_add1_attr_by_NID(req, NID_pkcs9_challengePassword,
	        challenge[0] ? MBSTRING_ASC : V_ASN1_UTF8STRING,
	        (const unsigned char *)challenge, challenge[0] ? -1 : 0))
		goto out;
	if ((exts = sk_X509_EXTENSION_new_null()) == NULL ||
	    (ext = X509V3_EXT_conf_nid(NULL, NULL, NID_key_usage,
	         key_usage == 1 ? "critical,digitalSignature"
	             : key_usage == 4
	             ? "critical,keyEncipherment"
	             : "critical,digitalSignature,keyEncipherment")) == NULL ||
	    !sk_X509_EXTENSION_push(exts, ext))
		goto out;
	ext = NULL;
	/* The SubjectAltName dictionary of a SCEP payload. */
	if (san != NULL &&
	    ((ext = X509V3_EXT_conf_nid(
	          NULL, NULL, NID_subject_alt_name, san)) == NULL ||
	        !sk_X509_EXTENSION_push(exts, ext)))
		goto out;
	ext = NULL;
	if (!X509_REQ_add_extensions(req, exts) ||
	    X509_REQ_sign(req, key, md) <= 0)
		goto out;
	ok = 1;
out:
	X509_EXTENSION_free(ext);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	if (!ok) {
		X509_REQ_free(req);
		req = NULL;
	}
	return req;
}

int
scep_own_attributes(const uint8_t *msg, size_t len, char **txid,
    uint8_t **nonce, size_t *nonce_len)
{
	static const struct scep_alg_policy any = {1, 1, 1};
	struct scep_request *parsed = NULL;
	const char *why = NULL;
	int failinfo, err, rc = -1;

	err = scep_request_parse(msg, len, &any, &parsed, &failinfo, &why);
	/* A refused algorithm (MD5, sent on purpose) still leaves the
	 * attributes readable: the codec answers such requests too. */
	if (err == SCEP_E_ALGORITHM && parsed != NULL)
		err = SCEP_OK;
	/* A request made without transactionID or with a bad nonce, on
	 * purpose: nothing to match a reply against (it gets HTTP 400). */
	if (err == SCEP_E_ATTRIBUTE) {
		*txid = strdup(parsed != NULL && parsed->transaction_id != NULL
		        ? parsed->transaction_id
		        : "(none)");
		rc = *txid != NULL ? 0 : -1;
		goto out;
	}
	if (err != SCEP_OK || parsed == NULL) {
		fprintf(stderr, "own request does not parse: %s (%s)\n",
		    scep_strerror(err), why != NULL ? why : "");
		goto out;
	}
	if ((*txid = strdup(parsed->transaction_id)) == NULL ||
	    (*nonce = malloc(parsed->sender_nonce_len)) == NULL)
		goto out;
	memcpy(*nonce, parsed->sender_nonce, parsed->sender_nonce_len);
	*nonce_len = parsed->sender_nonce_len;
	rc = 0;
out:
	scep_request_free(parsed);
	return rc;
}

EVP_PKEY *
scep_fake_rsa_public(int bits, int e_bits)
{
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *pk = NULL;
	BIGNUM *n = BN_new(), *e = BN_new();

	if (bld == NULL || n == NULL || e == NULL ||
	    !BN_rand(n, bits, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ODD) ||
	    !(e_bits > 0
	            ? BN_rand(e, e_bits, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ODD)
	            : BN_set_word(e, 65537)) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) ||
	    (params = OSSL_PARAM_BLD_to_param(bld)) == NULL ||
	    (ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL)) == NULL ||
	    EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params) <= 0)
		pk = NULL;
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	BN_free(n);
	BN_free(e);
	return pk;
}

EVP_PKEY *
scep_explicit_ec_key(void)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	OSSL_PARAM params[] = {
	    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, "P-256", 0),
	    OSSL_PARAM_utf8_string(
	        OSSL_PKEY_PARAM_EC_ENCODING, OSSL_PKEY_EC_ENCODING_EXPLICIT, 0),
	    OSSL_PARAM_END,
	};
	EVP_PKEY *pk = NULL;

	if (ctx == NULL || EVP_PKEY_keygen_init(ctx) <= 0 ||
	    !EVP_PKEY_CTX_set_params(ctx, params) ||
	    EVP_PKEY_generate(ctx, &pk) <= 0)
		pk = NULL;
	EVP_PKEY_CTX_free(ctx);
	return pk;
}

int
scep_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

double
scep_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int
scep_rpc_open(struct scep_rpc *r, const char *endpoint, const char *origin,
    const char *key_file, const char *server_key, const char *tool)
{
	struct rpc_curve_settings keys = {"", "", "", 0, NULL};

	memset(r, 0, sizeof(*r));
	keys.secret_key_file = (char *)key_file;
	/* Plain unless given keys: a test may well try tcp:// in clear. */
	keys.allow_insecure = strncmp(endpoint, "ipc://", 6) != 0;
	if ((r->curve = rpc_curve_load(&keys, NULL, tool, tool)) == NULL ||
	    (r->link = rpc_link_new(r->curve, endpoint, server_key, tool, tool,
	         "--endpoint", "--server-key")) == NULL)
		return -1;
	if ((r->ctx = zmq_ctx_new()) == NULL ||
	    (r->client = rpc_client_new_link(r->ctx, r->link, origin)) ==
	        NULL) {
		fprintf(stderr, "%s: cannot start ZeroMQ\n", tool);
		return -1;
	}
	return 0;
}

void
scep_rpc_close(struct scep_rpc *r)
{
	rpc_client_free(r->client);
	if (r->ctx != NULL)
		zmq_ctx_term(r->ctx);
	rpc_link_free(r->link);
	rpc_curve_free(r->curve);
	memset(r, 0, sizeof(*r));
}
