/*
 * Manual approval (a template with ApprovalRequired = 1): a request that
 * passed every check waits in `pending` (transactionID -> JSON with the
 * CSR) and the device gets PENDING. It polls (CertPoll), bound to its own
 * key, until an operator runs `scepctl approve TXID` (the CA checks the
 * request again with today's rules, under the template it was asked
 * under, issues, and the next poll gets the certificate while it is
 * valid) or `scepctl reject TXID --reason ...` (the next poll gets
 * FAILURE with that reason). Pending requests expire after PendingDays;
 * expired and rejected records are kept CA_PENDING_KEPT_DAYS more (a poll
 * meanwhile is told why, not "unknown transaction"), then purged. A
 * rejection or a purge drops the transaction's journal record too: what
 * an interrupted approval journalled is never signed after them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "ca.h"
#include "subject.h"
#include "log.h"
#include "store.h"
#include "x509parse.h"

#define PENDING_REJECTED "rejected"
#define CA_PENDING_PURGE_EVERY 3600 /* s */

/* Now, as pending records are judged (a test hook ages them). */
static time_t
pending_now(const struct ca *ca, time_t now)
{
#ifdef SCEPD_TEST_HOOKS
	now += ca->pending_age;
#else
	(void)ca;
#endif
	return now;
}

/* Whether DER request bytes hold a challengePassword attribute. */
static int
pending_has_challenge(const unsigned char *der, long len)
{
	EVP_PKEY *key = NULL;
	X509_REQ *req = x509parse_req(&der, len, &key);
	int has = req == NULL ||
	    X509_REQ_get_attr_by_NID(req, NID_pkcs9_challengePassword, -1) >= 0;

	X509_REQ_free(req);
	EVP_PKEY_free(key);
	return has;
}

/*
 * The CSR (verified by ca_csr_read) as the CA keeps it until an operator
 * decides: without its challengePassword, which the RA checked and no
 * one needs again, and which is not to rest on the CA's disk (a single
 * password is otherwise kept only as a hash). The self-signature no
 * longer covers what is left: an approval reads it with as_sent = 0.
 * The rest is written out as it was read (OpenSSL keeps each part's
 * fields, the key's algorithm included). *len is the DER's length; NULL
 * on failure, and when the attribute is still there: OpenSSL before
 * 3.0.6 wrote a request's bytes as read whatever was deleted from it.
 */
static unsigned char *
pending_csr_kept(const Scep__V1__SignRequest *in, int *len)
{
	const unsigned char *p = in->csr.data;
	EVP_PKEY *key = NULL;
	X509_REQ *req = x509parse_req(&p, (long)in->csr.len, &key);
	unsigned char *der = NULL;
	int loc;

	*len = -1;
	if (req != NULL) {
		while ((loc = X509_REQ_get_attr_by_NID(
		            req, NID_pkcs9_challengePassword, -1)) >= 0)
			X509_ATTRIBUTE_free(X509_REQ_delete_attr(req, loc));
		*len = i2d_X509_REQ(req, &der);
	}
	if (*len > 0 && pending_has_challenge(der, *len)) {
		log_error("a pending request's challengePassword cannot be "
		          "taken out (OpenSSL before 3.0.6?): not kept");
		OPENSSL_free(der);
		der = NULL;
	}
	X509_REQ_free(req);
	EVP_PKEY_free(key);
	ERR_clear_error();
	return der;
}

int
ca_pending_put(const struct ca *ca, MDB_txn *txn,
    const Scep__V1__SignRequest *in, const struct ca_template *tpl, time_t now)
{
	unsigned char *b64 = NULL, *der;
	json_t *o = NULL;
	char *text = NULL;
	MDB_val key = {strlen(in->transaction_id), in->transaction_id}, val;
	int len, e = ENOMEM;

#ifdef SCEPD_TEST_HOOKS
	if (ca->pending_put_fails)
		return MDB_MAP_FULL;
#endif
	if ((der = pending_csr_kept(in, &len)) == NULL ||
	    (b64 = malloc(4 * (((size_t)len + 2) / 3) + 1)) == NULL)
		goto out;
	EVP_EncodeBlock(b64, der, len);
	o = json_pack("{s:s, s:b, s:s, s:s, s:I, s:s}", "csr", (char *)b64,
	    "csr_without_challenge", 1, "template", tpl->name, "client",
	    in->client_addr ? in->client_addr : "", "time", (json_int_t)now,
	    "state", "pending");
	if (o != NULL && (text = json_dumps(o, JSON_COMPACT)) != NULL) {
		val.mv_size = strlen(text);
		val.mv_data = text;
		e = mdb_put(txn, ca->pending, &key, &val, 0);
	}
	/* A new request (none was held, or it expired): what an approval
	 * of an earlier one journalled before the CA stopped was never
	 * delivered, and is not to be signed, backdated, when this one is
	 * approved (as at a purge or a rejection). */
	if (e == 0)
		e = ca_journal_del(ca, txn, in->transaction_id);
out:
	free(text);
	json_decref(o);
	free(b64);
	OPENSSL_free(der);
	return e;
}

int
ca_pending_rejected(
    const struct ca *ca, MDB_txn *txn, const char *txid, char *why, size_t len)
{
	MDB_val key = {strlen(txid), (void *)txid}, val;
	json_t *o;
	const char *state, *reason;
	int rejected;

	if (mdb_get(txn, ca->pending, &key, &val) != 0 ||
	    (o = json_loadb(val.mv_data, val.mv_size, 0, NULL)) == NULL)
		return 0;
	state = json_string_value(json_object_get(o, "state"));
	reason = json_string_value(json_object_get(o, "reason"));
	rejected = state != NULL && strcmp(state, PENDING_REJECTED) == 0;
	if (rejected)
		snprintf(why, len, "rejected by the CA operator: %s",
		    reason != NULL ? reason : "no reason given");
	json_decref(o);
	return rejected;
}

/* The record of `txid`, or NULL (and *e an MDB_* code, MDB_NOTFOUND). */
static json_t *
pending_get(const struct ca *ca, MDB_txn *txn, const char *txid, int *e)
{
	MDB_val key = {strlen(txid), (void *)txid}, val;
	json_t *o;

	if ((*e = mdb_get(txn, ca->pending, &key, &val)) != 0)
		return NULL;
	if ((o = json_loadb(val.mv_data, val.mv_size, 0, NULL)) == NULL)
		*e = MDB_CORRUPTED;
	return o;
}

/* The CSR kept in a record; NULL if unreadable. */
static X509_REQ *
pending_csr(json_t *o, unsigned char **der, size_t *len)
{
	const char *b64 = json_string_value(json_object_get(o, "csr"));
	const unsigned char *p;
	size_t n;
	int out;
	X509_REQ *csr;

	*der = NULL;
	if (b64 == NULL || (n = strlen(b64)) == 0 || n % 4 != 0 ||
	    (*der = malloc(n)) == NULL)
		return NULL;
	if ((out = EVP_DecodeBlock(*der, (const unsigned char *)b64, (int)n)) <
	    0)
		return NULL;
	/* EVP_DecodeBlock counts the padding as zero bytes. */
	*len = (size_t)out - (b64[n - 1] == '=') - (b64[n - 2] == '=');
	p = *der;
	csr = d2i_X509_REQ(NULL, &p, (long)*len);
	return csr;
}

/* A time of record `o`: as the CA wrote it (time(NULL)), or a damaged
 * one held within 0 .. the year 9999, so that days added to it cannot
 * overflow. */
#define PENDING_TIME_MAX ((time_t)253402300799)
static time_t
pending_time(json_t *o, const char *key)
{
	json_int_t t = json_integer_value(json_object_get(o, key));

	return t < 0 ? 0 : t > PENDING_TIME_MAX ? PENDING_TIME_MAX : (time_t)t;
}

/* When the request of record `o` expires (or expired). */
static time_t
pending_expiry(const struct ca *ca, json_t *o)
{
	return pending_time(o, "time") +
	    (time_t)ca->settings.pending_days * 86400;
}

static int
pending_expired(const struct ca *ca, json_t *o, time_t now)
{
	return pending_expiry(ca, o) <= pending_now(ca, now);
}

/* Whether two CSRs ask for what an operator sees (`list --pending`): the
 * same subject and SANs, these in any order. Their bytes may differ (a
 * password attribute, another signature). */
static int
pending_asks_the_same(X509_REQ *a, X509_REQ *b)
{
	GENERAL_NAMES *na = NULL, *nb = NULL;
	int same = X509_NAME_cmp(X509_REQ_get_subject_name(a),
	               X509_REQ_get_subject_name(b)) == 0 &&
	    ca_csr_san_names(a, &na) == 0 && ca_csr_san_names(b, &nb) == 0 &&
	    ca_names_within(na, nb) && ca_names_within(nb, na);

	GENERAL_NAMES_free(na);
	GENERAL_NAMES_free(nb);
	ERR_clear_error();
	return same;
}

int
ca_pending_held(const struct ca *ca, MDB_txn *txn, const char *txid,
    X509_REQ *csr, const uint8_t *der, size_t len,
    const struct ca_template *tpl, time_t now)
{
	const char *asked;
	json_t *o;
	unsigned char *held_der = NULL;
	size_t held_len = 0;
	X509_REQ *held = NULL;
	int e, what;

	if ((o = pending_get(ca, txn, txid, &e)) == NULL)
		return e == MDB_NOTFOUND ? CA_PENDING_NONE : -1;
	held = pending_csr(o, &held_der, &held_len);
	if (held == NULL ||
	    EVP_PKEY_eq(
	        X509_REQ_get0_pubkey(held), X509_REQ_get0_pubkey(csr)) != 1)
		what = CA_PENDING_OTHER_KEY;
	else if (pending_expired(ca, o, now))
		what = CA_PENDING_NONE;
	/* Its template is part of what the operator sees: a key usage
	 * picking one without approval was issued at once, on the password
	 * the pending request presented, while the queue showed that. */
	else if ((asked = json_string_value(json_object_get(o, "template"))) !=
	        NULL &&
	    strcmp(asked, tpl->name) != 0)
		what = CA_PENDING_OTHER_CSR;
	else if ((held_len == len && memcmp(held_der, der, len) == 0) ||
	    pending_asks_the_same(held, csr))
		what = CA_PENDING_SAME;
	else
		what = CA_PENDING_OTHER_CSR;
	X509_REQ_free(held);
	free(held_der);
	json_decref(o);
	ERR_clear_error();
	return what;
}

/* A rejected request's record is kept as long as an expired one: from
 * its "decided" time (records before it: from the request's). */
static int
pending_purgeable(const struct ca *ca, json_t *o, time_t now)
{
	const char *state = json_string_value(json_object_get(o, "state"));
	time_t kept = (time_t)CA_PENDING_KEPT_DAYS * 86400, from;

	now = pending_now(ca, now);
	if (state != NULL && strcmp(state, PENDING_REJECTED) == 0) {
		if ((from = pending_time(o, "decided")) == 0)
			from = pending_time(o, "time");
		return from + kept <= now;
	}
	return pending_expiry(ca, o) + kept <= now;
}

void
ca_pending_purge(struct ca *ca, int force)
{
	time_t now = time(NULL);
	MDB_txn *txn = NULL;
	MDB_cursor *cur = NULL;
	MDB_val key, val;
	char txid[CA_TXID_MAX + 1];
	long purged = 0, stale = 0;
	int e;

	if (!force && now - ca->pending_purged_at < CA_PENDING_PURGE_EVERY)
		return;
	ca->pending_purged_at = now;
	store_readers_clear(ca->env, "ledger");
	if ((e = mdb_txn_begin(ca->env, NULL, 0, &txn)) != 0 ||
	    (e = mdb_cursor_open(txn, ca->pending, &cur)) != 0)
		goto out;
	for (e = mdb_cursor_get(cur, &key, &val, MDB_FIRST); e == 0;
	     e = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
		json_t *o = json_loadb(val.mv_data, val.mv_size, 0, NULL);
		int old = o != NULL && pending_purgeable(ca, o, now);

		json_decref(o);
		if (!old) /* unreadable ones too: for the operator to see */
			continue;
		log_info("pending request %.*s purged: expired or rejected "
		         "more than %d days ago",
		    (int)key.mv_size, (const char *)key.mv_data,
		    CA_PENDING_KEPT_DAYS);
		/* With what an approval the CA did not finish journalled:
		 * never delivered, and not to be signed, backdated, for a
		 * request the same key makes again. */
		if (key.mv_size < sizeof(txid)) {
			memcpy(txid, key.mv_data, key.mv_size);
			txid[key.mv_size] = '\0';
			if ((e = ca_journal_del(ca, txn, txid)) != 0)
				goto out;
		}
		if ((e = mdb_cursor_del(cur, 0)) != 0)
			goto out;
		purged++;
	}
	if (e != MDB_NOTFOUND)
		goto out;
	mdb_cursor_close(cur);
	cur = NULL;
	if ((e = ca_journal_purge(ca, txn, now, &stale)) != 0)
		goto out;
	/* Nothing deleted: no commit, no flush. */
	if (purged > 0 || stale > 0)
		e = mdb_txn_commit(txn);
	else
		mdb_txn_abort(txn);
	txn = NULL;
out:
	if (cur != NULL)
		mdb_cursor_close(cur);
	if (txn != NULL)
		mdb_txn_abort(txn);
	if (e != 0)
		log_error("pending requests not purged: %s", store_strerror(e));
}

Scep__V1__LedgerEntry *
ca_pending_entry(const struct ca *ca, const MDB_val *key, const MDB_val *val,
    struct rpc_arena *arena)
{
	json_t *o = json_loadb(val->mv_data, val->mv_size, 0, NULL);
	Scep__V1__LedgerEntry *e = NULL;
	unsigned char *der = NULL;
	size_t len = 0;
	X509_REQ *csr = NULL;
	char **sans = NULL;
	const char *state, *v;

	if (o == NULL || (csr = pending_csr(o, &der, &len)) == NULL)
		goto out;
	e = rpc_alloc(arena, sizeof(*e));
	scep__v1__ledger_entry__init(e);
	e->serial = "";
	e->transaction_id = rpc_alloc(arena, key->mv_size + 1);
	memcpy(e->transaction_id, key->mv_data, key->mv_size);
	e->transaction_id[key->mv_size] = '\0';
	e->subject = ca_subject_line(X509_REQ_get_subject_name(csr), arena);
	v = json_string_value(json_object_get(o, "client"));
	e->client_addr = rpc_strdup(arena, v != NULL ? v : "");
	v = json_string_value(json_object_get(o, "template"));
	e->template_name = rpc_strdup(arena, v != NULL ? v : "");
	e->has_time = 1;
	e->time = pending_time(o, "time");
	e->has_not_after = 1;
	e->not_after = pending_expiry(ca, o);
	state = json_string_value(json_object_get(o, "state"));
	if (state != NULL && strcmp(state, PENDING_REJECTED) == 0) {
		v = json_string_value(json_object_get(o, "reason"));
		e->status = PENDING_REJECTED;
		e->reason = rpc_strdup(arena, v != NULL ? v : "");
	} else
		e->status =
		    pending_expired(ca, o, time(NULL)) ? "expired" : "pending";
	if ((sans = ca_csr_sans(csr)) != NULL) {
		size_t n = 0;

		while (sans[n] != NULL)
			n++;
		e->sans = rpc_alloc(arena, (n ? n : 1) * sizeof(*e->sans));
		for (e->n_sans = 0; e->n_sans < n; e->n_sans++)
			e->sans[e->n_sans] = rpc_strdup(arena, sans[e->n_sans]);
	}
out:
	ca_strings_free(sans);
	X509_REQ_free(csr);
	free(der);
	json_decref(o);
	ERR_clear_error();
	return e;
}

static void
poll_refuse(Scep__V1__Reply *reply, int fail_info, const char *why,
    struct rpc_arena *arena)
{
	Scep__V1__PollReply *out = rpc_alloc(arena, sizeof(*out));

	scep__v1__poll_reply__init(out);
	out->has_fail_info = 1;
	out->fail_info = fail_info;
	reply->status = SCEP__V1__STATUS__STATUS_REFUSED;
	reply->error = rpc_strdup(arena, why);
	reply->body_case = SCEP__V1__REPLY__BODY_POLL;
	reply->poll = out;
}

/*
 * A PKCSReq answered as a poll (PollRequest.csr): 1 when its CSR asks what
 * the transaction's certificate `cert` (`serial`) holds or, `cert` NULL,
 * what its pending request asks, as a PKCSReq sent again is checked
 * (sign.c); else 0 with `reply` refused, or -1 with an internal error.
 */
static int
poll_asks_the_same(const struct ca *ca, MDB_txn *txn,
    const Scep__V1__PollRequest *in, const char *serial, X509 *cert,
    Scep__V1__Reply *reply, struct rpc_arena *arena)
{
	struct ca_refusal refusal;
	const struct ca_template *tpl = NULL;
	X509_REQ *asked = NULL;
	char why[300];
	int same, held;

	memset(&refusal, 0, sizeof(refusal));
	if (ca_csr_read(ca, in->csr.data, in->csr.len, 1, &asked, &tpl,
	        &refusal) != 0) {
		poll_refuse(reply, refusal.fail_info, refusal.why, arena);
		return 0;
	}
	if (cert != NULL)
		same =
		    ca_retry_asks_the_same(ca, txn, serial, cert, asked, tpl);
	else {
		held = ca_pending_held(ca, txn, in->transaction_id, asked,
		    in->csr.data, in->csr.len, tpl, time(NULL));
		same = held < 0 ? -1 : held == CA_PENDING_SAME;
	}
	X509_REQ_free(asked);
	if (same < 0) {
		reply->status = SCEP__V1__STATUS__STATUS_INTERNAL;
		reply->error = "the CA cannot read its ledger now";
	} else if (same == 0) {
		snprintf(why, sizeof(why), CA_RETRY_OTHER_REQUEST, serial);
		poll_refuse(reply, SCEP__V1__FAIL_INFO__FAIL_BAD_REQUEST,
		    cert != NULL ? why : CA_PENDING_OTHER_REQUEST, arena);
		log_event(LOG_LEVEL_WARN, in->transaction_id, 0,
		    "a PKCSReq answered as a poll asks another %s",
		    cert != NULL ? "certificate than the transaction's"
		                 : "request than the one pending");
	}
	return same;
}

void
ca_handle_poll(void *worker, const Scep__V1__Request *req,
    Scep__V1__Reply *reply, struct rpc_arena *arena)
{
	const struct ca *ca = worker;
	const Scep__V1__PollRequest *in = req->poll;
	const unsigned char *p = in->public_key.data;
	EVP_PKEY *asker = d2i_PUBKEY(NULL, &p, (long)in->public_key.len);
	Scep__V1__PollReply *out;
	const uint8_t *der;
	size_t der_len;
	char serial[CA_SERIAL_HEX], why[300];
	unsigned char *csr_der = NULL;
	size_t csr_len = 0;
	X509_REQ *csr = NULL;
	X509 *cert = NULL;
	MDB_txn *txn = NULL;
	json_t *o = NULL;
	const char *state;
	int e, found;

	if (asker == NULL || in->transaction_id == NULL) {
		reply->status = SCEP__V1__STATUS__STATUS_BAD_REQUEST;
		reply->error = "CertPoll without a key or transactionID";
		goto out;
	}
	/* Longer than any the CA keeps (the RA takes one more): unknown,
	 * the device's to hear, not an outage (503 for ever). */
	if (strlen(in->transaction_id) > CA_TXID_MAX) {
		poll_refuse(reply, SCEP__V1__FAIL_INFO__FAIL_BAD_CERT_ID,
		    "no such transaction at this CA", arena);
		goto out;
	}
	if ((e = mdb_txn_begin(ca->env, NULL, MDB_RDONLY, &txn)) != 0) {
		reply->status = SCEP__V1__STATUS__STATUS_INTERNAL;
		reply->error = "the CA cannot read its ledger now";
		goto out;
	}
	/* Issued (approved): the certificate, to its own key only. */
	found = ca_ledger_find_txid(
	    ca, txn, in->transaction_id, &der, &der_len, serial);
	if (found < 0) {
		/* Not "unknown": after an approval the pending record is
		 * gone, and the device would be told to give up. */
		reply->status = SCEP__V1__STATUS__STATUS_INTERNAL;
		reply->error = "the CA cannot read its ledger now";
		goto out;
	}
	if (found == 0) {
		p = der;
		cert = d2i_X509(NULL, &p, (long)der_len);
		if (cert == NULL ||
		    EVP_PKEY_eq(X509_get0_pubkey(cert), asker) != 1) {
			/* The device hears what an unknown one gets: its
			 * answer must not tell who enrolled. */
			poll_refuse(reply,
			    SCEP__V1__FAIL_INFO__FAIL_BAD_CERT_ID,
			    "no such transaction at this CA", arena);
			log_event(LOG_LEVEL_WARN, in->transaction_id, req->id,
			    "poll by another key than the issued "
			    "certificate's");
			goto out;
		}
		/* Revoked or expired since it was approved, or its key
		 * compromised: not handed out, as a PKCSReq sent again would
		 * not get it (sign.c). A PKCSReq answered as a poll (its
		 * password refused) is that PKCSReq, and is not given a
		 * replaced CA's certificate either; a device's CertPoll is,
		 * approved before the switch. */
		if ((e = ca_held_cert_refused(ca, txn, serial, cert,
		         in->has_csr, why, sizeof(why))) != 0) {
			if (e < 0) {
				reply->status =
				    SCEP__V1__STATUS__STATUS_INTERNAL;
				reply->error =
				    "the CA cannot read its ledger now";
				goto out;
			}
			poll_refuse(reply,
			    SCEP__V1__FAIL_INFO__FAIL_BAD_REQUEST, why, arena);
			log_event(LOG_LEVEL_WARN, in->transaction_id, req->id,
			    "poll: %s", why);
			goto out;
		}
		if (in->has_csr &&
		    poll_asks_the_same(
		        ca, txn, in, serial, cert, reply, arena) != 1)
			goto out;
		out = rpc_alloc(arena, sizeof(*out));
		scep__v1__poll_reply__init(out);
		out->has_cert = 1;
		out->cert.data = rpc_alloc(arena, der_len);
		memcpy(out->cert.data, der, der_len);
		out->cert.len = der_len;
		reply->body_case = SCEP__V1__REPLY__BODY_POLL;
		reply->poll = out;
		log_event(LOG_LEVEL_INFO, in->transaction_id, req->id,
		    "poll: approved, serial %s", serial);
		goto out;
	}
	if ((o = pending_get(ca, txn, in->transaction_id, &e)) == NULL) {
		poll_refuse(reply, SCEP__V1__FAIL_INFO__FAIL_BAD_CERT_ID,
		    "no such transaction at this CA", arena);
		log_event(LOG_LEVEL_WARN, in->transaction_id, req->id,
		    "poll for an unknown transaction");
		goto out;
	}
	if ((csr = pending_csr(o, &csr_der, &csr_len)) == NULL ||
	    EVP_PKEY_eq(X509_REQ_get0_pubkey(csr), asker) != 1) {
		poll_refuse(reply, SCEP__V1__FAIL_INFO__FAIL_BAD_CERT_ID,
		    "no such transaction at this CA", arena);
		log_event(LOG_LEVEL_WARN, in->transaction_id, req->id,
		    "poll by another key than the pending request's");
		goto out;
	}
	state = json_string_value(json_object_get(o, "state"));
	if (state != NULL && strcmp(state, PENDING_REJECTED) == 0) {
		snprintf(why, sizeof(why), "rejected by the CA operator: %s",
		    json_string_value(json_object_get(o, "reason"))
		        ? json_string_value(json_object_get(o, "reason"))
		        : "no reason given");
		poll_refuse(
		    reply, SCEP__V1__FAIL_INFO__FAIL_BAD_REQUEST, why, arena);
		goto out;
	}
	if (pending_expired(ca, o, time(NULL))) {
		snprintf(why, sizeof(why),
		    "no operator approved the request within PendingDays = "
		    "%ld: enroll anew",
		    ca->settings.pending_days);
		poll_refuse(
		    reply, SCEP__V1__FAIL_INFO__FAIL_BAD_REQUEST, why, arena);
		goto out;
	}
	if (in->has_csr &&
	    poll_asks_the_same(ca, txn, in, "", NULL, reply, arena) != 1)
		goto out;
	out = rpc_alloc(arena, sizeof(*out));
	scep__v1__poll_reply__init(out);
	out->has_pending = 1;
	out->pending = 1;
	reply->body_case = SCEP__V1__REPLY__BODY_POLL;
	reply->poll = out;
out:
	if (txn != NULL)
		mdb_txn_abort(txn);
	json_decref(o);
	free(csr_der);
	X509_REQ_free(csr);
	X509_free(cert);
	EVP_PKEY_free(asker);
	ERR_clear_error();
}

static void
decide_refuse(Scep__V1__Reply *reply, const char *why, struct rpc_arena *arena)
{
	reply->status = SCEP__V1__STATUS__STATUS_REFUSED;
	reply->error = rpc_strdup(arena, why);
}

void
ca_handle_decide(void *worker, const Scep__V1__Request *req,
    Scep__V1__Reply *reply, struct rpc_arena *arena)
{
	const struct ca *ca = worker;
	const Scep__V1__DecideRequest *in = req->decide;
	const char *txid = in->transaction_id;
	const char *by = in->decided_by ? in->decided_by : "?";
	Scep__V1__DecideReply *out;
	struct ca_ledger_entry entry;
	struct ca_refusal refusal;
	const struct ca_template *tpl = NULL;
	unsigned char *csr_der = NULL, *der = NULL;
	size_t csr_len = 0;
	char hex[CA_SERIAL_HEX], **sans = NULL, *text = NULL;
	const char *state, *asked;
	X509_REQ *csr = NULL, *checked = NULL;
	MDB_txn *txn = NULL;
	MDB_val key = {strlen(txid), (void *)txid}, val;
	json_t *o = NULL;
	time_t now = time(NULL);
	const uint8_t *issued_der;
	size_t issued_len;
	int e, found, refused, der_len = 0;

	/* The reason goes to the device as its failInfoText, after "rejected
	 * by the CA operator: ", whole: UTF-8 text that fits (a longer one
	 * was cut inside a character, one not UTF-8 dropped without a
	 * word). */
	if (in->reason != NULL &&
	    (strlen(in->reason) > CA_REJECT_REASON_MAX ||
	        !subject_text_ok(in->reason, strlen(in->reason)))) {
		decide_refuse(reply,
		    "the reason must be UTF-8 text without control "
		    "characters, at most " CA_REJECT_REASON_MAX_TEXT
		    " bytes (the device is sent it)",
		    arena);
		return;
	}
	if ((e = mdb_txn_begin(ca->env, NULL, 0, &txn)) != 0)
		goto internal;
	/* Issued already, whatever the pending record says or whether one
	 * is left: approved before (an approval scepctl stopped waiting
	 * for is sent again), or the device asked again under a template
	 * without approval. Nothing left to approve, and a rejection would
	 * not take the certificate back. */
	if ((found = ca_ledger_find_txid(
	         ca, txn, txid, &issued_der, &issued_len, hex)) < 0)
		goto internal;
	if (found == 0) {
		char why[200];
		int removed;

		e = mdb_del(txn, ca->pending, &key, NULL);
		if (e != 0 && e != MDB_NOTFOUND)
			goto internal; /* the transaction is aborted at out */
		if ((removed = e == 0)) {
			e = mdb_txn_commit(txn);
			txn = NULL;
			if (e != 0)
				goto internal;
		}
		snprintf(why, sizeof(why), "already issued: serial %s%s%s%s",
		    hex, removed ? "; the pending request is removed" : "",
		    in->approve ? "" : "; to withdraw it: scepctl revoke ",
		    in->approve ? "" : hex);
		log_event(LOG_LEVEL_WARN, txid, req->id, "%s by %s: %s",
		    in->approve ? "approval" : "rejection", by, why);
		decide_refuse(reply, why, arena);
		goto out;
	}
	if ((o = pending_get(ca, txn, txid, &e)) == NULL) {
		decide_refuse(reply,
		    e == MDB_NOTFOUND
		        ? "no pending request with this transactionID"
		        : "the pending request cannot be read",
		    arena);
		goto out;
	}
	state = json_string_value(json_object_get(o, "state"));
	if (state != NULL && strcmp(state, PENDING_REJECTED) == 0) {
		decide_refuse(reply, "already rejected", arena);
		goto out;
	}
	if (pending_expired(ca, o, now)) {
		decide_refuse(reply,
		    "expired (PendingDays): the device must "
		    "enroll anew",
		    arena);
		goto out;
	}
	if (!in->approve) {
		json_object_set_new(o, "state", json_string(PENDING_REJECTED));
		json_object_set_new(o, "reason",
		    json_string(in->reason ? in->reason : "no reason given"));
		json_object_set_new(o, "by", ca_ledger_text(by));
		json_object_set_new(o, "decided", json_integer(now));
		if ((text = json_dumps(o, JSON_COMPACT)) == NULL) {
			e = ENOMEM;
			goto internal;
		}
		val.mv_size = strlen(text);
		val.mv_data = text;
		/* What an approval the CA did not finish journalled goes
		 * too: a rejected request is not to be signed later. */
		if ((e = mdb_put(txn, ca->pending, &key, &val, 0)) != 0 ||
		    (e = ca_journal_del(ca, txn, txid)) != 0)
			goto internal;
		e = mdb_txn_commit(txn);
		txn = NULL;
		if (e != 0)
			goto internal;
		log_event(LOG_LEVEL_WARN, txid, req->id, "rejected by %s: %s",
		    by, in->reason ? in->reason : "no reason given");
		goto answer;
	}
	/* Approval: today's rules, not those of the day it was asked. */
	if ((csr = pending_csr(o, &csr_der, &csr_len)) == NULL) {
		decide_refuse(reply, "the pending CSR cannot be read", arena);
		goto out;
	}
	memset(&refusal, 0, sizeof(refusal));
	/* Records from before the challenge was taken out are as sent. */
	refused = ca_csr_check(ca, csr_der, csr_len,
	    !json_is_true(json_object_get(o, "csr_without_challenge")),
	    &checked, &tpl, &refusal);
	/* But under the template the operator saw (`list --pending`): the
	 * key usage the CSR asks for may map to another one today. */
	asked = json_string_value(json_object_get(o, "template"));
	if (tpl != NULL && asked != NULL && asked[0] != '\0' &&
	    strcmp(asked, tpl->name) != 0) {
		char why[2 * CA_TEMPLATE_NAME_MAX + 160];

		snprintf(why, sizeof(why),
		    "asked under template %s, but [ca] now maps its key usage "
		    "to template %s: not issued; reject it, or have the "
		    "device enroll anew",
		    asked, tpl->name);
		log_event(LOG_LEVEL_WARN, txid, req->id,
		    "approval by %s refused: %s", by, why);
		decide_refuse(reply, why, arena);
		goto out;
	}
	if (!refused &&
	    (refused = ca_key_refused(ca, txn, checked, &refusal)) < 0)
		goto internal;
	if (refused) {
		decide_refuse(reply, refusal.why, arena);
		goto out;
	}
	sans = ca_csr_sans(checked);
	/* The site's policies too: what they judge (the subject's other
	 * certificates, an inventory) may have changed since, and a pending
	 * request is not yet in the ledger they read. */
	if (ca->npolicies > 0) {
		int unavailable = 0;

		if (ca_policies_check_request(ca, txn, checked, csr_der,
		        csr_len, tpl, sans, txid,
		        json_string_value(json_object_get(o, "client")), now,
		        req->deadline_ms, &refusal, &unavailable, arena) != 0) {
			if (unavailable) {
				reply->status =
				    SCEP__V1__STATUS__STATUS_UNAVAILABLE;
				reply->error = rpc_strdup(arena, refusal.why);
			} else
				decide_refuse(reply, refusal.why, arena);
			goto out;
		}
	}
	memset(&entry, 0, sizeof(entry));
	entry.txid = txid;
	entry.client_addr = json_string_value(json_object_get(o, "client"));
	if (entry.client_addr == NULL)
		entry.client_addr = "";
	entry.sans = sans;
	if ((e = ca_issue_record(ca, &txn, checked, tpl, now, &entry, hex, &der,
	         &der_len, NULL, arena)) != 0) {
		if (e == -1) {
			decide_refuse(reply, entry.subject, arena);
			goto out;
		}
		goto internal;
	}
	if ((e = mdb_del(txn, ca->pending, &key, NULL)) != 0)
		goto internal;
	e = mdb_txn_commit(txn);
	txn = NULL;
	if (e != 0)
		goto internal;
	log_event(LOG_LEVEL_INFO, txid, req->id,
	    "approved by %s: issued serial %s to \"%s\" under template %s", by,
	    hex, entry.subject, tpl->name);
answer:
	out = rpc_alloc(arena, sizeof(*out));
	scep__v1__decide_reply__init(out);
	if (in->approve)
		out->serial = rpc_strdup(arena, hex);
	reply->body_case = SCEP__V1__REPLY__BODY_DECIDE;
	reply->decide = out;
	goto out;
internal:
	log_event(LOG_LEVEL_ERROR, txid, req->id, "decide: %s",
	    e != 0 && e != -1 ? store_strerror(e) : "failed");
	reply->status = SCEP__V1__STATUS__STATUS_INTERNAL;
	reply->error = "the CA cannot decide now";
out:
	if (txn != NULL)
		mdb_txn_abort(txn);
	free(text);
	json_decref(o);
	free(csr_der);
	OPENSSL_free(der);
	ca_strings_free(sans);
	X509_REQ_free(csr);
	X509_REQ_free(checked);
	ERR_clear_error();
}
