/*
 * Certificates, requests and PKCS#7 parsed from DER (or BER) without
 * OpenSSL 3.0's per-key decoder set-up (x509parse.c): the same objects
 * d2i_X509, d2i_X509_REQ and d2i_PKCS7 give, at a twentieth of the cost.
 */
#ifndef SCEPD_X509PARSE_H
#define SCEPD_X509PARSE_H

#include <openssl/pkcs7.h>
#include <openssl/x509.h>

/* A SignedData with more certificates is refused before any key is read:
 * a key other than RSA costs a decoder set-up (~125 us), and a 1 MiB
 * request could hold 7,000 of them. A SCEP message carries its signer's
 * certificate, perhaps a chain. */
#define X509PARSE_PKCS7_CERTS_MAX 16

/* As d2i_PKCS7; every certificate of a SignedData has its key. NULL for
 * more than X509PARSE_PKCS7_CERTS_MAX certificates too. */
PKCS7 *x509parse_pkcs7(const unsigned char **in, long len);

/* As d2i_X509. */
X509 *x509parse_cert(const unsigned char **in, long len);

/*
 * As d2i_X509_REQ, but an RSA key is not in the request
 * (X509_REQ_get0_pubkey gives NULL; other key types are): *key gets the
 * key (a reference of its own), or NULL if it cannot be read. Check the
 * request's key and self-signature with *key, then x509parse_req_keyed
 * puts the key in.
 */
X509_REQ *x509parse_req(const unsigned char **in, long len, EVP_PKEY **key);

/*
 * `req` (from x509parse_req of the `len` bytes at `der`) with `key` in it,
 * as d2i_X509_REQ would have given it: an RSA key whose encoding is the
 * request's own goes in (X509_REQ_set_pubkey); an RSA key encoded
 * otherwise, the request is parsed again the usual way, so that its SubjectPublicKeyInfo stays the
 * device's byte for byte. Either way i2d may re-encode the request from
 * then on (X509_REQ_set_pubkey marks it changed): whoever checks its
 * signature again must get `der`. Takes req; NULL on failure, also when
 * OpenSSL's own decoders cannot read the key.
 */
X509_REQ *x509parse_req_keyed(
    X509_REQ *req, EVP_PKEY *key, const unsigned char *der, long len);

#endif
