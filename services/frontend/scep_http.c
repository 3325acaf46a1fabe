/*
 * SCEP over HTTP (RFC 8894 §4.1): GetCACaps and GetCACert from the cache,
 * PKIOperation by GET (base64 in the raw query) and POST (DER, or base64 as
 * some clients send it) forwarded to the RA.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "frontend.h"
#include "log.h"
#include "query.h"

enum scep_op {
	SCEP_OP_NONE,
	SCEP_OP_GETCACAPS,
	SCEP_OP_GETCACERT,
	SCEP_OP_GETNEXTCACERT,
	SCEP_OP_PKIOPERATION,
};

static const struct {
	const char *name;
	enum scep_op op;
} scep_ops[] = {
    {"GetCACaps", SCEP_OP_GETCACAPS},
    {"GetCACert", SCEP_OP_GETCACERT},
    {"GetNextCACert", SCEP_OP_GETNEXTCACERT},
    {"PKIOperation", SCEP_OP_PKIOPERATION},
};

/* Clients are not consistent about case; NDES does not mind either.
 * *name is the canonical spelling, for the log. */
static enum scep_op
scep_op_find(const char *value, size_t len, const char **name)
{
	for (size_t i = 0; i < sizeof(scep_ops) / sizeof(scep_ops[0]); i++)
		if (strlen(scep_ops[i].name) == len &&
		    strncasecmp(scep_ops[i].name, value, len) == 0) {
			*name = scep_ops[i].name;
			return scep_ops[i].op;
		}
	return SCEP_OP_NONE;
}

/* Untrusted text made fit for a log line: printable ASCII, bounded; no
 * space, '=', quote or backslash, with which it would write a field of
 * its own ("operation=x client=203.0.113.9"). */
static void
printable(char *out, size_t outlen, const char *in, size_t len)
{
	size_t n = 0;

	for (size_t i = 0; i < len && n + 4 < outlen; i++)
		out[n++] = in[i] > 0x20 && in[i] < 0x7f && in[i] != '=' &&
		        in[i] != '"' && in[i] != '\\'
		    ? in[i]
		    : '?';
	if (n + 4 >= outlen && len > n)
		out[n++] = '.', out[n++] = '.', out[n++] = '.';
	out[n] = '\0';
}

static enum MHD_Result
scep_bad(struct MHD_Connection *c, struct request *r, const char *text)
{
	char body[512];

	log_warn("%s %s from %s: %s", r->method, r->log_path, r->client, text);
	snprintf(body, sizeof(body), "%s\n", text);
	return http_text(c, r, MHD_HTTP_BAD_REQUEST, body);
}

/* The HTTP answer to a failed call of the RA. */
static enum MHD_Result
scep_upstream_error(struct MHD_Connection *c, struct request *r,
    enum upstream_result res, const char *err)
{
	char text[512];

	switch (res) {
	case UPSTREAM_UNAVAILABLE:
		return http_unavailable(
		    c, r, "Service temporarily unavailable; retry later.\n");
	case UPSTREAM_BAD_REQUEST:
	case UPSTREAM_REFUSED:
		log_warn("%s %s from %s: %s refused by the RA: %s", r->method,
		    r->log_path, r->client, r->operation, err);
		snprintf(text, sizeof(text), "%s\n", err);
		return http_text(c, r, MHD_HTTP_BAD_REQUEST, text);
	case UPSTREAM_OK:
	case UPSTREAM_FAILED:
	case UPSTREAM_RATE_LIMITED:
	case UPSTREAM_WOULD_WAIT:
		break;
	}
	return http_text(c, r, MHD_HTTP_INTERNAL_SERVER_ERROR,
	    "Internal server error; the server log says more.\n");
}

/* GetCACaps, GetCACert and GetNextCACert: parts of the RA's one cached
 * GetCACert reply, so that they agree. */
static enum MHD_Result
scep_get_ca_answer(struct frontend *fe, struct MHD_Connection *c,
    struct request *r, unsigned int want)
{
	struct cacert cc;
	char err[256] = "", max_age[32];
	/* A cache between devices and us (a CDN, a caching proxy) keeps
	 * them no longer than we do: after a CA switch or a new
	 * NextCACertificate devices see it as soon as this frontend does
	 * (a cache without Cache-Control applies its own default). */
	const struct http_header cached[] = {
	    {"Cache-Control", max_age}, {NULL, NULL}};
	enum upstream_result res;
	enum MHD_Result ret;

	res = cache_get_cacert(fe, &cc, want, r->offloaded, err, sizeof(err));
	snprintf(max_age, sizeof(max_age), "max-age=%d",
	    res == UPSTREAM_OK ? cache_seconds_left(cc.fetched_at) : 0);
	if (res == UPSTREAM_WOULD_WAIT)
		return http_offload(fe, c, r);
	/* These carry nothing of the device's: a refusal is the RA's of
	 * this frontend (a peer it does not admit, an older RA), for the
	 * operator, not a 400 that tells a device its request was bad. */
	if (res == UPSTREAM_BAD_REQUEST || res == UPSTREAM_REFUSED) {
		log_error("%s %s from %s: %s refused by the RA: %s (a "
		          "frontend the RA does not serve: its RAEndpoint, "
		          "its keys, or an RA of another version)",
		    r->method, r->log_path, r->client, r->operation, err);
		return http_text(c, r, MHD_HTTP_INTERNAL_SERVER_ERROR,
		    "Internal server error; the server log says more.\n");
	}
	if (res != UPSTREAM_OK)
		return scep_upstream_error(c, r, res, err);
	if (want == CACERT_CAPS && cc.caps != NULL)
		ret = http_respond(c, r, MHD_HTTP_OK, "text/plain", cc.caps,
		    strlen(cc.caps), cached);
	else if (want == CACERT_NEXT && cc.next_ca != NULL)
		ret = http_respond(c, r, MHD_HTTP_OK,
		    "application/x-x509-next-ca-cert", cc.next_ca,
		    cc.next_ca_len, cached);
	else if (want == CACERT_NEXT) /* not in GetCACaps either */
		ret = http_text(c, r, MHD_HTTP_NOT_FOUND,
		    "No next CA certificate is configured (NextCACertificate "
		    "in [ra]).\n");
	else if (want == CACERT_CERTS)
		ret = http_respond(c, r, MHD_HTTP_OK, cc.content_type, cc.body,
		    cc.body_len, cached);
	else {
		/* An RA of an older build (a rolling upgrade): its copy is
		 * asked again within CACHE_SECONDS. */
		log_warn("GetCACaps: the RA's GetCACert reply holds no "
		         "capabilities (an RA of an older build?): 503");
		ret = http_unavailable(
		    c, r, "Service temporarily unavailable; retry later.\n");
	}
	cacert_clear(&cc);
	return ret;
}

static enum MHD_Result
scep_pki_operation(struct frontend *fe, struct MHD_Connection *c,
    struct request *r, const uint8_t *msg, size_t len)
{
	Scep__V1__Request req = SCEP__V1__REQUEST__INIT;
	Scep__V1__PkiOperationRequest body =
	    SCEP__V1__PKI_OPERATION_REQUEST__INIT;
	Scep__V1__Reply *rep = NULL;
	Scep__V1__PkiOperationReply *po;
	static const struct http_header no_store[] = {
	    {"Cache-Control", "no-store"}, {NULL, NULL}};
	enum upstream_result res;
	enum MHD_Result ret;

	body.message.data = (uint8_t *)msg;
	body.message.len = len;
	body.client_addr = r->client;
	body.path = (char *)r->scep_path;
	body.user_agent = r->user_agent[0] != '\0' ? r->user_agent : NULL;
	req.body_case = SCEP__V1__REQUEST__BODY_PKI_OPERATION;
	req.pki_operation = &body;
	res = upstream_call(
	    fe, UPSTREAM_RA, &req, SCEP__V1__REPLY__BODY_PKI_OPERATION, &rep);
	if (res == UPSTREAM_RATE_LIMITED) {
		ret = http_too_many(c, r,
		    rep->has_retry_after_s ? rep->retry_after_s : 60,
		    rep->error != NULL ? rep->error : "Too many refusals.");
		goto out;
	}
	if (res != UPSTREAM_OK) {
		ret = scep_upstream_error(c, r, res,
		    rep != NULL && rep->error != NULL ? rep->error
		                                      : "request refused");
		goto out;
	}
	po = rep->pki_operation;
	if (!po->has_certrep || po->certrep.len == 0) {
		log_error("the RA answered PKIOperation without a CertRep");
		ret = scep_upstream_error(c, r, UPSTREAM_FAILED, "");
		goto out;
	}
	/* An answer to one device's one message: no cache may keep it. */
	ret = http_respond(c, r, MHD_HTTP_OK, "application/x-pki-message",
	    po->certrep.data, po->certrep.len, no_store);
out:
	if (rep != NULL)
		scep__v1__reply__free_unpacked(rep, NULL);
	return ret;
}

/* PKIOperation by GET: `message` is base64, taken from the raw query so a
 * literal '+' stays '+'. */
static enum MHD_Result
scep_pki_get(struct frontend *fe, struct MHD_Connection *c, struct request *r,
    const char *query, size_t qlen)
{
	char *text = NULL, why[128];
	uint8_t *der = NULL;
	size_t text_len = 0, der_len = 0;
	enum MHD_Result ret;
	int rc;

	rc = query_get(query, qlen, "message", &text, &text_len);
	if (rc == QUERY_ENOMEM)
		return http_no_memory(c, r, "the message parameter");
	if (rc <= 0) {
		snprintf(why, sizeof(why),
		    "PKIOperation: message parameter: %s",
		    rc == 0 ? "missing" : query_strerror(rc));
		ret = scep_bad(c, r, why);
		goto out;
	}
	if ((rc = query_base64_decode(text, text_len, &der, &der_len)) != 0) {
		ret = rc == QUERY_ENOMEM
		    ? http_no_memory(c, r, "the message's base64")
		    : scep_bad(c, r,
		          "PKIOperation: message parameter is not base64");
		goto out;
	}
	ret = scep_pki_operation(fe, c, r, der, der_len);
out:
	free(text);
	free(der);
	return ret;
}

static enum MHD_Result
scep_pki_post(struct frontend *fe, struct MHD_Connection *c, struct request *r)
{
	uint8_t *der = NULL;
	size_t der_len = 0;
	enum MHD_Result ret;
	int rc;

	if (r->body_len == 0)
		return scep_bad(c, r, "PKIOperation: empty POST body");
	/* A DER or BER pkiMessage starts with a SEQUENCE tag; anything else
	 * may be the base64 some clients POST. */
	if (r->body[0] == 0x30)
		return scep_pki_operation(fe, c, r, r->body, r->body_len);
	rc = query_base64_decode(
	    (const char *)r->body, r->body_len, &der, &der_len);
	if (rc == QUERY_ENOMEM)
		return http_no_memory(c, r, "the POST body's base64");
	if (rc != 0)
		return scep_bad(
		    c, r, "PKIOperation: POST body is neither DER nor base64");
	ret = scep_pki_operation(fe, c, r, der, der_len);
	free(der);
	return ret;
}

/*
 * The SCEP URL opened without a query, in a browser: NDES's page, 200.
 * Administrators check a server so ("browse to .../mscep.dll"), and load
 * balancers' probes copied from NDES set-ups expect 200.
 */
static enum MHD_Result
scep_ndes_page(struct frontend *fe, struct MHD_Connection *c, struct request *r)
{
	char page[1024];
	int n;

	n = snprintf(page, sizeof(page),
	    "<!DOCTYPE html>\n<html lang=\"en\"><head><meta "
	    "charset=\"utf-8\"><title>Network Device Enrollment Service"
	    "</title></head><body>\n" NDES_PAGE_INTRO "<p>This "
	    "URL is used by network devices to submit certificate requests."
	    "</p>\n<p>To obtain an enrollment challenge password, go to the "
	    "admin URL: %s on this server.</p>\n</body></html>\n",
	    fe->settings.admin_path[0] != '\0' ? fe->settings.admin_path
	                                       : "(none: AdminPath is empty)");
	if (n < 0 || (size_t)n >= sizeof(page))
		return http_no_memory(c, r, "the NDES page");
	return http_respond(c, r, MHD_HTTP_OK, "text/html; charset=utf-8", page,
	    (size_t)n, NULL);
}

enum MHD_Result
scep_handle(struct frontend *fe, struct MHD_Connection *c, struct request *r,
    const char *query, size_t qlen)
{
	char *op = NULL, shown[48], why[256];
	const char *name = "";
	size_t op_len = 0;
	enum scep_op which = SCEP_OP_NONE;
	enum MHD_Result ret;
	int rc;

	if (qlen == 0 &&
	    (strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0))
		return scep_ndes_page(fe, c, r);
	rc = query_get(query, qlen, "operation", &op, &op_len);
	if (rc == QUERY_ENOMEM)
		return http_no_memory(c, r, "the operation parameter");
	if (rc > 0)
		which = scep_op_find(op, op_len, &name);
	if (which == SCEP_OP_NONE) {
		/* NDES event 11, in its words. */
		if (rc > 0)
			printable(shown, sizeof(shown), op, op_len);
		snprintf(why, sizeof(why),
		    "received an http message without the Operation tag, or "
		    "with an invalid Operation tag (%s%s%s)",
		    rc > 0 ? "operation=" : "",
		    rc > 0        ? shown
		        : rc == 0 ? "no operation parameter"
		                  : query_strerror(rc),
		    rc == QUERY_EDUP ? ": operation" : "");
		ret = scep_bad(c, r, why);
		goto out;
	}
	snprintf(r->operation, sizeof(r->operation), "%s", name);
	/* HEAD asks for what GET would answer, without the body: a
	 * PKIOperation would be done (a password used, a certificate
	 * issued) and its answer thrown away. */
	if (which == SCEP_OP_PKIOPERATION && strcmp(r->method, "HEAD") == 0) {
		ret = http_not_allowed(c, r, "GET, POST");
		goto out;
	}
	/* It waits on the RA; GetCACaps, GetCACert and GetNextCACert only
	 * when the cache does not hold them. */
	if (!r->offloaded && which == SCEP_OP_PKIOPERATION) {
		ret = http_offload(fe, c, r);
		goto out;
	}
	switch (which) {
	case SCEP_OP_GETCACAPS:
		ret = scep_get_ca_answer(fe, c, r, CACERT_CAPS);
		break;
	case SCEP_OP_GETCACERT:
		ret = scep_get_ca_answer(fe, c, r, CACERT_CERTS);
		break;
	case SCEP_OP_GETNEXTCACERT:
		ret = scep_get_ca_answer(fe, c, r, CACERT_NEXT);
		break;
	case SCEP_OP_PKIOPERATION:
		if (strcmp(r->method, "POST") == 0)
			ret = scep_pki_post(fe, c, r);
		else
			ret = scep_pki_get(fe, c, r, query, qlen);
		break;
	default:
		ret = MHD_NO;
	}
out:
	free(op);
	return ret;
}
