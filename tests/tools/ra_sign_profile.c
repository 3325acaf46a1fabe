/*
 * ra_sign_profile: sends one SignProfile request to scepd-ra as a frontend
 * would, so that a test can play a frontend taken over and ask the RA to
 * sign a profile of its own making.
 *
 *   ra_sign_profile --endpoint ipc://DIR/run/ra.sock --profile FILE
 *                   [--out SIGNED.der] [--timeout MS]
 * exit: 0 signed, 2 refused (the reason printed), 1 error or no answer.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc.h"
#include "scep_client.h"

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"endpoint", required_argument, NULL, 'e'},
	    {"profile", required_argument, NULL, 'p'},
	    {"out", required_argument, NULL, 'o'},
	    {"timeout", required_argument, NULL, 'T'},
	    {NULL, 0, NULL, 0},
	};
	const char *endpoint = NULL, *profile = NULL, *out_file = NULL;
	struct scep_rpc ra = {0};
	Scep__V1__Request req = SCEP__V1__REQUEST__INIT;
	Scep__V1__SignProfileRequest body =
	    SCEP__V1__SIGN_PROFILE_REQUEST__INIT;
	Scep__V1__Reply *reply = NULL;
	uint8_t *content = NULL;
	int ch, e, timeout = 10000, rc = 1;
	long len;
	FILE *f;

	while ((ch = getopt_long(argc, argv, "e:p:o:T:", opts, NULL)) != -1) {
		switch (ch) {
		case 'e':
			endpoint = optarg;
			break;
		case 'p':
			profile = optarg;
			break;
		case 'o':
			out_file = optarg;
			break;
		case 'T':
			timeout = atoi(optarg);
			break;
		default:
			return 1;
		}
	}
	if (endpoint == NULL || profile == NULL) {
		fprintf(stderr,
		    "usage: ra_sign_profile --endpoint E --profile "
		    "FILE [--out SIGNED.der] [--timeout MS]\n");
		return 1;
	}
	if ((f = fopen(profile, "rb")) == NULL || fseek(f, 0, SEEK_END) != 0 ||
	    (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0 ||
	    (content = malloc((size_t)len + 1)) == NULL ||
	    fread(content, 1, (size_t)len, f) != (size_t)len) {
		fprintf(stderr, "%s: cannot read\n", profile);
		if (f != NULL)
			fclose(f);
		goto out;
	}
	fclose(f);
	body.content.data = content;
	body.content.len = (size_t)len;
	req.body_case = SCEP__V1__REQUEST__BODY_SIGN_PROFILE;
	req.sign_profile = &body;
	if (scep_rpc_open(
	        &ra, endpoint, "frontend", "", "", "ra_sign_profile") != 0)
		goto out;
	if ((e = rpc_call(ra.client, &req, timeout, &reply)) != RPC_OK) {
		fprintf(stderr, "the RA at %s did not answer: %s\n", endpoint,
		    rpc_strerror(e));
		goto out;
	}
	if (reply->status == SCEP__V1__STATUS__STATUS_REFUSED) {
		printf("REFUSED: %s\n", reply->error ? reply->error : "");
		rc = 2;
		goto out;
	}
	if (reply->status != SCEP__V1__STATUS__STATUS_OK ||
	    reply->sign_profile == NULL) {
		fprintf(stderr, "RA error: %s\n",
		    reply->error ? reply->error : "no signed profile");
		goto out;
	}
	printf("SIGNED\n");
	if (out_file != NULL) {
		if ((f = fopen(out_file, "wb")) == NULL)
			goto out;
		fwrite(reply->sign_profile->signed_data.data, 1,
		    reply->sign_profile->signed_data.len, f);
		fclose(f);
	}
	rc = 0;
out:
	if (reply != NULL)
		scep__v1__reply__free_unpacked(reply, NULL);
	scep_rpc_close(&ra);
	free(content);
	return rc;
}
