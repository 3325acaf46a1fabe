/*
 * ca_sign: sends one SignRequest to scepd-ca, as the RA would, so tests can
 * put the CA's issuance policy (templates, key types, SANs) to work on
 * CSRs made with `openssl req`, without a SCEP envelope around them.
 *
 *   ca_sign --endpoint ipc://DIR/run/ca.sock --csr FILE.pem --txid ID
 *           [--out CERT.pem] [--origin NAME] [--timeout MS]
 *           [--key SECRET.key --server-key CA.pub]
 * exit: 0 issued, 2 refused (failInfo and reason printed), 1 error, 3 no
 * answer before the timeout (default 10000 ms), 4 pending approval.
 *
 * --key and --server-key speak CurveZMQ with that key pair (its public key
 * derived from the secret one) to a CA whose public key is CA.pub: the
 * multi-host test plays a stranger on the frontend's host with them.
 * --origin is the caller the request declares (default "ra").
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/pem.h>
#include <openssl/x509.h>
#include "rpc.h"
#include "scep_client.h"

static const char *const fail_names[] = {
    "badAlg", "badMessageCheck", "badRequest", "badTime", "badCertId"};

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"endpoint", required_argument, NULL, 'e'},
	    {"csr", required_argument, NULL, 'c'},
	    {"txid", required_argument, NULL, 't'},
	    {"out", required_argument, NULL, 'o'},
	    {"origin", required_argument, NULL, 'O'},
	    {"timeout", required_argument, NULL, 'T'},
	    {"key", required_argument, NULL, 'k'},
	    {"server-key", required_argument, NULL, 's'},
	    {NULL, 0, NULL, 0},
	};
	const char *endpoint = NULL, *csr_file = NULL, *txid = NULL,
	           *out_file = NULL;
	const char *origin = "ra", *key_file = "", *server_key = "";
	struct scep_rpc ca = {0};
	int timeout = 10000, e;
	Scep__V1__Request req = SCEP__V1__REQUEST__INIT;
	Scep__V1__SignRequest sign = SCEP__V1__SIGN_REQUEST__INIT;
	Scep__V1__Reply *reply = NULL;
	unsigned char *der = NULL;
	X509_REQ *csr = NULL;
	FILE *f;
	int ch, len, rc = 1;

	while ((ch = getopt_long(argc, argv, "e:c:t:o:O:T:k:s:", opts, NULL)) !=
	    -1) {
		switch (ch) {
		case 'e':
			endpoint = optarg;
			break;
		case 'c':
			csr_file = optarg;
			break;
		case 't':
			txid = optarg;
			break;
		case 'o':
			out_file = optarg;
			break;
		case 'O':
			origin = optarg;
			break;
		case 'T':
			timeout = atoi(optarg);
			break;
		case 'k':
			key_file = optarg;
			break;
		case 's':
			server_key = optarg;
			break;
		default:
			return 1;
		}
	}
	if (endpoint == NULL || csr_file == NULL || txid == NULL) {
		fprintf(stderr,
		    "usage: ca_sign --endpoint E --csr FILE --txid ID "
		    "[--out CERT.pem] [--origin NAME]\n"
		    "               [--timeout MS] [--key SECRET.key "
		    "--server-key CA.pub]\n");
		return 1;
	}
	if ((f = fopen(csr_file, "r")) == NULL ||
	    (csr = PEM_read_X509_REQ(f, NULL, NULL, NULL)) == NULL) {
		fprintf(stderr, "%s: not a PEM CSR\n", csr_file);
		if (f != NULL)
			fclose(f);
		return 1;
	}
	fclose(f);
	if ((len = i2d_X509_REQ(csr, &der)) <= 0)
		goto out;
	sign.csr.data = der;
	sign.csr.len = (size_t)len;
	sign.transaction_id = (char *)txid;
	sign.client_addr = "192.0.2.7";
	req.body_case = SCEP__V1__REQUEST__BODY_SIGN;
	req.sign = &sign;
	if (scep_rpc_open(
	        &ca, endpoint, origin, key_file, server_key, "ca_sign") != 0)
		goto out;
	if ((e = rpc_call(ca.client, &req, timeout, &reply)) != RPC_OK) {
		fprintf(stderr, "the CA at %s did not answer: %s\n", endpoint,
		    rpc_strerror(e));
		rc = e == RPC_ETIMEDOUT ? 3 : 1;
		goto out;
	}
	if (reply->status == SCEP__V1__STATUS__STATUS_REFUSED) {
		int fi = reply->sign != NULL && reply->sign->has_fail_info
		    ? (int)reply->sign->fail_info
		    : 2;

		printf("REFUSED failInfo: %s\nreason: %s\n",
		    fi >= 0 && fi < 5 ? fail_names[fi] : "?",
		    reply->error ? reply->error : "");
		/* Whether the RA may release the password it checked. */
		if (reply->sign != NULL && reply->sign->has_nothing_bound)
			printf("nothing bound: %s\n",
			    reply->sign->nothing_bound ? "yes" : "no");
		rc = 2;
		goto out;
	}
	if (reply->status == SCEP__V1__STATUS__STATUS_OK &&
	    reply->sign != NULL && reply->sign->pending) {
		printf("PENDING\n");
		rc = 4;
		goto out;
	}
	if (reply->status != SCEP__V1__STATUS__STATUS_OK ||
	    reply->sign == NULL || !reply->sign->has_cert) {
		fprintf(stderr, "CA error: %s\n",
		    reply->error ? reply->error : "no certificate");
		goto out;
	}
	printf("ISSUED\n");
	if (out_file != NULL) {
		const unsigned char *p = reply->sign->cert.data;
		X509 *cert = d2i_X509(NULL, &p, (long)reply->sign->cert.len);

		if (cert == NULL || (f = fopen(out_file, "w")) == NULL) {
			X509_free(cert);
			goto out;
		}
		PEM_write_X509(f, cert);
		fclose(f);
		X509_free(cert);
	}
	rc = 0;
out:
	if (reply != NULL)
		scep__v1__reply__free_unpacked(reply, NULL);
	scep_rpc_close(&ca);
	OPENSSL_free(der);
	X509_REQ_free(csr);
	return rc;
}
