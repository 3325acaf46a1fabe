/*
 * ca_import: sends one RevokeImportRequest to scepd-ca as scepctl
 * import-crl would, with entries and fields a test chooses, so the CA's
 * own checks are tried where scepctl would refuse first.
 *
 *   ca_import --endpoint ipc://DIR/run/ca.sock --ca-cert CA.pem
 *             [--from-number N] [--by TEXT] [SERIAL:EPOCH[:REASON]...]
 * --ca-cert: the certificate whose SHA-256 the request names (-: none).
 * exit: 0 done ("added A unchanged U made_final F crl_number N" on
 * stdout), 2 refused (the reason on stdout), 1 error.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include "rpc.h"
#include "scep_client.h"

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"endpoint", required_argument, NULL, 'e'},
	    {"ca-cert", required_argument, NULL, 'c'},
	    {"from-number", required_argument, NULL, 'n'},
	    {"by", required_argument, NULL, 'b'},
	    {NULL, 0, NULL, 0},
	};
	const char *endpoint = NULL, *ca_file = NULL;
	struct scep_rpc conn = {0};
	Scep__V1__Request req = SCEP__V1__REQUEST__INIT;
	Scep__V1__RevokeImportRequest body =
	    SCEP__V1__REVOKE_IMPORT_REQUEST__INIT;
	Scep__V1__ImportedRevocation *items = NULL, **ptrs = NULL;
	Scep__V1__Reply *reply = NULL;
	unsigned char sha256[32];
	X509 *ca = NULL;
	FILE *f;
	int ch, e, n, rc = 1;

	body.revoked_by = "ca_import";
	while ((ch = getopt_long(argc, argv, "e:c:n:b:", opts, NULL)) != -1) {
		switch (ch) {
		case 'e':
			endpoint = optarg;
			break;
		case 'c':
			ca_file = optarg;
			break;
		case 'n':
			body.has_from_crl_number = 1;
			body.from_crl_number = strtoll(optarg, NULL, 10);
			break;
		case 'b':
			body.revoked_by = optarg;
			break;
		default:
			return 1;
		}
	}
	if (endpoint == NULL || ca_file == NULL) {
		fprintf(stderr,
		    "usage: ca_import --endpoint E --ca-cert CA.pem|- "
		    "[--from-number N] [--by TEXT] "
		    "[SERIAL:EPOCH[:REASON]...]\n");
		return 1;
	}
	if (strcmp(ca_file, "-") != 0) {
		if ((f = fopen(ca_file, "r")) == NULL ||
		    (ca = PEM_read_X509(f, NULL, NULL, NULL)) == NULL ||
		    X509_digest(ca, EVP_sha256(), sha256, NULL) != 1) {
			fprintf(stderr, "%s: not a PEM certificate\n", ca_file);
			if (f != NULL)
				fclose(f);
			return 1;
		}
		fclose(f);
		body.has_ca_certificate_sha256 = 1;
		body.ca_certificate_sha256.data = sha256;
		body.ca_certificate_sha256.len = sizeof(sha256);
	}
	n = argc - optind; /* none: only --from-number */
	items = calloc((size_t)n + 1, sizeof(*items));
	ptrs = calloc((size_t)n + 1, sizeof(*ptrs));
	if (items == NULL || ptrs == NULL)
		goto out;
	for (int i = 0; i < n; i++) {
		char *serial = argv[optind + i], *at = strchr(serial, ':'),
		     *why;

		if (at == NULL) {
			fprintf(
			    stderr, "%s: not SERIAL:EPOCH[:REASON]\n", serial);
			goto out;
		}
		*at++ = '\0';
		scep__v1__imported_revocation__init(&items[i]);
		items[i].serial = serial;
		items[i].revoked_at = strtoll(at, &why, 10);
		if (*why == ':')
			items[i].reason = why + 1;
		ptrs[i] = &items[i];
	}
	body.n_entries = (size_t)n;
	body.entries = ptrs;
	req.body_case = SCEP__V1__REQUEST__BODY_REVOKE_IMPORT;
	req.revoke_import = &body;
	if (scep_rpc_open(&conn, endpoint, "scepctl", "", "", "ca_import") != 0)
		goto out;
	if ((e = rpc_call_once(conn.client, &req, 10000, &reply)) != RPC_OK) {
		fprintf(stderr, "the CA at %s did not answer: %s\n", endpoint,
		    rpc_strerror(e));
		goto out;
	}
	if (reply->status == SCEP__V1__STATUS__STATUS_REFUSED) {
		printf("REFUSED %s\n", reply->error ? reply->error : "");
		rc = 2;
		goto out;
	}
	if (reply->status != SCEP__V1__STATUS__STATUS_OK ||
	    reply->body_case != SCEP__V1__REPLY__BODY_REVOKE_IMPORT) {
		fprintf(stderr, "CA error: %s\n",
		    reply->error ? reply->error : "no answer's body");
		goto out;
	}
	printf("added %u unchanged %u made_final %u crl_number %lld\n",
	    reply->revoke_import->added, reply->revoke_import->unchanged,
	    reply->revoke_import->made_final,
	    (long long)reply->revoke_import->crl_number);
	rc = 0;
out:
	if (reply != NULL)
		scep__v1__reply__free_unpacked(reply, NULL);
	scep_rpc_close(&conn);
	free(items);
	free(ptrs);
	X509_free(ca);
	return rc;
}
