/*
 * PKIOperation: verify, authorize by messageType, open, check, have the
 * challenge service and the CA do their part, answer a CertRep.
 *
 * Authorization is default-deny: only the message types in ra_operations
 * are handled, each by its own handler that makes its own checks; every
 * other messageType gets FAILURE badRequest and nothing is signed.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "log.h"
#include "pki.h"
#include "ra.h"

/* What a handler decided, turned into a CertRep (or a 503) by the caller. */
struct ra_answer {
	int unavailable; /* our own outage: 503, never a FAILURE */
	unsigned int rate_limited; /* 429: seconds to wait; 0: not limited */
	int pki_status;
	int failinfo;
	const char *text; /* failInfoText; static or in the arena */
	X509 *issued; /* owned */
	/* Or the degenerate SignedData of it, the CA's, or of GetCRL's CRL
	 * (in the arena). */
	const uint8_t *certs_only;
	size_t certs_only_len;
	int cipher_nid; /* of the request's envelope, for the reply */
	int opened; /* the envelope opened: a legacy cipher's use counts */
	/* The CA issued nothing for this request: the one copy sent was
	 * answered an error, or none was sent. */
	int not_issued;
	/* Copies sent, one answered an error: the outcome is not known. */
	int outcome_unknown;
	/* The CA refused, binding nothing to the txid, or nothing it will
	 * answer to it while this request's password was free: release. */
	int nothing_bound;
	int reserved_now; /* this request's check reserved the password */
	/* The CA answered from what an earlier request of the transaction
	 * paid for: a password this one reserved is released, not used. */
	int paid_before;
	int reports_counted; /* the challenge service counts every report */
};

static void
ra_fail(struct ra_answer *ans, int failinfo, const char *text)
{
	ans->pki_status = SCEP_STATUS_FAILURE;
	ans->failinfo = failinfo;
	ans->text = text;
}

/*
 * A call that failed: a request larger than the service reads (a CSR of
 * hundreds of KiB) is the device's to fix, answered FAILURE at once;
 * anything else is our outage, 503 with Retry-After. Returns -1.
 */
static int
ra_call_failed(
    struct ra_answer *ans, int rc, int to_ca, struct rpc_arena *arena)
{
	char *why;

	if (rc != RPC_ETOOBIG) {
		ans->unavailable = 1;
		return -1;
	}
	why = rpc_alloc(arena, 80);
	snprintf(why, 80, "the request is larger than the %s reads (%d KiB)",
	    to_ca ? "CA" : "challenge service",
	    (to_ca ? RPC_MAX_CA_REQUEST : RPC_MAX_CHALLENGE_REQUEST) / 1024);
	ra_fail(ans, SCEP_FAILINFO_BAD_REQUEST, why);
	return -1;
}

/* The downstream timeout: our setting, but never past the caller's deadline. */
static int
ra_budget_ms(const struct ra *ra, const Scep__V1__Request *req)
{
	int64_t left = req->deadline_ms - rpc_now_ms() - 50;

	if (left > ra->settings.rpc_timeout)
		left = ra->settings.rpc_timeout;
	return left > 0 ? (int)left : 0;
}

/* A PKCSReq not signed by a certificate of this CA (a renewal) must be
 * signed by the key it asks a certificate for (RFC 8894 §2.3, proof of
 * possession). Whether the signer is self-signed is not asked:
 * X509_check_issued wants keyCertSign, which micromdm's scepclient's
 * "SCEP SIGNER" does not have, and such a request went unchecked. */
static int
ra_signer_matches_csr(X509 *signer, X509_REQ *csr)
{
	EVP_PKEY *signer_key = X509_get0_pubkey(signer);
	EVP_PKEY *csr_key = X509_REQ_get0_pubkey(csr);

	return signer_key != NULL && csr_key != NULL &&
	    EVP_PKEY_eq(signer_key, csr_key) == 1;
}

/* A signer certificate this CA issued (its signature verifies with the
 * CA's key), or with `previous_too` one a CA it replaced issued
 * (PreviousCACertificate: renewals only): the request is a renewal, paid
 * for by that certificate. The CA checks the rest (ledger, expiry,
 * revocation, window) itself. */
static int
ra_signer_is_ours(const struct ra *ra, X509 *signer, int previous_too)
{
	if (X509_check_issued(signer, signer) == X509_V_OK)
		return 0; /* self-signed: a new enrollment */
	/* Or of a CA this one replaced: the CA checks its ledger all the
	 * same (renewal.c). */
	return pki_issued_by(signer, sk_X509_value(ra->ca_chain, 0)) ||
	    (previous_too &&
	        pki_issuer_among(signer, ra->previous_cas) != NULL);
}

/*
 * Asks the challenge service; 0 if the password is accepted, and then
 * *consume says whether it must hear of the issuance (ChallengeConsume).
 */
static int
ra_challenge_check(struct ra_worker *w, const Scep__V1__Request *req,
    const char *txid, const struct scep_content *content, struct ra_answer *ans,
    struct rpc_arena *arena, int *consume)
{
	Scep__V1__Request call = SCEP__V1__REQUEST__INIT;
	Scep__V1__ChallengeCheckRequest check =
	    SCEP__V1__CHALLENGE_CHECK_REQUEST__INIT;
	Scep__V1__Reply *reply = NULL;
	const char *password = content->challenge;
	X509_REQ *csr = content->csr;
	int64_t left_ms;
	int rc;

	check.password = (char *)(password != NULL ? password : "");
	check.transaction_id = (char *)txid;
	check.client_addr = req->pki_operation->client_addr;
	check.path = req->pki_operation->path;
	/* For validators that weigh the request (an MDM's webhook). */
	check.has_csr = 1;
	check.csr.data = content->csr_der;
	check.csr.len = content->csr_der_len;
	check.subject = ra_csr_subject(csr, arena);
	check.n_sans = ra_csr_sans(csr, &check.sans, arena);
	/* The device's time left, and when this request's report (consume
	 * or release) comes at the latest: sent whatever the time left, within
	 * RPCTimeout (one reading of the clock: a second one past the
	 * deadline would wrap). */
	left_ms = req->deadline_ms - rpc_now_ms();
	check.has_answer_within_ms = 1;
	check.answer_within_ms = left_ms > 0 ? (uint32_t)left_ms : 0;
	check.has_report_within_ms = 1;
	check.report_within_ms =
	    check.answer_within_ms + (uint32_t)w->ra->settings.rpc_timeout;
	call.body_case = SCEP__V1__REQUEST__BODY_CHALLENGE_CHECK;
	call.challenge_check = &check;
	/* A check may wait on an MDM (a webhook validator) up to its
	 * Timeout: sent again, the MDM would be asked twice. */
	rc = rpc_call_once(
	    w->challenge, &call, ra_budget_ms(w->ra, req), &reply);
	if (rc != RPC_OK) {
		log_event(LOG_LEVEL_WARN, txid, req->id,
		    "challenge service: %s", rpc_strerror(rc));
		return ra_call_failed(ans, rc, 0, arena);
	}
	rc = 0;
	if (reply->status == SCEP__V1__STATUS__STATUS_OK) {
		const Scep__V1__ChallengeCheckReply *cr =
		    reply->body_case == SCEP__V1__REPLY__BODY_CHALLENGE_CHECK
		    ? reply->challenge_check
		    : NULL;

		if (cr != NULL && cr->validator != NULL)
			log_event(LOG_LEVEL_INFO, txid, req->id,
			    "challenge accepted by validator %s",
			    cr->validator);
		/* Unsaid (an older challenge service): consume, as before. */
		*consume = cr == NULL || !cr->has_consume_not_needed ||
		    !cr->consume_not_needed;
		ans->reserved_now =
		    cr != NULL && cr->has_reserved_now && cr->reserved_now;
		ans->reports_counted =
		    cr != NULL && cr->has_counts_reports && cr->counts_reports;
		goto out;
	}
	rc = -1;
	if (reply->status == SCEP__V1__STATUS__STATUS_RATE_LIMITED) {
		ans->rate_limited =
		    reply->has_retry_after_s && reply->retry_after_s > 0
		    ? reply->retry_after_s
		    : 60;
		goto out;
	}
	/* STATUS_BAD_REQUEST is ours (a route or a peer the service does
	 * not serve: a configuration error), so 503 like an outage; what
	 * the device must fix comes REFUSED. */
	if (reply->status != SCEP__V1__STATUS__STATUS_REFUSED) {
		ans->unavailable = 1;
		goto out;
	}
	log_event(LOG_LEVEL_WARN, txid, req->id, "challenge refused: %s",
	    reply->error ? reply->error : "?");
	ra_fail(ans, SCEP_FAILINFO_BAD_REQUEST,
	    rpc_strdup(arena,
	        reply->error ? reply->error : "challenge password refused"));
out:
	scep__v1__reply__free_unpacked(reply, NULL);
	return rc;
}

static void
ra_challenge_consume(struct ra_worker *w, const Scep__V1__Request *req,
    const char *password, const char *txid)
{
	Scep__V1__Request call = SCEP__V1__REQUEST__INIT;
	Scep__V1__ChallengeConsumeRequest consume =
	    SCEP__V1__CHALLENGE_CONSUME_REQUEST__INIT;
	Scep__V1__Reply *reply = NULL;
	int rc;

	consume.password = (char *)(password != NULL ? password : "");
	consume.transaction_id = (char *)txid;
	consume.path = req->pki_operation->path;
	call.body_case = SCEP__V1__REQUEST__BODY_CHALLENGE_CONSUME;
	call.challenge_consume = &consume;
	/* Once: a copy would tell the MDM again (the challenge service
	 * drops copies of a consume it did, but not of one in progress).
	 * Sent whatever the device's time left, to be done within
	 * RPCTimeout: the certificate exists, and a mark never sent (a CA
	 * that answered in the last 50 ms left a budget of 0) left a release
	 * asked by another request of this transaction waiting until the
	 * password expired. The device's answer waits for it no longer than
	 * its time left (at least a moment). */
	rc = rpc_call_once_served_within(w->challenge, &call,
	    ra_budget_ms(w->ra, req), (int)w->ra->settings.rpc_timeout, &reply);
	/* The password stays reserved to this transaction even if this
	 * fails, so no other transaction can use it; it then expires. */
	if (rc != RPC_OK || reply->status != SCEP__V1__STATUS__STATUS_OK)
		log_event(LOG_LEVEL_WARN, txid, req->id,
		    "challenge not marked used: %s",
		    rc != RPC_OK ? rpc_strerror(rc)
		                 : (reply->error ? reply->error : "refused"));
	scep__v1__reply__free_unpacked(reply, NULL);
}

/* A request whose password check passed issued nothing (the CA answered
 * it an error, or it was never sent): reported, as an issued one is
 * (ChallengeConsume), so the challenge service knows when no request of
 * the transaction may still use the password. Released then if the CA
 * bound nothing to the transaction, so the device may enroll again with
 * a new key (a new transactionID) and the same password. */
static void
ra_challenge_release(struct ra_worker *w, const Scep__V1__Request *req,
    const char *password, const char *txid, const struct ra_answer *ans)
{
	Scep__V1__Request call = SCEP__V1__REQUEST__INIT;
	Scep__V1__ChallengeReleaseRequest release =
	    SCEP__V1__CHALLENGE_RELEASE_REQUEST__INIT;
	Scep__V1__Reply *reply = NULL;
	int rc;

	release.password = (char *)(password != NULL ? password : "");
	release.transaction_id = (char *)txid;
	release.path = req->pki_operation->path;
	release.has_reserving = 1;
	release.reserving = ans->reserved_now;
	release.has_release = 1;
	/* Sent only by the request that reserved the password when the CA
	 * answered with what an earlier request paid for. */
	release.release = ans->nothing_bound || ans->paid_before;
	release.has_paid_before = ans->paid_before;
	release.paid_before = ans->paid_before;
	release.has_outcome_unknown = ans->outcome_unknown;
	release.outcome_unknown = ans->outcome_unknown;
	/* An older challenge service takes any report for the reserving
	 * request's wish to release: it gets only that one, known. */
	if (!ans->reports_counted &&
	    (ans->outcome_unknown || !(ans->reserved_now && release.release)))
		return;
	if (ans->outcome_unknown)
		log_event(LOG_LEVEL_WARN, txid, req->id,
		    "sent to the CA more than once: the copy it answered may "
		    "not be the one it acted on last, the password is not "
		    "released");
	call.body_case = SCEP__V1__REQUEST__BODY_CHALLENGE_RELEASE;
	call.challenge_release = &release;
	/* Once: a copy would count as another request's report. Sent
	 * whatever the device's time left, as a consume is: a report never
	 * sent leaves the password reserved until it expires. */
	rc = rpc_call_once_served_within(w->challenge, &call,
	    ra_budget_ms(w->ra, req), (int)w->ra->settings.rpc_timeout, &reply);
	/* Not released: it stays reserved to this transaction and expires. */
	if (rc != RPC_OK || reply->status != SCEP__V1__STATUS__STATUS_OK)
		log_event(LOG_LEVEL_WARN, txid, req->id,
		    "challenge not released: %s",
		    rc != RPC_OK ? rpc_strerror(rc)
		                 : (reply->error ? reply->error : "refused"));
	scep__v1__reply__free_unpacked(reply, NULL);
}

static int
ra_ca_sign(struct ra_worker *w, const Scep__V1__Request *req,
    const struct scep_request *sreq, const struct scep_content *content,
    int renewal, struct ra_answer *ans, struct rpc_arena *arena)
{
	Scep__V1__Request call = SCEP__V1__REQUEST__INIT;
	Scep__V1__SignRequest sign = SCEP__V1__SIGN_REQUEST__INIT;
	Scep__V1__Reply *reply = NULL;
	unsigned char *old = NULL;
	const unsigned char *p;
	int len, rc = -1;

	/* The CSR as the device sent it: the CA checks its signature. */
	sign.csr.data = content->csr_der;
	sign.csr.len = content->csr_der_len;
	sign.transaction_id = sreq->transaction_id;
	sign.client_addr = req->pki_operation->client_addr;
	sign.has_message_type = 1;
	sign.message_type = sreq->message_type;
	if (renewal) {
		/* Without it the CA would take a renewal, which paid with no
		 * password, for an enrollment the RA vouched for. */
		if ((len = i2d_X509(sreq->signer, &old)) <= 0) {
			log_event(LOG_LEVEL_ERROR, sreq->transaction_id,
			    req->id, "renewal: the signer cannot be encoded");
			ans->unavailable = 1;
			return -1;
		}
		sign.has_renewal_of = 1;
		sign.renewal_of.data = old;
		sign.renewal_of.len = (size_t)len;
	}
	call.body_case = SCEP__V1__REQUEST__BODY_SIGN;
	call.sign = &sign;
	rc = rpc_call(w->ca, &call, ra_budget_ms(w->ra, req), &reply);
	OPENSSL_free(old);
	if (rc != RPC_OK) {
		log_event(LOG_LEVEL_WARN, sreq->transaction_id, req->id,
		    "CA: %s", rpc_strerror(rc));
		/* Not sent: nothing issued. Unanswered: it may be. */
		ans->not_issued = rpc_client_copies(w->ca) == 0;
		return ra_call_failed(ans, rc, 1, arena);
	}
	rc = -1;
	/* An error answered: this copy issued nothing. Another, sent again
	 * after no answer for a third of the wait, may reach the CA later
	 * and get another answer (a policy plugin back, or changed its
	 * mind) and a certificate, which no one would report: with copies,
	 * the outcome is not known. */
	ans->not_issued = reply->status != SCEP__V1__STATUS__STATUS_OK &&
	    rpc_client_copies(w->ca) == 1;
	ans->outcome_unknown =
	    reply->status != SCEP__V1__STATUS__STATUS_OK && !ans->not_issued;
	if (reply->status == SCEP__V1__STATUS__STATUS_REFUSED) {
		const Scep__V1__SignReply *sr =
		    reply->body_case == SCEP__V1__REPLY__BODY_SIGN ? reply->sign
		                                                   : NULL;
		int fi = sr != NULL && sr->has_fail_info
		    ? (int)sr->fail_info
		    : SCEP_FAILINFO_BAD_REQUEST;

		log_event(LOG_LEVEL_WARN, sreq->transaction_id, req->id,
		    "CA refused: %s", reply->error ? reply->error : "?");
		ans->nothing_bound = sr != NULL &&
		    ((sr->has_nothing_bound && sr->nothing_bound) ||
		        (sr->has_never_answered && sr->never_answered &&
		            ans->reserved_now));
		ra_fail(ans, fi,
		    rpc_strdup(arena,
		        reply->error ? reply->error : "refused by the CA"));
		goto out;
	}
	/* Only when sent once: a copy sent again (no answer within a third
	 * of the wait) reaches the CA after the first was issued, and is
	 * answered as a retry, which the certificate this request's
	 * password paid for is. */
	ans->paid_before = reply->status == SCEP__V1__STATUS__STATUS_OK &&
	    reply->body_case == SCEP__V1__REPLY__BODY_SIGN &&
	    reply->sign->has_paid_before && reply->sign->paid_before &&
	    rpc_client_copies(w->ca) == 1;
	if (reply->status == SCEP__V1__STATUS__STATUS_OK &&
	    reply->body_case == SCEP__V1__REPLY__BODY_SIGN &&
	    reply->sign->has_pending && reply->sign->pending) {
		/* An operator decides; the device polls (CertPoll). */
		ans->pki_status = SCEP_STATUS_PENDING;
		rc = 1;
		goto out;
	}
	if (reply->status != SCEP__V1__STATUS__STATUS_OK ||
	    reply->body_case != SCEP__V1__REPLY__BODY_SIGN ||
	    !reply->sign->has_cert) {
		ans->unavailable = 1;
		goto out;
	}
	if (reply->sign->has_certs_only && reply->sign->certs_only.len > 0) {
		/* Enveloped as it comes: no parse, no key to decode. */
		uint8_t *copy = rpc_alloc(arena, reply->sign->certs_only.len);

		memcpy(copy, reply->sign->certs_only.data,
		    reply->sign->certs_only.len);
		ans->certs_only = copy;
		ans->certs_only_len = reply->sign->certs_only.len;
		ans->pki_status = SCEP_STATUS_SUCCESS;
		rc = 0;
		goto out;
	}
	p = reply->sign->cert.data;
	ans->issued = d2i_X509(NULL, &p, (long)reply->sign->cert.len);
	if (ans->issued == NULL) {
		log_event(LOG_LEVEL_ERROR, sreq->transaction_id, req->id,
		    "CA sent an unreadable certificate");
		ans->unavailable = 1;
		goto out;
	}
	ans->pki_status = SCEP_STATUS_SUCCESS;
	rc = 0;
out:
	scep__v1__reply__free_unpacked(reply, NULL);
	return rc;
}

/*
 * Opens a request's envelope with the RA's key and reads `kind` from it
 * (scep_envelope_read: one answer, after the same work, to every way that
 * can fail); 0, or -1 with ans failed. The log says which step failed.
 */
static int
ra_open(const struct ra *ra, const Scep__V1__Request *req,
    const struct scep_request *sreq, enum scep_content_kind kind,
    struct ra_answer *ans, struct scep_content *content)
{
	int failinfo = SCEP_FAILINFO_NONE;
	const char *why = NULL, *detail = NULL;

	if (sreq->envelope_len == 0) {
		ra_fail(ans, SCEP_FAILINFO_BAD_REQUEST,
		    "the request has no pkcsPKIEnvelope");
		return -1;
	}
	if (ra->enc_watch != NULL && atomic_load(&ra->enc_watch->down)) {
		log_event(LOG_LEVEL_WARN, sreq->transaction_id, req->id,
		    "not opened: a key of the RA in a token does not decrypt "
		    "(see the RA's error above): 503");
		ans->unavailable = 1;
		return -1;
	}
	if (scep_envelope_read(sreq->envelope, sreq->envelope_len, ra->enc,
	        ra->enc[1].cert != NULL ? 2 : 1, &ra->policy, ra->wrapped_keys,
	        kind, content, &ans->cipher_nid, &failinfo, &why,
	        &detail) != SCEP_OK) {
		log_event(LOG_LEVEL_WARN, sreq->transaction_id, req->id,
		    "envelope refused: %s", detail);
		/* Whatever the reason (one answer to all): the serving
		 * thread tries the key soon after. */
		if (ra->enc_watch != NULL)
			atomic_fetch_add(&ra->enc_watch->refusals, 1);
		ra_fail(ans, failinfo, why);
		return -1;
	}
	if (detail != NULL)
		log_event(LOG_LEVEL_INFO, sreq->transaction_id, req->id,
		    "envelope %s", detail);
	if (ans->cipher_nid == NID_des_cbc)
		log_event(LOG_LEVEL_WARN, sreq->transaction_id, req->id,
		    "single DES envelope accepted: legacy switch AllowDES = 1");
	ans->opened = 1;
	return 0;
}

static void ra_ca_poll(struct ra_worker *w, const Scep__V1__Request *req,
    const struct scep_request *sreq, const struct scep_content *asked,
    struct ra_answer *ans, struct rpc_arena *arena);

/*
 * A PKCSReq whose password was refused, sent again by the key of a
 * transaction the CA knows: a password stays its transaction's for 7 days
 * after it expires, a request may wait PendingDays (up to 365) for an
 * operator, and certmonger collects an approved certificate by sending
 * its PKCSReq again. Such a request is answered as a CertPoll by the same
 * key would be (the certificate, PENDING, or the CA's refusal); to an
 * unknown transaction, or when the CA does not answer, the password's
 * refusal stands.
 */
static void
ra_pkcsreq_known(struct ra_worker *w, const Scep__V1__Request *req,
    const struct scep_request *sreq, const struct scep_content *content,
    struct ra_answer *ans, struct rpc_arena *arena)
{
	struct ra_answer polled;

	memset(&polled, 0, sizeof(polled));
	ra_ca_poll(w, req, sreq, content, &polled, arena);
	if (polled.unavailable ||
	    (polled.pki_status == SCEP_STATUS_FAILURE &&
	        polled.failinfo == SCEP_FAILINFO_BAD_CERT_ID))
		return;
	log_event(LOG_LEVEL_INFO, sreq->transaction_id, req->id,
	    "the password refused, the CA knows this key's transaction: "
	    "answered as a CertPoll (%s)",
	    polled.pki_status == SCEP_STATUS_SUCCESS       ? "its certificate"
	        : polled.pki_status == SCEP_STATUS_PENDING ? "PENDING"
	                                                   : polled.text);
	ans->pki_status = polled.pki_status;
	ans->failinfo = polled.failinfo;
	ans->text = polled.text;
	ans->issued = polled.issued;
	/* Its own transaction, asked by its key, is no guess at a password:
	 * what a CertPoll from the address would get, not the 429 of
	 * WrongPasswordLimit (a device behind a NAT whose address others
	 * got throttled). */
	ans->rate_limited = 0;
}

/*
 * PKCSReq (19): a new certificate, paid for with a challenge password; or,
 * signed by a certificate of this CA, a renewal (what clients that never
 * send RenewalReq do). RenewalReq (17): a renewal only.
 */
static void
ra_pkcsreq(struct ra_worker *w, const Scep__V1__Request *req,
    const struct scep_request *sreq, struct ra_answer *ans,
    struct rpc_arena *arena)
{
	const struct ra *ra = w->ra;
	const char *txid = sreq->transaction_id;
	struct scep_content content = {0};
	X509_REQ *csr;
	const char *challenge, *why = NULL;
	int renewal, rc, consume = 0;

	if (ra_open(ra, req, sreq, SCEP_CONTENT_CSR, ans, &content) != 0)
		goto out;
	csr = content.csr;
	challenge = content.challenge;
	renewal = ra_signer_is_ours(ra, sreq->signer, 1);
	if (!scep_csr_digest_allowed(csr, &ra->policy, &why)) {
		log_event(LOG_LEVEL_WARN, txid, req->id, "%s", why);
		ra_fail(ans, SCEP_FAILINFO_BAD_ALG, why);
		goto out;
	}
	/* Before the key checks: a renewal signed by a certificate of
	 * another CA (one this CA replaced) is told why, whatever its key. */
	if (sreq->message_type == SCEP_MSG_RENEWALREQ && !renewal) {
		log_event(LOG_LEVEL_WARN, txid, req->id,
		    "RenewalReq signed by a certificate not of this CA");
		ra_fail(ans, SCEP_FAILINFO_BAD_REQUEST,
		    "a RenewalReq must be signed with the certificate to "
		    "renew, issued by this CA (one of a CA it replaced, "
		    "when listed in [ra] and [ca] PreviousCACertificate)");
		goto out;
	}
	/* A new enrollment's signer holds the CSR's key and the reply is
	 * encrypted to it: RSA (the signer was checked to be), so an EC CSR
	 * can only come signed by a certificate of ours. */
	if (!renewal &&
	    EVP_PKEY_get_base_id(X509_REQ_get0_pubkey(csr)) != EVP_PKEY_RSA) {
		log_event(LOG_LEVEL_WARN, txid, req->id,
		    "a new enrollment for a key that is not RSA");
		ra_fail(ans, SCEP_FAILINFO_BAD_ALG,
		    "a new enrollment's CSR must hold an RSA key: its signer "
		    "certificate holds the same key and the reply is encrypted "
		    "to it (RFC 8894 3.1); an EC key is certified by a renewal "
		    "signed with an RSA certificate of this CA");
		goto out;
	}
	if (!renewal && !ra_signer_matches_csr(sreq->signer, csr)) {
		log_event(LOG_LEVEL_WARN, txid, req->id,
		    "signer certificate (not one of this CA) is not for the "
		    "CSR's key");
		ra_fail(ans, SCEP_FAILINFO_BAD_MESSAGE_CHECK,
		    "the signer certificate, not one of this CA, does not "
		    "hold the CSR's public key");
		goto out;
	}
	/* A renewal is paid for by the certificate that signed it; a new
	 * enrollment by a password. No password is the challenge service's
	 * call too: it knows EnforcePassword and names the setting. */
	if (!renewal &&
	    ra_challenge_check(w, req, txid, &content, ans, arena, &consume) !=
	        0) {
		if (ans->pki_status == SCEP_STATUS_FAILURE && !ans->unavailable)
			ra_pkcsreq_known(w, req, sreq, &content, ans, arena);
		goto out;
	}
	rc = ra_ca_sign(w, req, sreq, &content, renewal, ans, arena);
#ifdef SCEPD_TEST_HOOKS
	/* The CA answered as the device's time ran out (ra.h). */
	if (ra->test_ca_late)
		((Scep__V1__Request *)req)->deadline_ms = rpc_now_ms();
#endif
	if (rc < 0) {
		/* Every request that passed the check and issued nothing
		 * reports: the challenge service frees the password only once
		 * none of its transaction's requests may still use it. One
		 * sent more than once says its outcome is unknown. A CA that
		 * did not answer may still issue: no report, the password
		 * stays reserved to the transaction (a retry gets the
		 * certificate). */
		if (consume && (ans->not_issued || ans->outcome_unknown))
			ra_challenge_release(w, req, challenge, txid, ans);
		goto out;
	}
	/* Issued, or held for an operator: the password has done its work
	 * either way (a PKCSReq sent again while pending still passes: the
	 * password stays its transaction's). CertPoll brings no password to
	 * mark when the approved certificate goes out. */
#ifdef SCEPD_TEST_HOOKS
	if (ra->test_no_consume)
		consume = 0;
#endif
	/* Answered from what an earlier request paid for (the device sent
	 * it again with a new password): that password paid for nothing.
	 * One this request found reserved may be the one that paid (its
	 * "used" mark lost): marked used, as before. */
	if (consume && rc >= 0 && ans->paid_before && ans->reserved_now)
		ra_challenge_release(w, req, challenge, txid, ans);
	else if (consume && rc >= 0)
		ra_challenge_consume(w, req, challenge, txid);
	log_event(LOG_LEVEL_INFO, txid, req->id, "%s to %s via %s",
	    rc > 0 ? "pending" : (renewal ? "renewed" : "issued"),
	    req->pki_operation->client_addr ? req->pki_operation->client_addr
	                                    : "?",
	    req->pki_operation->path ? req->pki_operation->path : "?");
out:
	scep_content_clear(&content);
}

/* The issuer a GetCert/GetCRL/CertPoll names must be our CA. */
static int
ra_issuer_is_ours(const struct ra *ra, const X509_NAME *issuer)
{
	return X509_NAME_cmp(issuer,
	           X509_get_subject_name(sk_X509_value(ra->ca_chain, 0))) == 0;
}

/*
 * What the CA holds for the transaction of `sreq` and its signer's key: the
 * certificate, PENDING, or its refusal (badCertId: unknown) in `ans`. Only
 * the transaction's own key learns it (RFC 8894 3.3.3).
 */
/* `asked`: a PKCSReq's content, whose CSR the CA compares with what the
 * transaction holds; NULL for a CertPoll. */
static void
ra_ca_poll(struct ra_worker *w, const Scep__V1__Request *req,
    const struct scep_request *sreq, const struct scep_content *asked,
    struct ra_answer *ans, struct rpc_arena *arena)
{
	Scep__V1__Request call = SCEP__V1__REQUEST__INIT;
	Scep__V1__PollRequest poll = SCEP__V1__POLL_REQUEST__INIT;
	Scep__V1__Reply *reply = NULL;
	unsigned char *key = NULL;
	const unsigned char *p;
	int len, rc;

	if ((len = i2d_PUBKEY(X509_get0_pubkey(sreq->signer), &key)) <= 0) {
		ra_fail(
		    ans, SCEP_FAILINFO_BAD_REQUEST, "unreadable signer key");
		goto out;
	}
	poll.transaction_id = sreq->transaction_id;
	poll.public_key.data = key;
	poll.public_key.len = (size_t)len;
	if (asked != NULL) {
		poll.has_csr = 1;
		poll.csr.data = asked->csr_der;
		poll.csr.len = asked->csr_der_len;
	}
	call.body_case = SCEP__V1__REQUEST__BODY_POLL;
	call.poll = &poll;
	rc = rpc_call(w->ca, &call, ra_budget_ms(w->ra, req), &reply);
	if (rc != RPC_OK ||
	    (reply->status != SCEP__V1__STATUS__STATUS_OK &&
	        reply->status != SCEP__V1__STATUS__STATUS_REFUSED) ||
	    reply->body_case != SCEP__V1__REPLY__BODY_POLL) {
		log_event(LOG_LEVEL_WARN, sreq->transaction_id, req->id,
		    "CA: %s",
		    rc != RPC_OK ? rpc_strerror(rc)
		                 : (reply->error ? reply->error : "?"));
		ans->unavailable = 1;
		goto out;
	}
	if (reply->status == SCEP__V1__STATUS__STATUS_REFUSED) {
		ra_fail(ans,
		    reply->poll->has_fail_info ? (int)reply->poll->fail_info
		                               : SCEP_FAILINFO_BAD_REQUEST,
		    rpc_strdup(arena, reply->error ? reply->error : "refused"));
		goto out;
	}
	if (reply->poll->has_pending && reply->poll->pending) {
		ans->pki_status = SCEP_STATUS_PENDING;
		goto out;
	}
	p = reply->poll->cert.data;
	if (!reply->poll->has_cert ||
	    (ans->issued = d2i_X509(NULL, &p, (long)reply->poll->cert.len)) ==
	        NULL) {
		ans->unavailable = 1;
		goto out;
	}
	ans->pki_status = SCEP_STATUS_SUCCESS;
out:
	scep__v1__reply__free_unpacked(reply, NULL);
	OPENSSL_free(key);
}

/*
 * CertPoll (20, GetCertInitial): the device asks about a PENDING request.
 * The CA answers only the transaction's own key: the signer's, the key
 * of the CSR that asked (RFC 8894 3.3.3).
 */
static void
ra_certpoll(struct ra_worker *w, const Scep__V1__Request *req,
    const struct scep_request *sreq, struct ra_answer *ans,
    struct rpc_arena *arena)
{
	struct scep_content content = {0};

	if (ra_open(w->ra, req, sreq, SCEP_CONTENT_ISSUER_SUBJECT, ans,
	        &content) != 0)
		goto out;
	/* The transactionID and the signer's key identify the request;
	 * clients disagree on the issuer they name (strongSwan 5.9 names the
	 * RA certificate's subject), so it is only logged. */
	if (!ra_issuer_is_ours(w->ra, content.issuer)) {
		char name[256];

		X509_NAME_oneline(content.issuer, name, sizeof(name));
		log_event(LOG_LEVEL_DEBUG, sreq->transaction_id, req->id,
		    "CertPoll names issuer %s, not the CA", name);
	}
	ra_ca_poll(w, req, sreq, NULL, ans, arena);
out:
	scep_content_clear(&content);
}

/*
 * The CA's ledger entry of `serial` (LedgerShow): 0 with *reply holding it
 * (the caller frees), 1 when the CA has no such certificate, -1 when it
 * did not answer (ans unavailable).
 */
static int
ra_ledger_show(struct ra_worker *w, const Scep__V1__Request *req,
    const ASN1_INTEGER *serial, struct ra_answer *ans, Scep__V1__Reply **reply)
{
	Scep__V1__Request call = SCEP__V1__REQUEST__INIT;
	Scep__V1__LedgerShowRequest show = SCEP__V1__LEDGER_SHOW_REQUEST__INIT;
	BIGNUM *bn = ASN1_INTEGER_to_BN(serial, NULL);
	char *hex = bn != NULL ? BN_bn2hex(bn) : NULL, padded[80];
	int rc = 1;

	*reply = NULL;
	if (hex == NULL || strlen(hex) > 32)
		goto out;
	/* The ledger's serials are 32 hex digits. */
	snprintf(padded, sizeof(padded), "%.*s%s", (int)(32 - strlen(hex)),
	    "00000000000000000000000000000000", hex);
	show.serial = padded;
	call.body_case = SCEP__V1__REQUEST__BODY_LEDGER_SHOW;
	call.ledger_show = &show;
	rc = rpc_call(w->ca, &call, ra_budget_ms(w->ra, req), reply);
	if (rc != RPC_OK ||
	    ((*reply)->status != SCEP__V1__STATUS__STATUS_OK &&
	        (*reply)->status != SCEP__V1__STATUS__STATUS_REFUSED)) {
		ans->unavailable = 1;
		rc = -1;
		goto out;
	}
	rc = (*reply)->status == SCEP__V1__STATUS__STATUS_REFUSED ||
	        (*reply)->body_case != SCEP__V1__REPLY__BODY_LEDGER_SHOW ||
	        (*reply)->ledger_show->entry == NULL
	    ? 1
	    : 0;
out:
	if (rc != 0) {
		scep__v1__reply__free_unpacked(*reply, NULL);
		*reply = NULL;
	}
	OPENSSL_free(hex);
	BN_free(bn);
	return rc;
}

/*
 * GetCert (21): a certificate of this CA by issuer and serial, to a
 * requester that signs with a certificate of this CA (authenticated),
 * one still valid: not expired, not revoked.
 */
static void
ra_getcert(struct ra_worker *w, const Scep__V1__Request *req,
    const struct scep_request *sreq, struct ra_answer *ans,
    struct rpc_arena *arena)
{
	Scep__V1__Reply *reply = NULL;
	struct scep_content content = {0};
	const Scep__V1__LedgerEntry *e = NULL;
	const unsigned char *p;
	int rc;

	(void)arena;
	if (!ra_signer_is_ours(w->ra, sreq->signer, 0)) {
		ra_fail(ans, SCEP_FAILINFO_BAD_REQUEST,
		    "GetCert is answered to holders of a certificate of this "
		    "CA: sign the request with it");
		goto out;
	}
	if (X509_cmp_time(X509_get0_notAfter(sreq->signer), NULL) <= 0) {
		ra_fail(ans, SCEP_FAILINFO_BAD_REQUEST,
		    "the signer certificate has expired: GetCert is answered "
		    "to holders of a valid certificate of this CA");
		goto out;
	}
	if ((rc = ra_ledger_show(w, req, X509_get0_serialNumber(sreq->signer),
	         ans, &reply)) < 0)
		goto out;
	if (rc > 0 || reply->ledger_show->entry->status == NULL ||
	    strcmp(reply->ledger_show->entry->status, "issued") != 0) {
		log_event(LOG_LEVEL_WARN, sreq->transaction_id, req->id,
		    "GetCert signed by a certificate the ledger has %s",
		    rc > 0 ? "not" : "revoked");
		ra_fail(ans, SCEP_FAILINFO_BAD_REQUEST,
		    "the signer certificate is revoked (or not in this CA's "
		    "ledger): GetCert is answered to holders of a valid "
		    "certificate of this CA");
		goto out;
	}
	scep__v1__reply__free_unpacked(reply, NULL);
	reply = NULL;
	if (ra_open(w->ra, req, sreq, SCEP_CONTENT_ISSUER_SERIAL, ans,
	        &content) != 0)
		goto out;
	if (!ra_issuer_is_ours(w->ra, content.issuer) ||
	    (rc = ra_ledger_show(w, req, content.serial, ans, &reply)) > 0 ||
	    (rc == 0 && !(e = reply->ledger_show->entry)->has_cert)) {
		ra_fail(ans, SCEP_FAILINFO_BAD_CERT_ID,
		    "no such certificate at this CA");
		goto out;
	}
	if (rc < 0)
		goto out;
	p = e->cert.data;
	if ((ans->issued = d2i_X509(NULL, &p, (long)e->cert.len)) == NULL) {
		ans->unavailable = 1;
		goto out;
	}
	/* The ledger holds the certificates of a CA this one replaced too,
	 * whose serials name none of this CA's (and it may bear the same
	 * name): the issuer and serial asked are this CA's. */
	if (!pki_issued_by(ans->issued, sk_X509_value(w->ra->ca_chain, 0))) {
		X509_free(ans->issued);
		ans->issued = NULL;
		ra_fail(ans, SCEP_FAILINFO_BAD_CERT_ID,
		    "no such certificate at this CA");
		goto out;
	}
	ans->pki_status = SCEP_STATUS_SUCCESS;
out:
	scep__v1__reply__free_unpacked(reply, NULL);
	scep_content_clear(&content);
}

/* How many CAs of [ra] PreviousCACertificate bear the name `issuer`; *one
 * the first of them. */
static int
ra_previous_named(const struct ra *ra, const X509_NAME *issuer, X509 **one)
{
	int n = 0;

	*one = NULL;
	for (int i = 0; i < sk_X509_num(ra->previous_cas); i++) {
		X509 *ca = sk_X509_value(ra->previous_cas, i);

		if (X509_NAME_cmp(issuer, X509_get_subject_name(ca)) == 0 &&
		    n++ == 0)
			*one = ca;
	}
	return n;
}

/*
 * The CA replaced whose CRL a GetCRL naming `content`'s issuer and serial
 * asks for, into *want (NULL: the CA's own): by the name when one CA
 * replaced bears it and this CA does not; else (a CA replaced under this
 * CA's name, as AD CS renews one, or several under one name) by the
 * issuer of the ledger's certificate of that serial: GetCRL names an
 * issuer by name only. 0, or -1 when `ans` holds the answer.
 */
static int
ra_getcrl_issuer(struct ra_worker *w, const Scep__V1__Request *req,
    const struct scep_content *content, struct ra_answer *ans, X509 **want)
{
	const struct ra *ra = w->ra;
	Scep__V1__Reply *reply = NULL;
	const unsigned char *p;
	X509 *one, *cert = NULL;
	int ours = ra_issuer_is_ours(ra, content->issuer), rc,
	    named = ra_previous_named(ra, content->issuer, &one);

	*want = NULL;
	if (named == 0) {
		if (ours)
			return 0;
		ra_fail(ans, SCEP_FAILINFO_BAD_CERT_ID,
		    "GetCRL names another CA as issuer");
		return -1;
	}
	if (!ours && named == 1) {
		*want = one;
		return 0;
	}
	if ((rc = ra_ledger_show(w, req, content->serial, ans, &reply)) < 0)
		return -1;
	if (rc == 0) {
		p = reply->ledger_show->entry->cert.data;
		cert = d2i_X509(
		    NULL, &p, (long)reply->ledger_show->entry->cert.len);
	}
	if (cert != NULL &&
	    X509_NAME_cmp(X509_get_issuer_name(cert), content->issuer) == 0 &&
	    !pki_issued_by(cert, sk_X509_value(ra->ca_chain, 0)))
		*want = pki_issuer_among(cert, ra->previous_cas);
	X509_free(cert);
	ERR_clear_error();
	scep__v1__reply__free_unpacked(reply, NULL);
	if (*want == NULL && !ours) {
		ra_fail(ans, SCEP_FAILINFO_BAD_CERT_ID,
		    "GetCRL names CAs replaced that bear one name, and a "
		    "serial the ledger holds no certificate of theirs under: "
		    "whose CRL it asks for is unknown");
		return -1;
	}
	return 0;
}

/* Whether the CA's GetCrlReply is a CRL `ca` verifies: signed under its
 * name with its key (GetCrlReply.issuer, .issuer_key_sha256), whichever
 * certificate of that key the CA holds. */
static int
ra_crl_is_of(const Scep__V1__GetCrlReply *crl, X509 *ca)
{
	const unsigned char *p = crl->issuer.data;
	unsigned char sha[EVP_MAX_MD_SIZE];
	unsigned int sha_len = 0;
	X509_NAME *name;
	int same;

	if (!crl->has_issuer || !crl->has_issuer_key_sha256 ||
	    X509_pubkey_digest(ca, EVP_sha256(), sha, &sha_len) != 1 ||
	    crl->issuer_key_sha256.len != sha_len ||
	    memcmp(sha, crl->issuer_key_sha256.data, sha_len) != 0 ||
	    (name = d2i_X509_NAME(NULL, &p, (long)crl->issuer.len)) == NULL)
		return 0;
	same = X509_NAME_cmp(name, X509_get_subject_name(ca)) == 0;
	X509_NAME_free(name);
	return same;
}

/*
 * GetCRL (22): the CA's current CRL; CRLs are public, any signer. One
 * naming a CA this one replaced (PreviousCACertificate) gets that CA's,
 * which the CA signs with [ca] PreviousCAKey (ra_getcrl_issuer).
 */
static void
ra_getcrl(struct ra_worker *w, const Scep__V1__Request *req,
    const struct scep_request *sreq, struct ra_answer *ans,
    struct rpc_arena *arena)
{
	Scep__V1__Request call = SCEP__V1__REQUEST__INIT;
	Scep__V1__GetCrlRequest body = SCEP__V1__GET_CRL_REQUEST__INIT;
	Scep__V1__Reply *reply = NULL;
	struct scep_content content = {0};
	X509 *want = NULL; /* the CA replaced whose CRL; NULL: this CA's */
	int rc;

	if (ra_open(w->ra, req, sreq, SCEP_CONTENT_ISSUER_SERIAL, ans,
	        &content) != 0 ||
	    ra_getcrl_issuer(w, req, &content, ans, &want) != 0)
		goto out;
	body.has_previous_ca = body.previous_ca = want != NULL;
	call.body_case = SCEP__V1__REQUEST__BODY_GET_CRL;
	call.get_crl = &body;
	rc = rpc_call(w->ca, &call, ra_budget_ms(w->ra, req), &reply);
	if (want != NULL && rc == RPC_OK &&
	    reply->status == SCEP__V1__STATUS__STATUS_REFUSED) {
		/* The CA's reason: no PreviousCAKey, or that CA expired
		 * before any CRL of it was made. */
		const char *why = reply->error ? reply->error : "refused";
		size_t len = strlen(why) + 64;
		char *text = rpc_alloc(arena, len);

		log_event(LOG_LEVEL_WARN, sreq->transaction_id, req->id,
		    "GetCRL names the CA replaced: %s", why);
		snprintf(
		    text, len, "GetCRL names a CA this one replaced: %s", why);
		ra_fail(ans, SCEP_FAILINFO_BAD_CERT_ID, text);
		goto out;
	}
	if (rc != RPC_OK || reply->status != SCEP__V1__STATUS__STATUS_OK ||
	    reply->body_case != SCEP__V1__REPLY__BODY_GET_CRL) {
		ans->unavailable = 1;
		goto out;
	}
	if (want != NULL && !ra_crl_is_of(reply->get_crl, want)) {
		ra_fail(ans, SCEP_FAILINFO_BAD_CERT_ID,
		    "GetCRL names a CA this one replaced, whose CRL is not "
		    "signed here ([ca] PreviousCAKey is another's)");
		goto out;
	}
	if (ra_crl_answer(
	        want != NULL ? w->ra->previous_crl_cache : w->ra->crl_cache,
	        reply->get_crl->crl.data, reply->get_crl->crl.len, arena,
	        &ans->certs_only, &ans->certs_only_len) != 0) {
		ans->unavailable = 1;
		goto out;
	}
	ans->pki_status = SCEP_STATUS_SUCCESS;
out:
	scep__v1__reply__free_unpacked(reply, NULL);
	scep_content_clear(&content);
}

typedef void (*ra_operation_handler)(struct ra_worker *,
    const Scep__V1__Request *, const struct scep_request *, struct ra_answer *,
    struct rpc_arena *);

/* The message types this RA answers. Anything else: FAILURE badRequest. */
static const struct ra_operation {
	int message_type;
	ra_operation_handler handler;
} ra_operations[] = {
    {SCEP_MSG_PKCSREQ, ra_pkcsreq},
    {SCEP_MSG_RENEWALREQ, ra_pkcsreq},
    {SCEP_MSG_CERTPOLL, ra_certpoll},
    {SCEP_MSG_GETCERT, ra_getcert},
    {SCEP_MSG_GETCRL, ra_getcrl},
    {0, NULL},
};

static const struct ra_operation *
ra_operation_find(int message_type)
{
	for (const struct ra_operation *op = ra_operations; op->handler; op++)
		if (op->message_type == message_type)
			return op;
	return NULL;
}

void
ra_handle_pki_operation(void *worker, const Scep__V1__Request *req,
    Scep__V1__Reply *reply, struct rpc_arena *arena)
{
	struct ra_worker *w = worker;
	const struct ra *ra = w->ra;
	const Scep__V1__PkiOperationRequest *op = req->pki_operation;
	Scep__V1__PkiOperationReply *body;
	struct scep_request *sreq = NULL;
	struct ra_answer ans = {.pki_status = SCEP_STATUS_FAILURE,
	    .failinfo = SCEP_FAILINFO_BAD_REQUEST,
	    .cipher_nid = NID_undef};
	struct scep_certrep_params params;
	const struct ra_operation *handler;
	const char *why = NULL;
	int failinfo = SCEP_FAILINFO_NONE, rc, let_in;
	uint8_t *out = NULL;
	size_t out_len = 0;

	rc = scep_request_parse(op->message.data, op->message.len, &ra->policy,
	    &sreq, &failinfo, &why);
	if (rc != SCEP_OK && (failinfo == SCEP_FAILINFO_NONE || sreq == NULL)) {
		log_event(LOG_LEVEL_WARN, NULL, req->id,
		    "unanswerable pkiMessage from %s: %s",
		    op->client_addr ? op->client_addr : "?", why);
		reply->status = SCEP__V1__STATUS__STATUS_BAD_REQUEST;
		reply->error = (char *)why;
		ra_count(RA_OUTCOME_UNANSWERABLE, 0);
		goto out;
	}
	if (rc != SCEP_OK) {
		log_event(LOG_LEVEL_WARN, sreq->transaction_id, req->id,
		    "%s refused: %s",
		    scep_message_type_name(sreq->message_type), why);
		ra_fail(&ans, failinfo, why);
	} else if ((handler = ra_operation_find(sreq->message_type)) == NULL) {
		char *text = rpc_alloc(arena, 96);

		snprintf(text, 96, "messageType %d (%s) is not supported",
		    sreq->message_type,
		    scep_message_type_name(sreq->message_type));
		log_event(
		    LOG_LEVEL_WARN, sreq->transaction_id, req->id, "%s", text);
		ra_fail(&ans, SCEP_FAILINFO_BAD_REQUEST, text);
	} else
		handler->handler(w, req, sreq, &ans, arena);

	/* Legacy switches: each use logged and counted (/metrics), by a
	 * request whose envelope opened (not garbage sent to inflate them);
	 * not one refused with badAlg, which no switch let in (the
	 * envelope's cipher is read before the policy refuses it). */
	let_in = ans.opened &&
	    (ans.pki_status != SCEP_STATUS_FAILURE ||
	        ans.failinfo != SCEP_FAILINFO_BAD_ALG);
	if (let_in &&
	    (ans.cipher_nid == NID_des_ede3_cbc ||
	        ans.cipher_nid == NID_des_cbc))
		ra_count_legacy(ans.cipher_nid == NID_des_cbc ? RA_LEGACY_DES
		                                              : RA_LEGACY_DES3);
	if (let_in && ans.cipher_nid == NID_des_ede3_cbc)
		log_event(LOG_LEVEL_INFO, sreq->transaction_id, req->id,
		    "3DES envelope accepted: AllowDES3 = 1");
	if (let_in && sreq->digest_nid == NID_sha1) {
		ra_count_legacy(RA_LEGACY_SHA1);
		log_event(LOG_LEVEL_INFO, sreq->transaction_id, req->id,
		    "SHA-1 message digest accepted: AllowSHA1 = 1");
	}
	if (ans.unavailable) {
		reply->status = SCEP__V1__STATUS__STATUS_UNAVAILABLE;
		reply->error = "a service behind the RA did not answer";
		ra_count(RA_OUTCOME_UNAVAILABLE, 0);
		goto out;
	}
	if (ans.rate_limited > 0) {
		/* Not a FAILURE: the device is to come back, not give up. */
		reply->status = SCEP__V1__STATUS__STATUS_RATE_LIMITED;
		reply->error = "Too many refused challenge passwords from this "
		               "address; retry later.";
		reply->has_retry_after_s = 1;
		reply->retry_after_s = ans.rate_limited;
		ra_count(RA_OUTCOME_RATE_LIMITED, 0);
		goto out;
	}
	memset(&params, 0, sizeof(params));
	params.transaction_id = sreq->transaction_id;
	params.recipient_nonce = sreq->sender_nonce;
	params.recipient_nonce_len = sreq->sender_nonce_len;
	params.pki_status = ans.pki_status;
	params.failinfo = ans.failinfo;
	params.failinfo_text = ans.text;
	params.issued = ans.issued;
	params.certs_only = ans.certs_only;
	params.certs_only_len = ans.certs_only_len;
	params.recipient = sreq->signer;
	params.cipher = scep_reply_cipher(ans.cipher_nid);
	params.signer = ra->sign_cert;
	params.signer_key = ra->sign_key;
	params.digest = scep_reply_digest(sreq->digest_nid);
	if (scep_certrep_build(&params, &out, &out_len) != SCEP_OK) {
		log_openssl(LOG_LEVEL_ERROR, sreq->transaction_id,
		    "cannot build the CertRep");
		reply->status = SCEP__V1__STATUS__STATUS_INTERNAL;
		reply->error = "cannot build the CertRep";
		goto out;
	}
	rpc_adopt(arena, out);
	body = rpc_alloc(arena, sizeof(*body));
	scep__v1__pki_operation_reply__init(body);
	body->has_certrep = 1;
	body->certrep.data = out;
	body->certrep.len = out_len;
	reply->body_case = SCEP__V1__REPLY__BODY_PKI_OPERATION;
	reply->pki_operation = body;
	ra_count(ans.pki_status == SCEP_STATUS_SUCCESS  ? RA_OUTCOME_SUCCESS
	        : ans.pki_status == SCEP_STATUS_PENDING ? RA_OUTCOME_PENDING
	                                                : RA_OUTCOME_FAILURE,
	    ans.failinfo);
	if (ans.pki_status == SCEP_STATUS_FAILURE)
		log_event(LOG_LEVEL_INFO, sreq->transaction_id, req->id,
		    "answered FAILURE %s: %s", scep_failinfo_name(ans.failinfo),
		    ans.text ? ans.text : "");
out:
	X509_free(ans.issued);
	scep_request_free(sreq);
	ERR_clear_error();
}
