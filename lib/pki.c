/*
 * Certificates and keys from files. Every error message names the file and
 * gives OpenSSL's reason; OpenSSL's error queue is left empty.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>

#include "pki.h"

/* Larger than any certificate chain or key file we mean to read. */
#define PKI_MAX_FILE (4 * 1024 * 1024)
#define PKI_MAX_PASSPHRASE 1024

/* OpenSSL's reason for the last failure, and an empty error queue. */
static const char *
pki_reason(void)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = NULL;

	if (e != 0)
		r = ERR_reason_error_string(e);
	ERR_clear_error();
	return r != NULL ? r : "unknown OpenSSL error";
}

/*
 * The whole file in a memory BIO, so PEM can be retried as DER. NULL and
 * `err` filled when the file cannot be read. read(2) rather than stdio,
 * and the buffer wiped: no copy of a key file is left in freed memory (a
 * memory BIO wipes its own buffer when it grows or is freed).
 */
BIO *
pki_read_file_max(const char *path, long max, char *err, size_t errlen)
{
	BIO *mem = NULL, *rc = NULL;
	char buf[4096];
	long total = 0;
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	if ((mem = BIO_new(BIO_s_mem())) == NULL) {
		snprintf(err, errlen, "%s: %s", path, pki_reason());
		goto out;
	}
	while ((n = read(fd, buf, sizeof(buf))) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			goto out;
		}
		total += n;
		if (total > max) {
			snprintf(err, errlen, "%s: larger than %ld bytes", path,
			    max);
			goto out;
		}
		if (BIO_write(mem, buf, (int)n) != n) {
			snprintf(err, errlen, "%s: %s", path, pki_reason());
			goto out;
		}
	}
	ERR_clear_error();
	rc = mem;
	mem = NULL;
out:
	OPENSSL_cleanse(buf, sizeof(buf));
	if (fd >= 0)
		close(fd);
	BIO_free(mem);
	return rc;
}

static BIO *
pki_read_file(const char *path, char *err, size_t errlen)
{
	return pki_read_file_max(path, PKI_MAX_FILE, err, errlen);
}

/* RFC 5280 5.3.1's reasonCode values a revocation may have (7 is unused,
 * removeFromCRL is a delta CRL's); aACompromise is an attribute
 * authority's, met in other CAs' CRLs. */
static const struct {
	const char *name;
	int code;
} pki_crl_reasons[] = {
    {"unspecified", CRL_REASON_UNSPECIFIED},
    {"keyCompromise", CRL_REASON_KEY_COMPROMISE},
    {"cACompromise", CRL_REASON_CA_COMPROMISE},
    {"affiliationChanged", CRL_REASON_AFFILIATION_CHANGED},
    {"superseded", CRL_REASON_SUPERSEDED},
    {"cessationOfOperation", CRL_REASON_CESSATION_OF_OPERATION},
    {"certificateHold", CRL_REASON_CERTIFICATE_HOLD},
    {"privilegeWithdrawn", CRL_REASON_PRIVILEGE_WITHDRAWN},
    {"aACompromise", CRL_REASON_AA_COMPROMISE},
};

int
pki_crl_reason_code(const char *name, const char **canonical)
{
	for (size_t i = 0;
	     i < sizeof(pki_crl_reasons) / sizeof(pki_crl_reasons[0]); i++)
		if (strcasecmp(name, pki_crl_reasons[i].name) == 0) {
			if (canonical != NULL)
				*canonical = pki_crl_reasons[i].name;
			return pki_crl_reasons[i].code;
		}
	return -1;
}

const char *
pki_crl_reason_name(long code)
{
	for (size_t i = 0;
	     i < sizeof(pki_crl_reasons) / sizeof(pki_crl_reasons[0]); i++)
		if (pki_crl_reasons[i].code == code)
			return pki_crl_reasons[i].name;
	return NULL;
}

static int
pki_is_pem(BIO *mem)
{
	char *data;
	long len = BIO_get_mem_data(mem, &data);

	return len > 0 && memmem(data, len, "-----BEGIN", 10) != NULL;
}

X509 *
pki_load_cert(const char *path, char *err, size_t errlen)
{
	BIO *mem = NULL;
	X509 *cert = NULL;

	if ((mem = pki_read_file(path, err, errlen)) == NULL)
		goto out;
	if (pki_is_pem(mem))
		cert = PEM_read_bio_X509(mem, NULL, NULL, NULL);
	else
		cert = d2i_X509_bio(mem, NULL);
	if (cert == NULL)
		snprintf(err, errlen, "%s: cannot read certificate: %s", path,
		    pki_reason());
out:
	BIO_free(mem);
	return cert;
}

STACK_OF(X509) * pki_load_certs(const char *path, char *err, size_t errlen)
{
	STACK_OF(X509) *certs = NULL, *rc = NULL;
	BIO *mem = NULL;
	X509 *cert = NULL;

	if ((mem = pki_read_file(path, err, errlen)) == NULL)
		goto out;
	if ((certs = sk_X509_new_null()) == NULL) {
		snprintf(err, errlen, "%s: %s", path, pki_reason());
		goto out;
	}
	if (!pki_is_pem(mem)) {
		if ((cert = d2i_X509_bio(mem, NULL)) == NULL) {
			snprintf(err, errlen, "%s: cannot read certificate: %s",
			    path, pki_reason());
			goto out;
		}
		if (!sk_X509_push(certs, cert)) {
			snprintf(err, errlen, "%s: %s", path, pki_reason());
			goto out;
		}
		cert = NULL;
	} else {
		/* Until the last certificate; other PEM blocks are skipped. */
		while (
		    (cert = PEM_read_bio_X509(mem, NULL, NULL, NULL)) != NULL) {
			if (!sk_X509_push(certs, cert)) {
				snprintf(
				    err, errlen, "%s: %s", path, pki_reason());
				goto out;
			}
			cert = NULL;
		}
		if (ERR_GET_REASON(ERR_peek_last_error()) !=
		    PEM_R_NO_START_LINE) {
			snprintf(err, errlen,
			    "%s: cannot read certificate %d: %s", path,
			    sk_X509_num(certs) + 1, pki_reason());
			goto out;
		}
		ERR_clear_error();
		if (sk_X509_num(certs) == 0) {
			snprintf(err, errlen, "%s: no certificate in the file",
			    path);
			goto out;
		}
	}
	rc = certs;
	certs = NULL;
out:
	X509_free(cert);
	sk_X509_pop_free(certs, X509_free);
	BIO_free(mem);
	return rc;
}

STACK_OF(X509) *
    pki_load_previous_cas(const char *path, const char *setting, X509 *current,
        char *err, size_t errlen)
{
	STACK_OF(X509) * cas;

	if (path == NULL || path[0] == '\0') {
		if ((cas = sk_X509_new_null()) == NULL)
			snprintf(err, errlen, "%s: %s", setting, pki_reason());
		return cas;
	}
	if ((cas = pki_load_certs(path, err, errlen)) == NULL)
		return NULL;
	for (int i = 0; i < sk_X509_num(cas); i++) {
		X509 *c = sk_X509_value(cas, i);
		const char *why = NULL;

		if ((X509_get_extension_flags(c) & EXFLAG_CA) == 0)
			why = "is not a CA certificate (basicConstraints "
			      "CA:TRUE)";
		else if ((X509_get_extension_flags(c) & EXFLAG_KUSAGE) != 0 &&
		    (X509_get_key_usage(c) & KU_KEY_CERT_SIGN) == 0)
			why = "may not sign certificates (its keyUsage lacks "
			      "keyCertSign)";
		else if (X509_cmp(c, current) == 0)
			why = "is the CA in use, not one it replaced";
		if (why != NULL) {
			snprintf(err, errlen, "%s: %s: certificate %d %s",
			    setting, path, i + 1, why);
			sk_X509_pop_free(cas, X509_free);
			return NULL;
		}
	}
	ERR_clear_error();
	return cas;
}

int
pki_issued_by(X509 *cert, X509 *ca)
{
	EVP_PKEY *key = X509_get0_pubkey(ca);
	int issued = X509_check_issued(ca, cert) == X509_V_OK && key != NULL &&
	    X509_verify(cert, key) == 1;

	ERR_clear_error();
	return issued;
}

X509 *
pki_issuer_among(X509 *cert, STACK_OF(X509) * cas)
{
	for (int i = 0; i < sk_X509_num(cas); i++)
		if (pki_issued_by(cert, sk_X509_value(cas, i)))
			return sk_X509_value(cas, i);
	return NULL;
}

/*
 * The top of the chain `from` builds among `chain`'s certificates: its
 * issuer, that one's, ... up to one none of them issued; *links counts
 * the certificates. NULL when some certificate on the way has two issuers
 * among them (a cross-certificate: which a device takes is its choice).
 */
static X509 *
chain_top(X509 *from, STACK_OF(X509) * chain, int *links)
{
	int n = sk_X509_num(chain);
	X509 *at = from;

	/* At most n links: cross-certificates may make a loop. */
	for (*links = 1; *links <= n && !pki_issued_by(at, at); (*links)++) {
		X509 *up = NULL;

		for (int i = 0; i < n; i++) {
			X509 *c = sk_X509_value(chain, i);

			if (c == at || !pki_issued_by(at, c))
				continue;
			if (up != NULL && X509_cmp(up, c) != 0)
				return NULL;
			up = c;
		}
		if (up == NULL)
			break;
		at = up;
	}
	return at;
}

X509 *
pki_chain_root(STACK_OF(X509) * chain, const char **why)
{
	X509 *root, *top;
	int links;

	/* As Apple's client judges GetCACert's answer: the chain from each
	 * certificate, and every one of more than a certificate ends at the
	 * same top, which must be a root. The issuing CA's (the first) is
	 * one such even alone: the RA certificates it issued lead to it. */
	if (sk_X509_num(chain) == 0) {
		*why = "holds no certificate";
		return NULL;
	}
	if ((root = chain_top(sk_X509_value(chain, 0), chain, &links)) == NULL)
		goto two_tops;
	for (int i = 1; i < sk_X509_num(chain); i++)
		if ((top = chain_top(sk_X509_value(chain, i), chain, &links)) ==
		        NULL ||
		    (links > 1 && X509_cmp(root, top) != 0))
			goto two_tops;
	if (!pki_issued_by(root, root)) {
		*why = "holds no root (self-signed) certificate of the issuing "
		       "CA";
		return NULL;
	}
	return root;
two_tops:
	*why = "leads to more than one top (a cross-certificate, a root "
	       "twice, or another CA's chain)";
	return NULL;
}

struct pki_pass {
	const char *pass; /* NULL: no passphrase file was given */
	int asked; /* the key turned out to be encrypted */
};

/* Never prompts: a daemon has no terminal. */
static int
pki_pass_cb(char *buf, int size, int rwflag, void *u)
{
	struct pki_pass *p = u;
	size_t len;

	(void)rwflag;
	p->asked = 1;
	if (p->pass == NULL)
		return -1;
	len = strlen(p->pass);
	if (len > (size_t)size)
		return -1;
	memcpy(buf, p->pass, len);
	return (int)len;
}

/*
 * First line of `path`, without its line ending, into `out` (which the
 * caller wipes). read(2) straight into `out`: no stdio buffer keeps a
 * copy. An empty file is the empty passphrase.
 */
static int
pki_read_passphrase(
    const char *path, char *out, size_t outlen, char *err, size_t errlen)
{
	size_t len = 0;
	ssize_t n;
	char more;
	int fd, rc = -1;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	while (len < outlen - 1 && memchr(out, '\n', len) == NULL &&
	    (n = read(fd, out + len, outlen - 1 - len)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			goto out;
		}
		len += (size_t)n;
	}
	if (memchr(out, '\n', len) == NULL && len == outlen - 1 &&
	    read(fd, &more, 1) == 1) {
		snprintf(err, errlen, "%s: passphrase longer than %zu bytes",
		    path, outlen - 2);
		goto out;
	}
	out[len] = '\0';
	out[strcspn(out, "\r\n")] = '\0';
	rc = 0;
out:
	OPENSSL_cleanse(&more, sizeof(more));
	close(fd);
	return rc;
}

EVP_PKEY *
pki_load_key(
    const char *path, const char *passphrase_file, char *err, size_t errlen)
{
	char pass[PKI_MAX_PASSPHRASE + 2];
	struct pki_pass p = {NULL, 0};
	EVP_PKEY *key = NULL;
	BIO *mem = NULL;

	if (passphrase_file != NULL && passphrase_file[0] != '\0') {
		if (pki_read_passphrase(
		        passphrase_file, pass, sizeof(pass), err, errlen) == -1)
			goto out;
		p.pass = pass;
	}
	if ((mem = pki_read_file(path, err, errlen)) == NULL)
		goto out;
	if (pki_is_pem(mem))
		key = PEM_read_bio_PrivateKey(mem, NULL, pki_pass_cb, &p);
	else
		key = d2i_PrivateKey_bio(mem, NULL);
	if (key != NULL)
		goto out;
	if (p.asked && p.pass == NULL)
		snprintf(err, errlen,
		    "%s: the key is encrypted and no passphrase file is set",
		    path);
	else if (p.asked)
		snprintf(err, errlen,
		    "%s: cannot read private key (wrong passphrase in %s?): %s",
		    path, passphrase_file, pki_reason());
	else
		snprintf(err, errlen, "%s: cannot read private key: %s", path,
		    pki_reason());
out:
	ERR_clear_error();
	OPENSSL_cleanse(pass, sizeof(pass));
	BIO_free(mem);
	return key;
}

int
pki_check_private_file(const char *path, char *err, size_t errlen)
{
	struct stat st;

	if (stat(path, &st) != 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if ((st.st_mode & 077) != 0) {
		snprintf(err, errlen,
		    "%s: mode %04o gives group or others access; it must be "
		    "for its owner only (chmod 600 %s)",
		    path, (unsigned)(st.st_mode & 07777), path);
		return -1;
	}
	return 0;
}

int
pki_check_pair(X509 *cert, EVP_PKEY *key, const char *cert_path,
    const char *key_path, char *err, size_t errlen)
{
	if (X509_check_private_key(cert, key) != 1) {
		ERR_clear_error();
		snprintf(err, errlen, "%s does not match the key in %s",
		    cert_path, key_path);
		return -1;
	}
	return 0;
}

/* What `key` signs, `cert`'s key verifies. */
static int
pki_key_signs(X509 *cert, EVP_PKEY *key)
{
	static const unsigned char data[] = "scepd: does the key sign?";
	unsigned char sig[2048];
	size_t siglen = sizeof(sig);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok = ctx != NULL &&
	    EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) == 1 &&
	    EVP_DigestSign(ctx, sig, &siglen, data, sizeof(data)) == 1;

	EVP_MD_CTX_free(ctx);
	if (!ok || (ctx = EVP_MD_CTX_new()) == NULL)
		return 0;
	ok = EVP_DigestVerifyInit(
	         ctx, NULL, EVP_sha256(), NULL, X509_get0_pubkey(cert)) == 1 &&
	    EVP_DigestVerify(ctx, sig, siglen, data, sizeof(data)) == 1;
	EVP_MD_CTX_free(ctx);
	return ok;
}

int
pki_ip_text(const ASN1_OCTET_STRING *ip, char *out, size_t outlen)
{
	int n = ASN1_STRING_length(ip);
	int af = n == 4 ? AF_INET : n == 16 ? AF_INET6 : -1;

	if (af < 0 || outlen > (size_t)INT32_MAX ||
	    inet_ntop(af, ASN1_STRING_get0_data(ip), out, (socklen_t)outlen) ==
	        NULL)
		return -1;
	return 0;
}

int
pki_time(const ASN1_TIME *t, time_t *out)
{
	struct tm tm;
	time_t when;

	if (ASN1_TIME_to_tm(t, &tm) != 1 || (when = timegm(&tm)) == (time_t)-1)
		return -1;
	*out = when;
	return 0;
}

/* What is encrypted to `cert`'s key (as a SCEP envelope's key is:
 * PKCS#1 v1.5), `key` opens. */
static int
pki_key_decrypts(X509 *cert, EVP_PKEY *key)
{
	unsigned char secret[32], wrapped[1024], opened[1024];
	size_t wrapped_len = sizeof(wrapped), opened_len = sizeof(opened);
	EVP_PKEY_CTX *ctx;
	int ok;

	if (RAND_bytes(secret, sizeof(secret)) != 1 ||
	    (ctx = EVP_PKEY_CTX_new(X509_get0_pubkey(cert), NULL)) == NULL)
		return 0;
	ok = EVP_PKEY_encrypt_init(ctx) == 1 &&
	    EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) == 1 &&
	    EVP_PKEY_encrypt(
	        ctx, wrapped, &wrapped_len, secret, sizeof(secret)) == 1;
	EVP_PKEY_CTX_free(ctx);
	if (!ok || (ctx = EVP_PKEY_CTX_new(key, NULL)) == NULL)
		return 0;
	ok = EVP_PKEY_decrypt_init(ctx) == 1 &&
	    EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) == 1 &&
	    EVP_PKEY_decrypt(ctx, opened, &opened_len, wrapped, wrapped_len) ==
	        1 &&
	    opened_len == sizeof(secret) &&
	    CRYPTO_memcmp(opened, secret, sizeof(secret)) == 0;
	EVP_PKEY_CTX_free(ctx);
	OPENSSL_cleanse(secret, sizeof(secret));
	OPENSSL_cleanse(opened, sizeof(opened));
	return ok;
}

int
pki_check_key_works(X509 *cert, EVP_PKEY *key, int decrypts, const char *where,
    char *err, size_t errlen)
{
	int ok =
	    decrypts ? pki_key_decrypts(cert, key) : pki_key_signs(cert, key);

	ERR_clear_error();
	if (ok)
		return 0;
	snprintf(err, errlen,
	    "%s: the key does not %s with the certificate's public key: "
	    "another key of the token answers to its name, or the token "
	    "refuses the operation",
	    where,
	    decrypts ? "open what is encrypted to the certificate"
	             : "sign what verifies");
	return -1;
}

static const struct {
	unsigned int bit;
	const char *name;
} pki_ku_names[] = {
    {X509v3_KU_DIGITAL_SIGNATURE, "digitalSignature"},
    {X509v3_KU_NON_REPUDIATION, "nonRepudiation"},
    {X509v3_KU_KEY_ENCIPHERMENT, "keyEncipherment"},
    {X509v3_KU_DATA_ENCIPHERMENT, "dataEncipherment"},
    {X509v3_KU_KEY_AGREEMENT, "keyAgreement"},
    {X509v3_KU_KEY_CERT_SIGN, "keyCertSign"},
    {X509v3_KU_CRL_SIGN, "cRLSign"},
    {X509v3_KU_ENCIPHER_ONLY, "encipherOnly"},
    {X509v3_KU_DECIPHER_ONLY, "decipherOnly"},
};

int
pki_check_key_usage(X509 *cert, unsigned int ku_bits, const char *cert_path,
    const char *purpose, char *err, size_t errlen)
{
	/* UINT32_MAX when there is no keyUsage extension. */
	uint32_t ku = X509_get_key_usage(cert);
	unsigned int missing = ku_bits & ~ku;
	const char *sep = "";
	size_t n = 0;

	if (missing == 0)
		return 0;
	n = snprintf(err, errlen, "%s lacks keyUsage ", cert_path);
	for (size_t i = 0; i < sizeof(pki_ku_names) / sizeof(pki_ku_names[0]);
	     i++) {
		if ((missing & pki_ku_names[i].bit) == 0)
			continue;
		if (n < errlen)
			n += snprintf(err + n, errlen - n, "%s%s", sep,
			    pki_ku_names[i].name);
		sep = "+";
	}
	if (n < errlen)
		snprintf(err + n, errlen - n, " needed for %s", purpose);
	return -1;
}

int
pki_thumbprint(X509 *cert, const EVP_MD *md, char *out, size_t outlen)
{
	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned int len = 0;

	if (X509_digest(cert, md, digest, &len) != 1) {
		ERR_clear_error();
		return -1;
	}
	if (outlen < 2 * (size_t)len + 1)
		return -1;
	for (unsigned int i = 0; i < len; i++)
		snprintf(out + 2 * i, 3, "%02X", digest[i]);
	out[2 * len] = '\0';
	return 0;
}

/* Truncates or creates `path` with `mode`, and enforces it if it existed. */
static FILE *
pki_create(const char *path, mode_t mode)
{
	FILE *f = NULL;
	int fd;

	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)) ==
	    -1)
		return NULL;
	if (fchmod(fd, mode) == -1 || (f = fdopen(fd, "w")) == NULL) {
		close(fd);
		return NULL;
	}
	return f;
}

static int
pki_close(FILE *f, int ok)
{
	if (fflush(f) != 0 || fsync(fileno(f)) != 0)
		ok = 0;
	if (fclose(f) != 0)
		ok = 0;
	ERR_clear_error();
	return ok ? 0 : -1;
}

int
pki_write_cert(const char *path, X509 *cert)
{
	FILE *f;

	if ((f = pki_create(path, 0644)) == NULL)
		return -1;
	return pki_close(f, PEM_write_X509(f, cert) == 1);
}

int
pki_write_key(const char *path, EVP_PKEY *key)
{
	FILE *f;

	if ((f = pki_create(path, 0600)) == NULL)
		return -1;
	return pki_close(
	    f, PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) == 1);
}
