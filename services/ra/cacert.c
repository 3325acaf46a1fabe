#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "log.h"
#include "ra.h"

/*
 * GetCACaps (RFC 8894 §3.5.2): exactly what is enabled. GetNextCACert:
 * only with a next CA certificate configured (rollover). Renewal: a
 * RenewalReq, or a PKCSReq signed by a certificate of this CA. SCEPStandard
 * promises AES, POSTPKIOperation and SHA-256; SHA-1 and DES3 are listed
 * only while their switches allow them. SHA-384 is listed (the codec takes
 * it) also because strongSwan 5.9's pki tests the bit of that line when it
 * checks for AES and SHA-256 support, and refuses to enroll without it.
 */
static char *
ra_caps_text(const struct ra *ra)
{
	char buf[256];

	snprintf(buf, sizeof(buf),
	    "AES\n%sPOSTPKIOperation\nRenewal\n%sSHA-256\nSHA-384\nSHA-512\n%s"
	    "SCEPStandard\n",
	    ra->next_ca_body != NULL ? "GetNextCACert\n" : "",
	    ra->policy.allow_sha1 ? "SHA-1\n" : "",
	    ra->policy.allow_des3 ? "DES3\n" : "");
	return strdup(buf);
}

/* NextCACertificate: the next CA certificate (and any next RA
 * certificates), PEM, signed as RFC 8894 4.7.1 says by the current RA. */
static int
ra_next_ca_prepare(struct ra *ra)
{
	STACK_OF(X509) *next = NULL;
	FILE *f;
	X509 *x;
	int rc = -1;

	if (ra->settings.next_ca_certificate == NULL ||
	    ra->settings.next_ca_certificate[0] == '\0')
		return 0;
	if ((f = fopen(ra->settings.next_ca_certificate, "r")) == NULL) {
		fprintf(stderr, "scepd-ra: [ra] NextCACertificate: %s: %s\n",
		    ra->settings.next_ca_certificate, strerror(errno));
		return -1;
	}
	next = sk_X509_new_null();
	while (next != NULL && (x = PEM_read_X509(f, NULL, NULL, NULL)) != NULL)
		if (!sk_X509_push(next, x)) {
			X509_free(x);
			break;
		}
	fclose(f);
	/* The end of the file, or a certificate block that cannot be read:
	 * devices would be handed what came before it. */
	if (ERR_GET_REASON(ERR_peek_last_error()) != PEM_R_NO_START_LINE) {
		fprintf(stderr,
		    "scepd-ra: [ra] NextCACertificate: %s: certificate %d "
		    "cannot be read\n",
		    ra->settings.next_ca_certificate,
		    next != NULL ? sk_X509_num(next) + 1 : 1);
		goto out;
	}
	ERR_clear_error();
	if (next == NULL || sk_X509_num(next) == 0) {
		fprintf(stderr,
		    "scepd-ra: [ra] NextCACertificate: %s holds no PEM "
		    "certificate\n",
		    ra->settings.next_ca_certificate);
		goto out;
	}
	/* The first is the CA to roll over to (RFC 8894 4.7.1): a CA, and
	 * not the one in use. */
	x = sk_X509_value(next, 0);
	if (X509_check_ca(x) == 0 ||
	    X509_cmp(x, sk_X509_value(ra->ca_chain, 0)) == 0) {
		fprintf(stderr,
		    "scepd-ra: [ra] NextCACertificate: the first certificate "
		    "of %s is %s: it must be the next CA's\n",
		    ra->settings.next_ca_certificate,
		    X509_check_ca(x) == 0 ? "not a CA certificate"
		                          : "the CA certificate in use");
		goto out;
	}
	if (scep_next_ca_build(next, ra->sign_cert, ra->sign_key, NULL,
	        &ra->next_ca_body, &ra->next_ca_len) != SCEP_OK) {
		fprintf(stderr,
		    "scepd-ra: [ra] NextCACertificate: cannot sign the "
		    "answer\n");
		goto out;
	}
	log_info("GetNextCACert: %d certificate(s) from %s", sk_X509_num(next),
	    ra->settings.next_ca_certificate);
	rc = 0;
out:
	sk_X509_pop_free(next, X509_free);
	return rc;
}

int
ra_cacert_prepare(struct ra *ra)
{
	STACK_OF(X509) *certs = NULL;
	X509 *ca = sk_X509_value(ra->ca_chain, 0);
	unsigned char *p;
	int len, rc = -1;

	if (ra_next_ca_prepare(ra) != 0)
		return -1;
	if ((ra->caps = ra_caps_text(ra)) == NULL)
		goto out;
	len = i2d_X509(ca, NULL);
	if (len <= 0 || (ra->ca_der = malloc(len)) == NULL)
		goto out;
	p = ra->ca_der;
	ra->ca_der_len = i2d_X509(ca, &p);

	/* The CA certificate alone serving as RA: RFC 8894 §4.2.1.1. */
	if (X509_cmp(ra->sign_cert, ca) == 0 &&
	    X509_cmp(ra->enc[0].cert, ca) == 0 &&
	    sk_X509_num(ra->ca_chain) == 1) {
		ra->cacert_type = "application/x-x509-ca-cert";
		ra->cacert_body = malloc(ra->ca_der_len);
		if (ra->cacert_body == NULL)
			goto out;
		memcpy(ra->cacert_body, ra->ca_der, ra->ca_der_len);
		ra->cacert_len = ra->ca_der_len;
		rc = 0;
		goto out;
	}
	/* RA signing, RA encryption, then the CA chain; no duplicates. */
	/* A push that fails (memory, at start) fails the answer: it would
	 * lack a certificate in silence. */
	if ((certs = sk_X509_new_null()) == NULL ||
	    sk_X509_push(certs, ra->sign_cert) <= 0 ||
	    (X509_cmp(ra->enc[0].cert, ra->sign_cert) != 0 &&
	        sk_X509_push(certs, ra->enc[0].cert) <= 0))
		goto out;
	for (int i = 0; i < sk_X509_num(ra->ca_chain); i++) {
		X509 *c = sk_X509_value(ra->ca_chain, i);

		if (X509_cmp(c, ra->sign_cert) != 0 &&
		    X509_cmp(c, ra->enc[0].cert) != 0 &&
		    sk_X509_push(certs, c) <= 0)
			goto out;
	}
	if (scep_certs_only_build(certs, &ra->cacert_body, &ra->cacert_len) !=
	    SCEP_OK) {
		log_openssl(
		    LOG_LEVEL_ERROR, NULL, "cannot build the GetCACert answer");
		goto out;
	}
	ra->cacert_type = "application/x-x509-ca-ra-cert";
	rc = 0;
out:
	sk_X509_free(certs); /* borrowed certificates */
	return rc;
}

void
ra_handle_get_ca_cert(void *worker, const Scep__V1__Request *req,
    Scep__V1__Reply *reply, struct rpc_arena *arena)
{
	const struct ra *ra = ((struct ra_worker *)worker)->ra;
	Scep__V1__GetCACertReply *body = rpc_alloc(arena, sizeof(*body));
	size_t n = (size_t)sk_X509_num(ra->ca_chain);

	(void)req;
	scep__v1__get_cacert_reply__init(body);
	body->body.data = ra->cacert_body;
	body->body.len = ra->cacert_len;
	body->content_type = (char *)ra->cacert_type;
	body->ca_cert.data = ra->ca_der;
	body->ca_cert.len = ra->ca_der_len;
	body->caps = ra->caps;
	if (ra->next_ca_body != NULL) {
		body->has_next_ca_cert = 1;
		body->next_ca_cert.data = ra->next_ca_body;
		body->next_ca_cert.len = ra->next_ca_len;
	}
	/* The whole chain as configured, issuing CA first: the frontend's
	 * profiles trust its root and carry its intermediates. Encoded here,
	 * in the arena: frontends cache the answer, so it is asked rarely. */
	body->ca_chain = rpc_alloc(arena, n * sizeof(*body->ca_chain));
	for (size_t i = 0; i < n; i++) {
		X509 *c = sk_X509_value(ra->ca_chain, (int)i);
		int len = i2d_X509(c, NULL);
		unsigned char *p;

		if (len <= 0) {
			log_openssl(LOG_LEVEL_ERROR, NULL,
			    "GetCACert: a certificate of [ra] CACertificate "
			    "does not encode");
			reply->status = SCEP__V1__STATUS__STATUS_INTERNAL;
			reply->error = "The CA chain could not be encoded.";
			return;
		}
		p = body->ca_chain[i].data = rpc_alloc(arena, (size_t)len);
		body->ca_chain[i].len = (size_t)i2d_X509(c, &p);
		body->n_ca_chain = i + 1;
	}
	reply->body_case = SCEP__V1__REPLY__BODY_GET_CA_CERT;
	reply->get_ca_cert = body;
}
