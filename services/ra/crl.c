/*
 * GetCrlRequest from the frontend (the CRL over plain HTTP at the CRL
 * distribution point): passed on to the CA, the only one that can sign
 * a CRL. The frontend keeps it for a while; the CA re-issues it in time.
 */
#include <string.h>

#include "log.h"
#include "ra.h"

void
ra_handle_get_crl(void *worker, const Scep__V1__Request *req,
    Scep__V1__Reply *reply, struct rpc_arena *arena)
{
	struct ra_worker *w = worker;
	Scep__V1__Request call = SCEP__V1__REQUEST__INIT;
	Scep__V1__GetCrlRequest body = SCEP__V1__GET_CRL_REQUEST__INIT;
	Scep__V1__Reply *ca_reply = NULL;
	Scep__V1__GetCrlReply *out;
	int64_t left = req->deadline_ms - rpc_now_ms() - 50;
	int rc;

	call.body_case = SCEP__V1__REQUEST__BODY_GET_CRL;
	call.get_crl = &body;
	if (left > w->ra->settings.rpc_timeout)
		left = w->ra->settings.rpc_timeout;
	rc = rpc_call(w->ca, &call, left > 0 ? (int)left : 0, &ca_reply);
	if (rc != RPC_OK || ca_reply->status != SCEP__V1__STATUS__STATUS_OK ||
	    ca_reply->body_case != SCEP__V1__REPLY__BODY_GET_CRL) {
		log_event(LOG_LEVEL_WARN, NULL, req->id, "CRL from the CA: %s",
		    rc != RPC_OK ? rpc_strerror(rc)
		                 : (ca_reply->error ? ca_reply->error : "?"));
		reply->status = SCEP__V1__STATUS__STATUS_UNAVAILABLE;
		reply->error = "the CA did not give a CRL";
		goto out;
	}
	out = rpc_alloc(arena, sizeof(*out));
	scep__v1__get_crl_reply__init(out);
	out->crl.data = rpc_alloc(arena, ca_reply->get_crl->crl.len);
	memcpy(out->crl.data, ca_reply->get_crl->crl.data,
	    ca_reply->get_crl->crl.len);
	out->crl.len = ca_reply->get_crl->crl.len;
	out->next_update = ca_reply->get_crl->next_update;
	reply->body_case = SCEP__V1__REPLY__BODY_GET_CRL;
	reply->get_crl = out;
out:
	scep__v1__reply__free_unpacked(ca_reply, NULL);
}
