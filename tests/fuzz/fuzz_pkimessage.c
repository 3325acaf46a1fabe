/*
 * libFuzzer target: scep_request_parse, the first code to see a device's
 * pkiMessage. Seeded with real requests (Apple, cryptlib) and CertReps.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "scep.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct scep_request *req = NULL;
	struct scep_certrep *rep = NULL;
	const char *why = NULL;
	int failinfo;
	int rc;

	if (scep_init() != SCEP_OK)
		abort();
	rc = scep_request_parse(
	    data, size, &scep_default_policy, &req, &failinfo, &why);
	/* The contract: a request is returned on success, or with a failInfo
	 * to answer with; never without a reason on failure. */
	if (rc == SCEP_OK && (req == NULL || req->transaction_id == NULL))
		abort();
	if (rc != SCEP_OK &&
	    (why == NULL || (failinfo == SCEP_FAILINFO_NONE) != (req == NULL)))
		abort();
	scep_request_free(req);
	/* The same bytes as a CertRep, as the test clients read them. */
	if (scep_certrep_parse(data, size, NULL, NULL, NULL, &rep) == SCEP_OK &&
	    rep == NULL)
		abort();
	scep_certrep_free(rep);
	return 0;
}
