/*
 * Apple configuration profiles (AdminPath/profile.mobileconfig): what the
 * NDES blog has an administrator type into Apple's configuration utility,
 * made by the server itself. A SCEP payload (this server's URL, the CA
 * name, the subject in the order given, a fresh one-time challenge, key
 * size and usage, the issuing CA's fingerprint), a root payload with each
 * self-signed certificate of the RA's CA chain ([ra] CACertificate) and a
 * pkcs1 payload with each other CA certificate of it (an issuing CA that
 * is an intermediate, intermediates), as an XML plist built with libplist.
 * Unless SignProfiles = 0 the RA signs it (CMS SignedData, content
 * attached): the frontend holds no key, so signing is an RPC.
 *
 * Query: subject (required, RFC 4514-like, kept in the order given; parsed
 * by lib/subject.c), keysize (2048, 4096), usage (1 signing, 4
 * encryption, 5 both), dns, rfc822, uri (subjectAltName, repeatable). Bad
 * input is a 400 naming the parameter, answered before any password is
 * issued.
 *
 * Answers: 200 application/x-apple-aspen-config; 400 bad query; 405 not
 * GET; 409 UseSinglePassword (no password to put in) or another refusal
 * of the challenge service; 429 "The password cache is full."; 503 with
 * Retry-After when the RA or the challenge service does not answer, or
 * the RA cannot sign; 500 with the RA's reason when it refuses to sign
 * what was made (services/ra/profile_check.c: a chain that changed).
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <plist/plist.h>

#include "frontend.h"
#include "log.h"
#include "pki.h"
#include "subject.h"

/* Of all kinds together: Apple's CSR builder (make_general_names) makes
 * room for 10 names, grown only between kinds, and writes past it. */
#define PROFILE_SANS_MAX 10

static const struct http_header profile_headers[] = {
    {"Content-Disposition", "attachment; filename=\"scep.mobileconfig\""},
    {"Cache-Control", "no-store"}, /* it carries a password */
    {NULL, NULL},
};

/* subjectAltName kinds: the query parameter and Apple's key. */
enum san_kind { SAN_DNS, SAN_RFC822, SAN_URI, SAN_KINDS };
static const struct {
	const char *param;
	const char *key;
	size_t max_len;
} san_kinds[SAN_KINDS] = {
    {"dns", "dNSName", 253},
    {"rfc822", "rfc822Name", 254},
    {"uri", "uniformResourceIdentifier", 2048},
};

/* What the query asks for. Strings in sans are libmicrohttpd's, valid for
 * the request. */
struct profile_query {
	struct subject *subject;
	long keysize;
	long usage;
	const char *sans[SAN_KINDS][PROFILE_SANS_MAX];
	size_t nsans[SAN_KINDS];
	int seen_subject, seen_keysize, seen_usage;
	char err[320]; /* the 400's text; "" while all is well */
};

/* A CA certificate of the chain, as a payload of its own. */
struct profile_cert {
	const uint8_t *der; /* the cacert's */
	size_t len;
	char *name; /* its CN (else its subject): PayloadDisplayName */
	int root; /* self-signed: a trust anchor */
};

/* What goes into the profile besides the query. */
struct profile_content {
	const char *url;
	const char *ca_name; /* the issuing CA's */
	const char *challenge;
	plist_t challenge_node; /* its copy in the plist, wiped before free */
	const char *organization;
	int key_extractable; /* ProfileKeyIsExtractable */
	/* ProfileRetries, ProfileRetryDelay: how long a device polls after
	 * PENDING (a template with ApprovalRequired) before the install
	 * fails and its key, which the certificate would be for, is lost. */
	long retries, retry_delay;
	char ident[128]; /* PayloadIdentifier prefix */
	unsigned char ca_sha1[20]; /* the root's (CAFingerprint) */
	struct profile_cert *certs; /* roots first, then the others */
	size_t ncerts, nroots;
};

static void
profile_query_clear(struct profile_query *q)
{
	subject_free(q->subject);
	q->subject = NULL;
}

/* The password's copy in the plist, before plist_free frees it as is. */
static void
profile_wipe_challenge(struct profile_content *pc)
{
	const char *copy;
	uint64_t len = 0;

	if (pc->challenge_node != NULL &&
	    (copy = plist_get_string_ptr(pc->challenge_node, &len)) != NULL)
		OPENSSL_cleanse((char *)copy, (size_t)len);
	pc->challenge_node = NULL;
}

static void
profile_content_clear(struct profile_content *pc)
{
	for (size_t i = 0; i < pc->ncerts; i++)
		free(pc->certs[i].name);
	free(pc->certs);
	pc->certs = NULL;
	pc->ncerts = pc->nroots = 0;
}

static int __attribute__((format(printf, 2, 3)))
query_fail(struct profile_query *q, const char *fmt, ...)
{
	va_list ap;

	if (q->err[0] != '\0')
		return -1; /* the first problem is the one reported */
	va_start(ap, fmt);
	vsnprintf(q->err, sizeof(q->err) - 1, fmt, ap);
	va_end(ap);
	strcat(q->err, "\n");
	return -1;
}

/* Digits only, one of `allowed`. */
static int
parse_choice(const char *s, size_t len, const long *allowed, long *out)
{
	long v = 0;

	if (len == 0 || len > 6 || strspn(s, "0123456789") != len)
		return -1;
	v = strtol(s, NULL, 10);
	for (; *allowed != 0; allowed++)
		if (v == *allowed) {
			*out = v;
			return 0;
		}
	return -1;
}

/* Visible ASCII, no space: an IA5String's (RFC 5280 rfc822Name and URI)
 * that Apple's CSR builder keeps (it drops, silently, a name it cannot
 * write in ASCII, and the names after it). */
static int
visible_ascii(const char *v, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (v[i] < 0x21 || v[i] > 0x7e)
			return 0;
	return 1;
}

static int
san_ok(enum san_kind kind, const char *v, size_t len)
{
	const char *at;

	if (len == 0 || len > san_kinds[kind].max_len || strlen(v) != len)
		return 0;
	switch (kind) {
	case SAN_DNS:
		return strspn(v,
		           "abcdefghijklmnopqrstuvwxyz"
		           "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.*_") == len;
	case SAN_RFC822:
		at = strchr(v, '@');
		return at != NULL && at != v && at[1] != '\0' &&
		    strchr(at + 1, '@') == NULL && visible_ascii(v, len);
	case SAN_URI:
		return isalpha((unsigned char)v[0]) && strchr(v, ':') != NULL &&
		    visible_ascii(v, len);
	default:
		return 0;
	}
}

/* Each query argument, repeated ones included: subjectAltNames are
 * collected, anything unknown or given twice is refused. */
static enum MHD_Result
profile_param(void *cls, enum MHD_ValueKind kind, const char *key,
    size_t key_size, const char *value, size_t value_size)
{
	struct profile_query *q = cls;
	int *seen = NULL;

	(void)kind;
	(void)key_size;
	for (int k = 0; k < SAN_KINDS; k++) {
		if (strcmp(key, san_kinds[k].param) != 0)
			continue;
		if (q->nsans[SAN_DNS] + q->nsans[SAN_RFC822] +
		        q->nsans[SAN_URI] ==
		    PROFILE_SANS_MAX)
			query_fail(q,
			    "more than %d subjectAltNames (dns=, rfc822= and "
			    "uri= together): iOS makes room for %d",
			    PROFILE_SANS_MAX, PROFILE_SANS_MAX);
		else if (value == NULL ||
		    !san_ok((enum san_kind)k, value, value_size))
			query_fail(q, "%s=%.64s%s is not a valid %s",
			    san_kinds[k].param, value ? value : "",
			    value && value_size > 64 ? "..." : "",
			    san_kinds[k].key);
		else
			q->sans[k][q->nsans[k]++] = value;
		return q->err[0] ? MHD_NO : MHD_YES;
	}
	if (strcmp(key, "subject") == 0)
		seen = &q->seen_subject;
	else if (strcmp(key, "keysize") == 0)
		seen = &q->seen_keysize;
	else if (strcmp(key, "usage") == 0)
		seen = &q->seen_usage;
	if (seen == NULL)
		query_fail(q,
		    "unknown parameter '%.64s' (known: subject, keysize, "
		    "usage, dns, rfc822, uri)",
		    key);
	else if ((*seen)++ > 0)
		query_fail(q, "%s is given more than once", key);
	return q->err[0] ? MHD_NO : MHD_YES;
}

/* Fills q from the query string; on -1, q->err says what is wrong. */
/*
 * Each value within what X.520 allows its type, as OpenSSL's string table
 * says (C two letters; CN, O, OU 1 to 64 characters; L, ST 128): a
 * subject the device's request would carry and the CA refuse costs no
 * password.
 */
static int
subject_fits_x520(struct profile_query *q)
{
	for (size_t i = 0; i < q->subject->nattrs; i++) {
		const struct subject_attr *a = &q->subject->attrs[i];
		X509_NAME_ENTRY *e =
		    X509_NAME_ENTRY_create_by_txt(NULL, a->type, MBSTRING_UTF8,
		        (const unsigned char *)a->value, (int)a->value_len);

		if (e == NULL) {
			ERR_clear_error();
			return query_fail(q,
			    "subject: %s=%.40s%s is not a value X.520 allows "
			    "(C: two letters; CN, O, OU: 1 to 64 characters; "
			    "L, "
			    "ST: 128)",
			    a->type, a->value, a->value_len > 40 ? "..." : "");
		}
		X509_NAME_ENTRY_free(e);
	}
	return 0;
}

static int
profile_query_parse(struct MHD_Connection *c, struct profile_query *q)
{
	/* Apple's SCEP payload takes 1024, 2048 or 4096: 1024 is below
	 * any MinRSABits. */
	static const long keysizes[] = {2048, 4096, 0};
	static const long usages[] = {1, 4, 5, 0};
	char err[256];
	const char *v;
	size_t len;

	q->keysize = 2048;
	q->usage = 5;
	MHD_get_connection_values_n(c, MHD_GET_ARGUMENT_KIND, profile_param, q);
	if (q->err[0] != '\0')
		return -1;
	if (MHD_lookup_connection_value_n(c, MHD_GET_ARGUMENT_KIND, "keysize",
	        strlen("keysize"), &v, &len) == MHD_YES &&
	    parse_choice(v ? v : "", v ? len : 0, keysizes, &q->keysize) != 0)
		return query_fail(q,
		    "keysize must be 2048 or 4096 (of Apple's SCEP key "
		    "sizes, 1024 is too small)");
	if (MHD_lookup_connection_value_n(c, MHD_GET_ARGUMENT_KIND, "usage",
	        strlen("usage"), &v, &len) == MHD_YES &&
	    parse_choice(v ? v : "", v ? len : 0, usages, &q->usage) != 0)
		return query_fail(
		    q, "usage must be 1 (signing), 4 (encryption) or 5 (both)");
	if (MHD_lookup_connection_value_n(c, MHD_GET_ARGUMENT_KIND, "subject",
	        strlen("subject"), &v, &len) != MHD_YES ||
	    v == NULL)
		v = "", len = 0;
	if (len == 0)
		return query_fail(q,
		    "subject is missing or empty; give it as e.g. "
		    "subject=O=Fabrikam,OU=IT,CN=Robs%%20IPad");
	if (subject_parse(v, len, &q->subject, err, sizeof(err)) != 0)
		return query_fail(q, "%s", err[0] ? err : "out of memory");
	return subject_fits_x520(q);
}

/* A CA's name for the SCEP payload's Name and the certificate payloads'
 * PayloadDisplayName: its subject CN, else its whole subject (RFC 2253,
 * non-ASCII escaped). Caller frees. */
static char *
profile_cert_name(const X509 *x)
{
	const X509_NAME *name;
	const X509_NAME_ENTRY *e;
	unsigned char *utf8 = NULL;
	BIO *b = NULL;
	char *out = NULL, *mem;
	long n;
	int i, ulen;

	name = X509_get_subject_name(x);
	i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
	if (i >= 0 && (e = X509_NAME_get_entry(name, i)) != NULL &&
	    (ulen = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(e))) >
	        0 &&
	    subject_text_ok((char *)utf8, (size_t)ulen)) {
		out = strdup((char *)utf8);
		goto out;
	}
	if ((b = BIO_new(BIO_s_mem())) == NULL ||
	    X509_NAME_print_ex(
	        b, name, 0, XN_FLAG_RFC2253 | ASN1_STRFLGS_ESC_MSB) < 0 ||
	    (n = BIO_get_mem_data(b, &mem)) <= 0)
		goto out;
	out = strndup(mem, (size_t)n);
out:
	OPENSSL_free(utf8);
	BIO_free(b);
	return out;
}

static X509 *
profile_cert_parse(const uint8_t *der, size_t len)
{
	const unsigned char *p = der;
	X509 *x = d2i_X509(NULL, &p, (long)len);

	if (x == NULL || p != der + len) {
		log_openssl(LOG_LEVEL_ERROR, NULL,
		    "profile: a CA certificate from the RA does not parse");
		X509_free(x);
		return NULL;
	}
	return x;
}

/* The issuing CA's name (profile_cert_name). Caller frees. */
static char *
profile_ca_name(const uint8_t *der, size_t len)
{
	X509 *x = profile_cert_parse(der, len);
	char *name = x != NULL ? profile_cert_name(x) : NULL;

	X509_free(x);
	return name;
}

/* Why a chain without its root makes no profile (profile_chain). */
static void
profile_no_root(char *out, size_t outlen, const char *why)
{
	snprintf(out, outlen,
	    "[ra] CACertificate %s: a profile's CAFingerprint must be the "
	    "root's (the device compares it with the top of the chain it "
	    "builds from GetCACert, and refuses chains to two tops); put the "
	    "issuing CA's root in [ra] CACertificate, after the issuing CA, "
	    "and no other CA's certificates",
	    why);
}

/*
 * The certificate payloads of cc's CA chain: each self-signed certificate
 * as a root, each other CA certificate (the issuing CA when it is an
 * intermediate, intermediates) as an intermediate; the issuing CA alone
 * from an RA that sends no chain; and the CAFingerprint, the SHA-1 of the
 * root the issuing CA leads to. 1 when the chain has no such root
 * (why in `no_root`, logged), -1 when a certificate does not parse or
 * memory runs out (logged).
 */
static int
profile_chain(const struct cacert *cc, struct profile_content *pc,
    char *no_root, size_t no_root_len)
{
	const ProtobufCBinaryData issuing = {cc->ca_der_len, cc->ca_der};
	const ProtobufCBinaryData *chain =
	    cc->nchain > 0 ? cc->chain : &issuing;
	size_t n = cc->nchain > 0 ? cc->nchain : 1, nother = 0;
	struct profile_cert *others = NULL;
	STACK_OF(X509) *parsed = sk_X509_new_null();
	X509 *x = NULL, *root;
	const char *why;
	int rc = -1;

	pc->certs = calloc(n, sizeof(*pc->certs));
	others = calloc(n, sizeof(*others));
	if (pc->certs == NULL || others == NULL || parsed == NULL) {
		log_error("profile: out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		struct profile_cert pcert = {
		    chain[i].data, chain[i].len, NULL, 0};
		int dup = 0;

		for (size_t j = 0; j < i && !dup; j++)
			dup = chain[j].len == chain[i].len &&
			    memcmp(chain[j].data, chain[i].data,
			        chain[i].len) == 0;
		if (dup)
			continue;
		if ((x = profile_cert_parse(chain[i].data, chain[i].len)) ==
		    NULL)
			goto out;
		if (!sk_X509_push(parsed, x)) {
			X509_free(x);
			log_error("profile: out of memory");
			goto out;
		}
		/* What else the operator put after the CA is no CA's. */
		if (i > 0 && X509_check_ca(x) == 0)
			continue;
		/* A root as iOS takes a com.apple.security.root payload:
		 * issued by itself, signed with its own key. */
		pcert.root = pki_issued_by(x, x);
		if ((pcert.name = profile_cert_name(x)) == NULL) {
			log_openssl(LOG_LEVEL_ERROR, NULL,
			    "profile: a CA certificate from the RA has no "
			    "name to show");
			goto out;
		}
		if (pcert.root)
			pc->certs[pc->nroots++] = pcert;
		else
			others[nother++] = pcert;
	}
	memcpy(pc->certs + pc->nroots, others, nother * sizeof(*others));
	pc->ncerts = pc->nroots + nother;
	nother = 0;
	if ((root = pki_chain_root(parsed, &why)) == NULL) {
		profile_no_root(no_root, no_root_len, why);
		log_warn("profile: not made: %s", no_root);
		rc = 1;
		goto out;
	}
	if (X509_digest(root, EVP_sha1(), pc->ca_sha1, NULL) != 1) {
		log_openssl(LOG_LEVEL_ERROR, NULL,
		    "profile: cannot hash the root certificate");
		goto out;
	}
	rc = 0;
out:
	for (size_t i = 0; i < nother; i++)
		free(others[i].name);
	free(others);
	sk_X509_pop_free(parsed, X509_free);
	if (rc != 0) {
		/* The names it holds: the roots', and the others' once
		 * moved in (a chain without its root). */
		if (pc->ncerts < pc->nroots)
			pc->ncerts = pc->nroots;
		profile_content_clear(pc);
	}
	return rc;
}

/* The SCEP URL devices are given: ExternalURL, else http:// Listen and
 * the first of Paths. Caller frees. */
static char *
profile_scep_url(const struct frontend *fe)
{
	const char *listen = fe->settings.listen, *colon;
	char host[256];
	char *url = NULL;
	size_t n;

	if (fe->settings.external_url[0] != '\0')
		return strdup(fe->settings.external_url);
	if (fe->npaths == 0 || (colon = strrchr(listen, ':')) == NULL ||
	    (n = (size_t)(colon - listen)) >= sizeof(host))
		return NULL;
	memcpy(host, listen, n);
	host[n] = '\0';
	/* A wildcard address is no place to send a device: the host's name
	 * is the best guess; ExternalURL says better. Read at start: the
	 * sandbox kills the frontend for uname, gethostname's call. */
	if (n == 0 || strcmp(host, "*") == 0 || strcmp(host, "0.0.0.0") == 0 ||
	    strcmp(host, "[::]") == 0) {
		if (fe->hostname[0] == '\0')
			return NULL;
		snprintf(host, sizeof(host), "%s", fe->hostname);
	}
	if (asprintf(&url, "http://%s%s%s", host, colon, fe->paths[0]) < 0)
		return NULL;
	return url;
}

/*
 * "scepd.<host of url>.<hash>": the PayloadIdentifier prefix. A device
 * replaces an installed profile of the same identifier: the same server,
 * subject and key usage again replace it (a renewed profile), another
 * subject or usage (NDES's pair of a signing and an encryption
 * certificate) or another server's is installed beside it.
 */
static void
profile_ident(
    const char *url, const char *subject, long usage, char *out, size_t outlen)
{
	const char *p = strstr(url, "://");
	unsigned char md[SHA256_DIGEST_LENGTH];
	char host[100], usage_text[24];
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	size_t n = 0;
	int ok;

	for (p = p ? p + 3 : url; n < sizeof(host) - 1 &&
	     (isalnum((unsigned char)*p) || *p == '-' || *p == '.');
	     p++)
		host[n++] = (char)tolower((unsigned char)*p);
	host[n] = '\0';
	snprintf(usage_text, sizeof(usage_text), "%ld", usage);
	/* Each part with its NUL: no two triples hash alike. */
	ok = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
	    EVP_DigestUpdate(ctx, url, strlen(url) + 1) == 1 &&
	    EVP_DigestUpdate(ctx, subject, strlen(subject) + 1) == 1 &&
	    EVP_DigestUpdate(ctx, usage_text, strlen(usage_text) + 1) == 1 &&
	    EVP_DigestFinal_ex(ctx, md, NULL) == 1;
	EVP_MD_CTX_free(ctx);
	if (!ok)
		memset(md, 0, sizeof(md));
	snprintf(out, outlen, "scepd.%s.%02x%02x%02x%02x%02x%02x",
	    n > 0 ? host : "server", md[0], md[1], md[2], md[3], md[4], md[5]);
}

/* A random (version 4) UUID, upper case as Apple's tools write them. */
static int
uuid_v4(char out[37])
{
	unsigned char b[16];

	if (RAND_bytes(b, sizeof(b)) != 1) {
		log_openssl(LOG_LEVEL_ERROR, NULL, "profile: RAND_bytes");
		return -1;
	}
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	snprintf(out, 37,
	    "%02X%02X%02X%02X-%02X%02X-%02X%02X-%02X%02X-"
	    "%02X%02X%02X%02X%02X%02X",
	    b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10],
	    b[11], b[12], b[13], b[14], b[15]);
	return 0;
}

/* Sets key to item, which it takes; -1 when libplist had no memory. */
static int
dict_set(plist_t dict, const char *key, plist_t item)
{
	if (item == NULL)
		return -1;
	plist_dict_set_item(dict, key, item);
	return 0;
}

static int
array_add(plist_t array, plist_t item)
{
	if (item == NULL)
		return -1;
	plist_array_append_item(array, item);
	return 0;
}

/* The keys every payload carries. */
static int
payload_header(plist_t d, const char *type, const char *ident,
    const char *suffix, const char *display)
{
	char uuid[37], id[192];

	if (uuid_v4(uuid) != 0)
		return -1;
	snprintf(id, sizeof(id), "%s%s", ident, suffix);
	return dict_set(d, "PayloadType", plist_new_string(type)) |
	    dict_set(d, "PayloadVersion", plist_new_uint(1)) |
	    dict_set(d, "PayloadIdentifier", plist_new_string(id)) |
	    dict_set(d, "PayloadUUID", plist_new_string(uuid)) |
	    dict_set(d, "PayloadDisplayName", plist_new_string(display));
}

/* Apple's Subject: an array of RDNs, each an array of [type, value]. */
static plist_t
profile_subject(const struct subject *subj)
{
	plist_t subject = plist_new_array(), rdn = NULL, pair;
	int rc = subject == NULL ? -1 : 0;

	for (size_t i = 0; rc == 0 && i < subj->nattrs; i++) {
		const struct subject_attr *a = &subj->attrs[i];

		if (rdn == NULL || a->rdn != subj->attrs[i - 1].rdn)
			rc |= array_add(subject, rdn = plist_new_array());
		if (rc != 0)
			break;
		rc |= array_add(rdn, pair = plist_new_array());
		if (rc == 0)
			rc |= array_add(pair, plist_new_string(a->type)) |
			    array_add(pair, plist_new_string(a->value));
	}
	if (rc != 0) {
		plist_free(subject);
		return NULL;
	}
	return subject;
}

/* The com.apple.security.scep payload's own PayloadContent. */
static plist_t
profile_scep_content(const struct profile_query *q, struct profile_content *pc)
{
	plist_t d = plist_new_dict(), san = NULL, list;
	int rc = d == NULL ? -1 : 0;

	if (rc == 0)
		pc->challenge_node = plist_new_string(pc->challenge);
	if (rc == 0)
		rc = dict_set(d, "URL", plist_new_string(pc->url)) |
		    dict_set(d, "Name", plist_new_string(pc->ca_name)) |
		    dict_set(d, "Subject", profile_subject(q->subject)) |
		    dict_set(d, "Challenge", pc->challenge_node) |
		    dict_set(
		        d, "Keysize", plist_new_uint((uint64_t)q->keysize)) |
		    dict_set(d, "Key Type", plist_new_string("RSA")) |
		    /* Apple's default is true: the key may be exported. */
		    dict_set(d, "KeyIsExtractable",
		        plist_new_bool(pc->key_extractable)) |
		    dict_set(
		        d, "Key Usage", plist_new_uint((uint64_t)q->usage)) |
		    dict_set(
		        d, "Retries", plist_new_uint((uint64_t)pc->retries)) |
		    dict_set(d, "RetryDelay",
		        plist_new_uint((uint64_t)pc->retry_delay)) |
		    dict_set(d, "CAFingerprint",
		        plist_new_data(
		            (const char *)pc->ca_sha1, sizeof(pc->ca_sha1)));
	for (int k = 0; rc == 0 && k < SAN_KINDS; k++) {
		if (q->nsans[k] == 0)
			continue;
		if (san == NULL &&
		    (rc = dict_set(
		         d, "SubjectAltName", san = plist_new_dict())) != 0)
			break;
		if ((rc = dict_set(
		         san, san_kinds[k].key, list = plist_new_array())) != 0)
			break;
		for (size_t i = 0; rc == 0 && i < q->nsans[k]; i++)
			rc = array_add(list, plist_new_string(q->sans[k][i]));
	}
	if (rc != 0) {
		profile_wipe_challenge(pc);
		plist_free(d);
		return NULL;
	}
	return d;
}

/*
 * A certificate payload: a root (com.apple.security.root, a trust anchor)
 * or an intermediate (com.apple.security.pkcs1). Their PayloadIdentifiers
 * are stable across downloads: the first root is ".ca" as it always was,
 * a further root ".ca-N", the Nth other ".intermediate-N", each counted
 * in the chain's order.
 */
static int
profile_cert_payload(plist_t payloads, const struct profile_content *pc,
    const struct profile_cert *cert, size_t nth)
{
	plist_t d = plist_new_dict();
	char suffix[40], file[40];
	int rc;

	if (d == NULL)
		return -1;
	if (cert->root && nth == 1) {
		snprintf(suffix, sizeof(suffix), ".ca");
		snprintf(file, sizeof(file), "ca.cer");
	} else if (cert->root) {
		snprintf(suffix, sizeof(suffix), ".ca-%zu", nth);
		snprintf(file, sizeof(file), "ca-%zu.cer", nth);
	} else {
		snprintf(suffix, sizeof(suffix), ".intermediate-%zu", nth);
		snprintf(file, sizeof(file), "intermediate-%zu.cer", nth);
	}
	rc = array_add(payloads, d);
	rc |= payload_header(d,
	    cert->root ? "com.apple.security.root" : "com.apple.security.pkcs1",
	    pc->ident, suffix, cert->name);
	rc |= dict_set(d, "PayloadCertificateFileName", plist_new_string(file));
	rc |= dict_set(d, "PayloadContent",
	    plist_new_data((const char *)cert->der, cert->len));
	return rc;
}

/* The whole profile; NULL on failure (logged). */
static plist_t
profile_build(const struct profile_query *q, struct profile_content *pc)
{
	plist_t top = plist_new_dict(), payloads = plist_new_array();
	plist_t scep = plist_new_dict();
	/* Whole, not cut to a buffer: a cut may split a UTF-8 character of
	 * the CA's name, and iOS refuses a plist that is not UTF-8. */
	char *display = NULL, *desc = NULL;
	int rc = 0, n;

	if (asprintf(&display, "SCEP enrollment (%s)", pc->ca_name) < 0)
		display = NULL; /* undefined after a failure */
	if (pc->nroots == 0)
		n = asprintf(&desc,
		    "Enrolls this device for a certificate from %s.",
		    pc->ca_name);
	else if (strcmp(pc->certs[0].name, pc->ca_name) == 0)
		n = asprintf(&desc,
		    "Enrolls this device for a certificate from %s and "
		    "trusts that certificate authority.",
		    pc->ca_name);
	else
		n = asprintf(&desc,
		    "Enrolls this device for a certificate from %s and "
		    "trusts its root certificate authority, %s.",
		    pc->ca_name, pc->certs[0].name);
	if (n < 0)
		desc = NULL;
	if (top == NULL || payloads == NULL || scep == NULL ||
	    display == NULL || desc == NULL) {
		plist_free(scep);
		rc = -1;
		goto out;
	}
	rc |= array_add(payloads, scep);
	rc |= payload_header(
	    scep, "com.apple.security.scep", pc->ident, ".scep", display);
	rc |= dict_set(scep, "PayloadContent", profile_scep_content(q, pc));
	for (size_t i = 0; rc == 0 && i < pc->ncerts; i++)
		rc |= profile_cert_payload(payloads, pc, &pc->certs[i],
		    i < pc->nroots ? i + 1 : i - pc->nroots + 1);
	rc |= payload_header(top, "Configuration", pc->ident, "", display);
	rc |= dict_set(
	    top, "PayloadOrganization", plist_new_string(pc->organization));
	rc |= dict_set(top, "PayloadDescription", plist_new_string(desc));
	rc |= dict_set(top, "PayloadContent", payloads);
	payloads = NULL; /* the top dictionary's now */
out:
	if (rc != 0)
		profile_wipe_challenge(pc); /* before a free of its node */
	plist_free(payloads);
	free(display);
	free(desc);
	if (rc != 0) {
		log_error("profile: cannot build the plist (out of memory)");
		plist_free(top);
		return NULL;
	}
	return top;
}

const char *
profile_url_scep_path(
    const struct frontend *fe, const char *url, char *buf, size_t len)
{
	const char *host = strstr(url, "://"), *path;
	size_t n;

	if (host == NULL || (path = strchr(host + 3, '/')) == NULL ||
	    (n = strcspn(path, "?#")) >= len)
		return NULL;
	memcpy(buf, path, n);
	buf[n] = '\0';
	return http_scep_path(fe, buf);
}

/* Issues the challenge as the admin page does, for the path of the
 * profile's SCEP URL (its validator must take it); answers errors
 * itself. */
static int
profile_challenge(struct frontend *fe, struct MHD_Connection *c,
    struct request *r, const char *user, const char *url, Scep__V1__Reply **rep,
    enum MHD_Result *ret)
{
	Scep__V1__Request req = SCEP__V1__REQUEST__INIT;
	Scep__V1__ChallengeIssueRequest body =
	    SCEP__V1__CHALLENGE_ISSUE_REQUEST__INIT;
	enum upstream_result res;
	const char *error;
	char path[512];

	body.issued_by = (char *)user;
	body.client_addr = r->client;
	/* A path none of Paths is (a proxy's, rewritten): the default
	 * paths' validator, as the admin page's (warned at start). */
	body.path = (char *)profile_url_scep_path(fe, url, path, sizeof(path));
	req.body_case = SCEP__V1__REQUEST__BODY_CHALLENGE_ISSUE;
	req.challenge_issue = &body;
	res = upstream_call(fe, UPSTREAM_CHALLENGE, &req,
	    SCEP__V1__REPLY__BODY_CHALLENGE_ISSUE, rep);
	switch (res) {
	case UPSTREAM_OK:
		if (((*rep)->challenge_issue->has_single &&
		        (*rep)->challenge_issue->single) ||
		    (*rep)->challenge_issue->password == NULL ||
		    (*rep)->challenge_issue->password[0] == '\0') {
			*ret = http_text(c, r, MHD_HTTP_CONFLICT,
			    "UseSinglePassword is on: the shared password is "
			    "stored only as a hash, so no profile can carry "
			    "it.\n");
			return -1;
		}
		return 0;
	case UPSTREAM_REFUSED:
	case UPSTREAM_RATE_LIMITED:
		error =
		    (*rep)->error ? (*rep)->error : "No password was issued.";
		log_warn(
		    "profile: no challenge password for %s: %s", user, error);
		/* A full cache empties as passwords are used or expire; any
		 * other refusal is the configuration's, not to be retried. */
		if (res == UPSTREAM_RATE_LIMITED ||
		    strcmp(error, "The password cache is full.") == 0)
			*ret = http_too_many(c, r,
			    (*rep)->has_retry_after_s ? (*rep)->retry_after_s
			                              : 60,
			    error);
		else
			*ret = http_text(c, r, MHD_HTTP_CONFLICT, error);
		return -1;
	case UPSTREAM_BAD_REQUEST: /* the admin page's 400 too */
		error =
		    (*rep)->error ? (*rep)->error : "The request was refused.";
		log_warn(
		    "profile: no challenge password for %s: %s", user, error);
		*ret = http_text(c, r, MHD_HTTP_BAD_REQUEST, error);
		return -1;
	case UPSTREAM_UNAVAILABLE:
		*ret = http_unavailable(c, r,
		    "The challenge service did not answer; retry in a few "
		    "seconds.\n");
		return -1;
	default:
		*ret = http_text(c, r, MHD_HTTP_INTERNAL_SERVER_ERROR,
		    "Internal server error; the server log says more.\n");
		return -1;
	}
}

/* Has the RA sign xml; answers errors itself. */
static int
profile_sign(struct frontend *fe, struct MHD_Connection *c, struct request *r,
    const char *xml, size_t len, Scep__V1__Reply **rep, enum MHD_Result *ret)
{
	Scep__V1__Request req = SCEP__V1__REQUEST__INIT;
	Scep__V1__SignProfileRequest body =
	    SCEP__V1__SIGN_PROFILE_REQUEST__INIT;
	enum upstream_result res;

	body.content.data = (uint8_t *)xml;
	body.content.len = len;
	req.body_case = SCEP__V1__REQUEST__BODY_SIGN_PROFILE;
	req.sign_profile = &body;
	res = upstream_call(
	    fe, UPSTREAM_RA, &req, SCEP__V1__REPLY__BODY_SIGN_PROFILE, rep);
	if (res == UPSTREAM_OK)
		return 0;
	/* Not a profile the RA signs (profile_check.c there): a chain that
	 * changed under our copy is the likely cause, asked again at once. */
	if (res == UPSTREAM_REFUSED) {
		const char *why =
		    (*rep)->error ? (*rep)->error : "no reason given";
		char text[400];

		log_error("profile: the RA refused to sign it: %s", why);
		cache_doubt(fe);
		snprintf(text, sizeof(text),
		    "The RA refused to sign the profile: %.200s. If [ra] "
		    "CACertificate just changed, retry: this server asks the "
		    "RA for it again.\n",
		    why);
		*ret = http_text(c, r, MHD_HTTP_INTERNAL_SERVER_ERROR, text);
		return -1;
	}
	/* Not signed is a 503 either way, as a device's CertRep the RA
	 * cannot sign is: its key's token may be back in a moment. */
	if (res != UPSTREAM_UNAVAILABLE)
		log_error("profile: the RA did not sign: %s",
		    *rep != NULL && (*rep)->error ? (*rep)->error : "failed");
	*ret = http_unavailable(c, r,
	    res == UPSTREAM_UNAVAILABLE
	        ? "The RA did not answer to sign the profile; retry in a "
	          "few seconds.\n"
	        : "The RA could not sign the profile; retry in a few "
	          "seconds.\n");
	return -1;
}

enum MHD_Result
profile_handle(struct frontend *fe, struct MHD_Connection *c, struct request *r,
    const char *user)
{
	struct profile_query q;
	struct profile_content pc;
	struct cacert cc = {0};
	Scep__V1__Reply *chal = NULL, *sig = NULL;
	plist_t plist = NULL;
	char err[256], *url = NULL, *ca_name = NULL, *xml = NULL;
	char no_root[512], no_root_text[640];
	const char *subject_arg;
	int handed_out = 0;
	uint32_t xml_len = 0;
	const uint8_t *body;
	size_t body_len;
	enum MHD_Result ret = MHD_NO;

	if (strcmp(r->method, "GET") != 0)
		return http_not_allowed(c, r, "GET");
	memset(&q, 0, sizeof(q));
	memset(&pc, 0, sizeof(pc));
	if (profile_query_parse(c, &q) != 0) {
		ret = http_text(c, r, MHD_HTTP_BAD_REQUEST, q.err);
		goto out;
	}
	switch (cache_get_cacert(fe, &cc, CACERT_CERTS, 1, err, sizeof(err))) {
	case UPSTREAM_OK:
		break;
	case UPSTREAM_UNAVAILABLE:
		ret = http_unavailable(
		    c, r, "The RA did not answer; retry in a few seconds.\n");
		goto out;
	default:
		log_error("profile: no CA certificate: %s", err);
		ret = http_text(c, r, MHD_HTTP_INTERNAL_SERVER_ERROR,
		    "Internal server error; the server log says more.\n");
		goto out;
	}
	if ((ca_name = profile_ca_name(cc.ca_der, cc.ca_der_len)) == NULL ||
	    (url = profile_scep_url(fe)) == NULL) {
		log_openssl(
		    LOG_LEVEL_ERROR, NULL, "profile: cannot describe the CA");
		ret = http_text(c, r, MHD_HTTP_INTERNAL_SERVER_ERROR,
		    "Internal server error; the server log says more.\n");
		goto out;
	}
	switch (profile_chain(&cc, &pc, no_root, sizeof(no_root))) {
	case 0:
		break;
	case 1:
		snprintf(no_root_text, sizeof(no_root_text),
		    "No profile: %s. If [ra] CACertificate just changed, retry "
		    "in a minute: this server asks the RA for it again.\n",
		    no_root);
		ret = http_text(
		    c, r, MHD_HTTP_INTERNAL_SERVER_ERROR, no_root_text);
		goto out;
	default:
		ret = http_text(c, r, MHD_HTTP_INTERNAL_SERVER_ERROR,
		    "Internal server error; the server log says more.\n");
		goto out;
	}
	pc.url = url;
	pc.ca_name = ca_name;
	pc.organization = fe->settings.profile_organization;
	pc.key_extractable = fe->settings.profile_key_extractable;
	pc.retries = fe->settings.profile_retries;
	pc.retry_delay = fe->settings.profile_retry_delay;
	subject_arg =
	    MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "subject");
	profile_ident(url, subject_arg != NULL ? subject_arg : "", q.usage,
	    pc.ident, sizeof(pc.ident));

	/* Last before building: a refused query costs no password. */
	if (profile_challenge(fe, c, r, user, url, &chal, &ret) != 0)
		goto out;
	pc.challenge = chal->challenge_issue->password;
	if ((plist = profile_build(&q, &pc)) == NULL) {
		ret = http_text(
		    c, r, MHD_HTTP_INTERNAL_SERVER_ERROR, "Out of memory.\n");
		goto out;
	}
	plist_to_xml(plist, &xml, &xml_len);
	if (xml == NULL) {
		log_error("profile: libplist wrote no XML");
		ret = http_text(c, r, MHD_HTTP_INTERNAL_SERVER_ERROR,
		    "Internal server error; the server log says more.\n");
		goto out;
	}
	body = (const uint8_t *)xml;
	body_len = xml_len;
	if (fe->settings.sign_profiles) {
		if (profile_sign(fe, c, r, xml, xml_len, &sig, &ret) != 0)
			goto out;
		body = sig->sign_profile->signed_data.data;
		body_len = sig->sign_profile->signed_data.len;
	}
	log_info("profile: %s from %s got a %s profile for %zu subject "
	         "attributes, challenge valid %u minutes",
	    user, r->client, fe->settings.sign_profiles ? "signed" : "unsigned",
	    q.subject->nattrs, chal->challenge_issue->validity_minutes);
	ret = http_respond_secret(c, r, MHD_HTTP_OK,
	    "application/x-apple-aspen-config", body, body_len,
	    profile_headers);
	handed_out = ret == MHD_YES;
out:
	if (pc.challenge != NULL && !handed_out)
		admin_withdraw(fe, user, pc.challenge, "a profile");
	/* The password is in the XML, and in clear inside the signed data. */
	if (xml != NULL) {
		OPENSSL_cleanse(xml, xml_len);
		plist_to_xml_free(xml);
	}
	if (sig != NULL) {
		if (sig->body_case == SCEP__V1__REPLY__BODY_SIGN_PROFILE &&
		    sig->sign_profile->signed_data.data != NULL)
			OPENSSL_cleanse(sig->sign_profile->signed_data.data,
			    sig->sign_profile->signed_data.len);
		scep__v1__reply__free_unpacked(sig, NULL);
	}
	if (chal != NULL) {
		if (chal->body_case == SCEP__V1__REPLY__BODY_CHALLENGE_ISSUE &&
		    chal->challenge_issue->password != NULL)
			OPENSSL_cleanse(chal->challenge_issue->password,
			    strlen(chal->challenge_issue->password));
		scep__v1__reply__free_unpacked(chal, NULL);
	}
	profile_wipe_challenge(&pc);
	plist_free(plist);
	free(url);
	free(ca_name);
	profile_content_clear(&pc);
	cacert_clear(&cc);
	profile_query_clear(&q);
	return ret;
}
