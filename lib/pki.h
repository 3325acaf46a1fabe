/*
 * Certificates and keys from files: what the RA, the CA, scepd's first-run
 * set-up and scepctl share. Errors name the file at fault.
 */
#ifndef SCEPD_PKI_H
#define SCEPD_PKI_H

#include <stddef.h>
#include <time.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

/* The whole file (at most `max` bytes) in a memory BIO, its buffer wiped
 * when freed. NULL and `err` filled when it cannot be read. */
BIO *pki_read_file_max(const char *path, long max, char *err, size_t errlen);
/* Reads one PEM (or DER) certificate. NULL and `err` filled on failure. */
X509 *pki_load_cert(const char *path, char *err, size_t errlen);
/* Reads every certificate in a PEM file, in order. */
STACK_OF(X509) * pki_load_certs(const char *path, char *err, size_t errlen);
/*
 * The certificates of CAs that `current` replaced (`setting`, e.g. "[ra]
 * PreviousCACertificate", names the file in errors): each must be a CA's
 * that may sign certificates, and none `current`. An empty `path` gives
 * an empty stack; NULL and `err` filled on failure.
 */
STACK_OF(X509) *
    pki_load_previous_cas(const char *path, const char *setting, X509 *current,
        char *err, size_t errlen);
/* Whether `ca` issued `cert`: its name and key identifier, and its
 * signature checked. */
int pki_issued_by(X509 *cert, X509 *ca);
/* The one of `cas` that issued `cert` (its name and key identifier, and
 * its signature checked; the stack's, not the caller's), or NULL. */
X509 *pki_issuer_among(X509 *cert, STACK_OF(X509) * cas);
/* The self-signed certificate every chain among `chain`'s certificates
 * leads to through their issuers (the root a device builds to from
 * GetCACert, whose SHA-1 Apple's SCEP client compares with a profile's
 * CAFingerprint, refusing chains to two tops); NULL with *why, the words
 * after "the chain", when they stop short of one or lead to two. */
X509 *pki_chain_root(STACK_OF(X509) * chain, const char **why);
/*
 * Reads a PEM private key; `passphrase_file` (NULL or "" for none) holds the
 * passphrase of an encrypted key on its first line.
 */
EVP_PKEY *pki_load_key(
    const char *path, const char *passphrase_file, char *err, size_t errlen);

/*
 * 0 when `path` (a private key, a passphrase file) is for its owner alone:
 * -1 and `err` naming the file and its mode when group or others have any
 * permission on it, or it cannot be found.
 */
int pki_check_private_file(const char *path, char *err, size_t errlen);

/* 0 when `cert` holds the public half of `key`; -1 and `err` otherwise. */
int pki_check_pair(X509 *cert, EVP_PKEY *key, const char *cert_path,
    const char *key_path, char *err, size_t errlen);
/*
 * 0 when `key` does what `cert` promises: a signature it makes verifies
 * with the certificate's key, or (`decrypts`, RSA) it opens what was
 * encrypted to that key; -1 and `err` naming `where` otherwise. For a key
 * in a token, where pki_check_pair compares the certificate with what
 * the token says of the key (an EC key's public point comes from another
 * object than the private key), not with the key itself.
 */
int pki_check_key_works(X509 *cert, EVP_PKEY *key, int decrypts,
    const char *where, char *err, size_t errlen);
/*
 * 0 when `cert` may be used for every bit of `ku_bits` (X509v3_KU_*); a
 * certificate without a keyUsage extension may be used for anything.
 */
int pki_check_key_usage(X509 *cert, unsigned int ku_bits, const char *cert_path,
    const char *purpose, char *err, size_t errlen);

/* A CRL reason (RFC 5280's name, in any case) as its reasonCode, and its
 * spelling into *canonical (may be NULL); -1 when it is none a revocation
 * may have. */
int pki_crl_reason_code(const char *name, const char **canonical);
/* The name of a reasonCode a revocation may have; NULL for others (7,
 * removeFromCRL, out of range). */
const char *pki_crl_reason_name(long code);

/* `t` as seconds since the epoch: 0, or -1 when unreadable (*out then
 * untouched). */
int pki_time(const ASN1_TIME *t, time_t *out);

/* An iPAddress name's text: dotted IPv4, IPv6 as RFC 5952 writes it
 * (inet_ntop: "2001:db8::1", as operators write AllowedSANs and OpenSSL
 * requests). 0, or -1 for another length or too small an `out`
 * (PKI_IP_TEXT_MAX is enough). */
#define PKI_IP_TEXT_MAX 46 /* INET6_ADDRSTRLEN */
int pki_ip_text(const ASN1_OCTET_STRING *ip, char *out, size_t outlen);

/* Hex of the digest of the DER certificate, upper case, no separators. */
int pki_thumbprint(X509 *cert, const EVP_MD *md, char *out, size_t outlen);

/* Writes PEM; key files are created mode 0600. */
int pki_write_cert(const char *path, X509 *cert);
int pki_write_key(const char *path, EVP_PKEY *key);

#endif
