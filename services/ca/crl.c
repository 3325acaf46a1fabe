/*
 * Revocation and the CRL. `revoked` holds serial -> {"time", "reason",
 * "by"}; `meta` holds the current CRL ("crl", DER) and its number
 * ("crl_number"), and with [ca] PreviousCAKey the CA it replaced has its
 * own ("crl_previous"). A revocation issues both in the same transaction,
 * under one number, so a CRL never lags a revocation; otherwise each is
 * re-issued alone when past half its CRLValidityHours. The one number
 * only grows, so each CA's CRLs are numbered upwards.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "ca.h"
#include "clock.h"
#include "pki.h"
#include "log.h"
#include "store.h"

static int64_t
crl_meta_int(const struct ca *ca, MDB_txn *txn, const char *name)
{
	MDB_val key = {strlen(name), (void *)name}, val;
	int64_t v = 0;

	if (mdb_get(txn, ca->meta, &key, &val) == 0 && val.mv_size == sizeof(v))
		memcpy(&v, val.mv_data, sizeof(v));
	return v;
}

/* Adds one revoked entry from its JSON record. */
static int
crl_add_entry(X509_CRL *crl, const MDB_val *serial, const MDB_val *rec)
{
	json_t *o = json_loadb(rec->mv_data, rec->mv_size, 0, NULL);
	X509_REVOKED *r = X509_REVOKED_new();
	ASN1_TIME *when = NULL;
	ASN1_ENUMERATED *reason = NULL;
	BIGNUM *bn = NULL;
	ASN1_INTEGER *sn = NULL;
	char hex[CA_SERIAL_HEX_ANY];
	int code, rc = -1;

	if (o == NULL || r == NULL || serial->mv_size >= sizeof(hex))
		goto out;
	memcpy(hex, serial->mv_data, serial->mv_size);
	hex[serial->mv_size] = '\0';
	code =
	    pki_crl_reason_code(json_string_value(json_object_get(o, "reason"))
	            ? json_string_value(json_object_get(o, "reason"))
	            : "unspecified",
	        NULL);
	if (BN_hex2bn(&bn, hex) == 0 ||
	    (sn = BN_to_ASN1_INTEGER(bn, NULL)) == NULL ||
	    !X509_REVOKED_set_serialNumber(r, sn) ||
	    (when = ASN1_TIME_set(NULL,
	         (time_t)json_integer_value(json_object_get(o, "time")))) ==
	        NULL ||
	    !X509_REVOKED_set_revocationDate(r, when))
		goto out;
	/* RFC 5280: reasonCode absent rather than unspecified. */
	if (code > 0 &&
	    ((reason = ASN1_ENUMERATED_new()) == NULL ||
	        !ASN1_ENUMERATED_set(reason, code) ||
	        !X509_REVOKED_add1_ext_i2d(r, NID_crl_reason, reason, 0, 0)))
		goto out;
	if (!X509_CRL_add0_revoked(crl, r))
		goto out;
	r = NULL;
	rc = 0;
out:
	X509_REVOKED_free(r);
	ASN1_TIME_free(when);
	ASN1_ENUMERATED_free(reason);
	ASN1_INTEGER_free(sn);
	BN_free(bn);
	json_decref(o);
	return rc;
}

/* A CRL's nextUpdate: never past the signing CA certificate's notAfter,
 * a promise of the next CRL no one could keep. */
static time_t
crl_next_update(
    const struct ca *ca, const struct ca_crl_signer *signer, time_t now)
{
	time_t next = now + (time_t)ca->settings.crl_validity_hours * 3600;

	return next > signer->not_after ? signer->not_after : next;
}

void
ca_crl_signer_own(struct ca *ca)
{
	struct ca_crl_signer *own = &ca->crl_own;

	own->cert = ca->cert;
	own->key = ca->key;
	own->akid = ca->akid;
	own->not_after = ca->not_after;
	memcpy(own->cert_sha256, ca->cert_sha256, sizeof(own->cert_sha256));
	own->crl_name = "crl";
	own->made_name = "crl_made";
	own->whose = "the CA's";
	own->setting = "Key";
}

int
ca_crl_signer_previous(struct ca *ca, X509 *cert, const char *setting)
{
	struct ca_crl_signer *prev = &ca->crl_previous;

	if (pki_time(X509_get0_notAfter(cert), &prev->not_after) != 0 ||
	    X509_digest(cert, EVP_sha256(), prev->cert_sha256, NULL) != 1 ||
	    (prev->akid = ca_akid_ext(cert)) == NULL)
		return -1;
	prev->cert = cert;
	prev->crl_name = "crl_previous";
	prev->made_name = "crl_previous_made";
	prev->whose = "the previous CA's";
	prev->setting = setting;
	return 0;
}

/* Beside each CRL in meta ("crl_made", "crl_previous_made"): what GetCRL
 * needs of it without parsing it (one of 100,000 revocations is 5 MB, 127
 * ms to parse, and GetCRL is any device's to ask). */
struct crl_made {
	int64_t this_update, next_update;
	unsigned char ca[32]; /* SHA-256 of the CA certificate that signed it */
};

/* The "made" record `name` into *made: 1, or 0 when there is none (or
 * not of this size). */
static int
crl_made_get(
    const struct ca *ca, MDB_txn *txn, const char *name, struct crl_made *made)
{
	MDB_val key = {strlen(name), (void *)name}, val;

	if (mdb_get(txn, ca->meta, &key, &val) != 0 ||
	    val.mv_size != sizeof(*made))
		return 0;
	memcpy(made, val.mv_data, sizeof(*made));
	return 1;
}

/* `revoked` as `crl`'s entries, sorted: read and parsed once for the
 * CRLs a revocation makes. An MDB_* code, or -1 when OpenSSL failed. */
static int
crl_entries(const struct ca *ca, MDB_txn *txn, X509_CRL *crl)
{
	MDB_cursor *cur;
	MDB_val key, val;
	int e;

	if ((e = mdb_cursor_open(txn, ca->revoked, &cur)) != 0)
		return e;
	for (int c = mdb_cursor_get(cur, &key, &val, MDB_FIRST); c == 0;
	     c = mdb_cursor_get(cur, &key, &val, MDB_NEXT))
		if (crl_add_entry(crl, &key, &val) != 0) {
			e = -1;
			break;
		}
	mdb_cursor_close(cur);
	return e == 0 && !X509_CRL_sort(crl) ? -1 : e;
}

/* `crl` (entries from crl_entries) made the signer's CRL: its header set
 * (replacing what another signer's set on the same object), signed, and
 * stored in meta under the signer's names. An MDB_* code, or -1 when
 * OpenSSL failed (logged). */
static int
crl_make(const struct ca *ca, const struct ca_crl_signer *signer, MDB_txn *txn,
    time_t now, int64_t number, X509_CRL *crl)
{
	ASN1_TIME *t = NULL;
	ASN1_INTEGER *num = NULL;
	MDB_val key, val;
	unsigned char *der = NULL;
	struct crl_made made;
	time_t this_update = now - CA_BACKDATE_SECONDS, ca_from;
	int len, at, e = -1;

	/* thisUpdate backdated as certificates are: a relying party whose
	 * clock is behind ours (OpenSSL's "CRL is not yet valid" is fatal)
	 * refused every certificate after each revocation until its clock
	 * caught up. Not before the signer's own validity. */
	if (pki_time(X509_get0_notBefore(signer->cert), &ca_from) == 0 &&
	    this_update < ca_from)
		this_update = ca_from;
	if ((at = X509_CRL_get_ext_by_NID(
	         crl, NID_authority_key_identifier, -1)) >= 0)
		X509_EXTENSION_free(X509_CRL_delete_ext(crl, at));
	if (!X509_CRL_set_version(crl, X509_CRL_VERSION_2) ||
	    !X509_CRL_set_issuer_name(
	        crl, X509_get_subject_name(signer->cert)) ||
	    (t = ASN1_TIME_set(NULL, this_update)) == NULL ||
	    !X509_CRL_set1_lastUpdate(crl, t) ||
	    ASN1_TIME_set(t, crl_next_update(ca, signer, now)) == NULL ||
	    !X509_CRL_set1_nextUpdate(crl, t) ||
	    (num = ASN1_INTEGER_new()) == NULL ||
	    !ASN1_INTEGER_set_int64(num, number) ||
	    X509_CRL_add1_ext_i2d(
	        crl, NID_crl_number, num, 0, X509V3_ADD_REPLACE) != 1 ||
	    X509_CRL_add_ext(crl, signer->akid, -1) != 1 ||
	    X509_CRL_sign(crl, signer->key, EVP_sha256()) <= 0 ||
	    (len = i2d_X509_CRL(crl, &der)) <= 0)
		goto out;
	key.mv_size = strlen(signer->crl_name);
	key.mv_data = (void *)signer->crl_name;
	val.mv_size = (size_t)len;
	val.mv_data = der;
#ifdef SCEPD_TEST_HOOKS
	/* Tests: a CRL that cannot be stored, as on a full map or disk,
	 * whose free pages vary from run to run. */
	if (getenv("SCEPD_TEST_CRL_UNSTORABLE") != NULL) {
		e = MDB_MAP_FULL;
		goto out;
	}
#endif
	if ((e = mdb_put(txn, ca->meta, &key, &val, 0)) != 0)
		goto out;
	made.this_update = (int64_t)now;
	made.next_update = (int64_t)crl_next_update(ca, signer, now);
	memcpy(made.ca, signer->cert_sha256, sizeof(made.ca));
	key.mv_size = strlen(signer->made_name);
	key.mv_data = (void *)signer->made_name;
	val.mv_size = sizeof(made);
	val.mv_data = &made;
	e = mdb_put(txn, ca->meta, &key, &val, 0);
out:
	if (e == -1)
		log_openssl(LOG_LEVEL_ERROR, NULL,
		    signer == &ca->crl_own
		        ? "cannot issue the CRL"
		        : "cannot issue the previous CA's CRL");
	OPENSSL_free(der);
	ASN1_INTEGER_free(num);
	ASN1_TIME_free(t);
	return e;
}

/* When the previous CA's key last failed to sign (monotonic ms, 0: not
 * since start: a step of the wall clock back would stretch the wait),
 * and how long the stored CRL is served before it is tried again. The
 * CA's one RPC worker alone makes CRLs. */
static int64_t crl_previous_failed_at;
#define CRL_SIGN_RETRY_MS 60000
#define CRL_BACKING_OFF (-2) /* ca_handle_get_crl: not tried, see above */

/* Drops meta's `name` (absent already: fine). An MDB_* code. */
static int
crl_meta_drop(const struct ca *ca, MDB_txn *txn, const char *name)
{
	MDB_val key = {strlen(name), (void *)name};
	int e = mdb_del(txn, ca->meta, &key, NULL);

	return e == MDB_NOTFOUND ? 0 : e;
}

/*
 * New CRLs from `revoked`, stored in meta under one number: the CA's and,
 * with PreviousCAKey, the previous CA's (the same entries: serials are
 * unique in the ledger, and a serial of the other CA names no certificate
 * of this one), each while its CA certificate is valid (past it, its last
 * CRL stands); `only` one of the two (a GetCRL of a CRL due), or NULL for
 * both (a revocation). The number is the time they are made (seconds
 * since 1970), or one past the last when that is more: it only grows,
 * and outnumbers at once the CRLs of an existing CA numbered 1, 2, ... by
 * the software it ran under before, which relying parties that keep the
 * highest-numbered CRL (strongSwan) would otherwise prefer; and above
 * `above` (an imported CRL's number, else 0).
 *
 * The previous CA's key failing (a token that stopped answering) fails
 * only its own CRL: with both, the revocation and the CA's CRL go on, and
 * the previous CA's stored one, which misses this change, is no longer
 * taken as made (the next GetCRL of it tries again, serving it meanwhile
 * while valid). An MDB_* code, or -1 when OpenSSL failed (logged).
 */
static int
crl_issue(const struct ca *ca, MDB_txn *txn, time_t now, int64_t above,
    const struct ca_crl_signer *only, int64_t *number)
{
	MDB_val key, val;
	X509_CRL *crl = NULL;
	int own = (only == NULL || only == &ca->crl_own) &&
	    now < ca->crl_own.not_after;
	int previous = (only == NULL || only == &ca->crl_previous) &&
	    ca->crl_previous.cert != NULL && now < ca->crl_previous.not_after;
	int e;

	/* The largest number an import may set is far below (rpc.h's
	 * RPC_IMPORT_NUMBER_MAX); signed overflow is undefined all the same. */
	if ((*number = crl_meta_int(ca, txn, "crl_number")) == INT64_MAX)
		return -1;
	(*number)++;
	if (*number < (int64_t)now)
		*number = (int64_t)now;
	if (*number <= above)
		*number = above + 1;
	if ((own || previous) &&
	    ((crl = X509_CRL_new()) == NULL ||
	        (e = crl_entries(ca, txn, crl)) != 0)) {
		if (crl == NULL)
			e = -1;
		if (e == -1)
			log_openssl(
			    LOG_LEVEL_ERROR, NULL, "cannot issue the CRL");
		goto out;
	}
	if (own &&
	    (e = crl_make(ca, &ca->crl_own, txn, now, *number, crl)) != 0)
		goto out;
	if (previous &&
	    (e = crl_make(ca, &ca->crl_previous, txn, now, *number, crl)) !=
	        0) {
		if (e == -1)
			crl_previous_failed_at = clock_monotonic_ms();
		if (e != -1 || only != NULL)
			goto out; /* LMDB's: the transaction is spent */
		log_error("CRL: the previous CA's cannot be signed with [ca] "
		          "%s now: it misses this change until it can (the "
		          "next GetCRL of it tries again)",
		    ca->crl_previous.setting);
		previous = 0;
		if ((e = crl_meta_drop(ca, txn, "crl_previous_made")) != 0)
			goto out;
	}
	/* Without PreviousCAKey, a stored CRL of the previous CA misses this
	 * revocation: dropped, so that the key set again makes a new one
	 * rather than serving it. (A CRL due again changes nothing.) */
	if (only == NULL && ca->crl_previous.cert == NULL &&
	    !ca->previous_ended &&
	    ((e = crl_meta_drop(ca, txn, "crl_previous_made")) != 0 ||
	        (e = crl_meta_drop(ca, txn, "crl_previous")) != 0))
		goto out;
	key.mv_size = 10;
	key.mv_data = "crl_number";
	val.mv_size = sizeof(*number);
	val.mv_data = number;
	if ((e = mdb_put(txn, ca->meta, &key, &val, 0)) == 0)
		log_info("issued CRL number %lld%s%s%s", (long long)*number,
		    own && previous ? ", and the previous CA's ([ca] "
		        : previous  ? ": the previous CA's ([ca] "
		                    : "",
		    previous ? ca->crl_previous.setting : "",
		    previous ? ")" : "");
out:
	X509_CRL_free(crl);
	return e;
}

/* A revocation's record in `revoked` (the caller frees it), or NULL:
 * when it was revoked, why, by whom ("by" is scepctl's user name, which
 * need not be UTF-8), when a hold became final (0: none), and whether the
 * ledger holds the certificate. */
static char *
crl_record(json_int_t when, const char *reason, const char *by,
    json_int_t final_at, int not_in_ledger)
{
	json_t *o = json_pack("{s:I, s:s, s:o}", "time", when, "reason", reason,
	    "by", ca_ledger_text(by));
	char *text = NULL;

	if (o != NULL && final_at != 0)
		json_object_set_new(o, "final_at", json_integer(final_at));
	if (o != NULL && not_in_ledger)
		json_object_set_new(o, "not_in_ledger", json_true());
	if (o != NULL)
		text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return text;
}

/* Its certificates expired with it (none outlives the CA's): a CRL it
 * signed now would be one no relying party can check. */
static char crl_ca_expired[] =
    "the CA certificate has expired, and every certificate it issued with "
    "it: no CRL is signed past its notAfter";

/* Whether a revocation record is a hold (certificateHold, in whatever
 * case it was typed), and since when. */
static int
crl_on_hold(const MDB_val *val, json_int_t *since)
{
	json_t *o = json_loadb(val->mv_data, val->mv_size, 0, NULL);
	const char *r = json_string_value(json_object_get(o, "reason"));
	int held = r != NULL &&
	    pki_crl_reason_code(r, NULL) == CRL_REASON_CERTIFICATE_HOLD;

	*since = json_integer_value(json_object_get(o, "time"));
	json_decref(o);
	return held;
}

int
ca_crl_revoked_for_good(const struct ca *ca, MDB_txn *txn, const char *serial)
{
	MDB_val key = {strlen(serial), (void *)serial}, val;
	json_int_t since;
	int e = mdb_get(txn, ca->revoked, &key, &val);

	if (e == MDB_NOTFOUND)
		return 0;
	if (e != 0)
		return -1;
	return !crl_on_hold(&val, &since);
}

/*
 * The line a revocation is logged with, which a restore reads (README
 * "Backup and restore"): the serial, its reason, whether it was on hold
 * and whether the ledger holds it, the date it was revoked when given
 * (`when`, 0: none; a hold made final keeps the hold's, redone without
 * one), by whom, and from which CRL when imported (`from`, "" if not).
 * Without a transactionID, as the release's line: the restore takes the
 * lines that start "... scepd-ca[PID] warn req=N: revoked serial", and
 * text a device chose (its subject, its transactionID) never starts a
 * message of the CA's.
 */
static void
crl_log_revoked(uint64_t reqid, const char *serial, const char *reason,
    int held, int in_ledger, time_t when, const char *by, const char *from,
    int64_t number)
{
	char at[48] = "", iso[LOG_TIME_LEN];

	if (when != 0) {
		log_time(when, iso);
		snprintf(at, sizeof(at), ", revoked %s", iso);
	}
	log_event(LOG_LEVEL_WARN, NULL, reqid,
	    "revoked serial %s (%s%s%s%s) by %s%s; CRL number %lld", serial,
	    reason, held ? ", was on hold" : "",
	    in_ledger ? "" : ", not in the ledger", at, by, from,
	    (long long)number);
}

void
ca_handle_revoke(void *worker, const Scep__V1__Request *req,
    Scep__V1__Reply *reply, struct rpc_arena *arena)
{
	const struct ca *ca = worker;
	const Scep__V1__RevokeRequest *in = req->revoke;
	Scep__V1__RevokeReply *out;
	const char *reason = in->reason != NULL && in->reason[0] != '\0'
	    ? in->reason
	    : "unspecified";
	char serial[CA_SERIAL_HEX_ANY], *text = NULL;
	size_t len;
	MDB_txn *txn = NULL;
	MDB_val key, val;
	int64_t number = 0;
	time_t now = time(NULL);
	int e, code, held = 0, release = in->has_release && in->release;
	int foreign = in->has_not_in_ledger && in->not_in_ledger;
	json_int_t held_since = 0,
	           when = foreign && in->has_revoked_at ? in->revoked_at : now;

	if ((code = pki_crl_reason_code(reason, &reason)) < 0) {
		reply->status = SCEP__V1__STATUS__STATUS_REFUSED;
		reply->error = "unknown reason (keyCompromise, cACompromise, "
		               "affiliationChanged, superseded, "
		               "cessationOfOperation, certificateHold, "
		               "privilegeWithdrawn, aACompromise, unspecified)";
		return;
	}
	if (in->has_revoked_at &&
	    (!foreign || in->revoked_at > now || in->revoked_at <= 0)) {
		reply->status = SCEP__V1__STATUS__STATUS_REFUSED;
		reply->error = foreign
		    ? "the revocation date is not a past time"
		    : "a revocation date is given only for a certificate "
		      "not in the ledger (--not-in-ledger)";
		return;
	}
	/* Any serial: one the ledger does not hold is refused below unless
	 * said (a hold is released either way: the revocation is the
	 * record). */
	if (ca_serial_normalize_any(in->serial, serial) != 0) {
		reply->status = SCEP__V1__STATUS__STATUS_REFUSED;
		reply->error = foreign
		    ? "not a serial: hex digits, at most 20 octets"
		    : "no such serial";
		return;
	}
	if (now >= ca->not_after) {
		reply->status = SCEP__V1__STATUS__STATUS_REFUSED;
		reply->error = crl_ca_expired;
		return;
	}
	len = strlen(serial);
	if ((e = mdb_txn_begin(ca->env, NULL, 0, &txn)) != 0)
		goto internal;
	key.mv_size = len;
	key.mv_data = serial;
	e = mdb_get(txn, ca->certs, &key, &val);
	if (e == MDB_NOTFOUND && !foreign && !release) {
		reply->status = SCEP__V1__STATUS__STATUS_REFUSED;
		reply->error =
		    "no such serial in the ledger; a certificate of this CA "
		    "that the ledger does not hold (signed before scepd, or "
		    "after the backup a restore came from) is revoked with "
		    "--not-in-ledger";
		goto out;
	}
	if (e == 0 && foreign) {
		reply->status = SCEP__V1__STATUS__STATUS_REFUSED;
		reply->error = "the ledger holds this certificate: revoke it "
		               "without --not-in-ledger";
		goto out;
	}
	if (e != 0 && e != MDB_NOTFOUND)
		goto internal;
	if ((e = mdb_get(txn, ca->revoked, &key, &val)) == 0)
		held = crl_on_hold(&val, &held_since);
	else if (e != MDB_NOTFOUND)
		goto internal;
	/* Only a hold is temporary (RFC 5280 5.3.1): released, or made
	 * final with another reason; any other revocation stays. */
	if (release && !held) {
		reply->status = SCEP__V1__STATUS__STATUS_REFUSED;
		reply->error =
		    "not on hold: only a certificateHold is released";
		goto out;
	}
	if (e == 0 && !held) {
		reply->status = SCEP__V1__STATUS__STATUS_REFUSED;
		reply->error = "already revoked";
		goto out;
	}
	if (held && !release && code == CRL_REASON_CERTIFICATE_HOLD) {
		reply->status = SCEP__V1__STATUS__STATUS_REFUSED;
		reply->error = "already on hold";
		goto out;
	}
	if (held && in->has_revoked_at) {
		reply->status = SCEP__V1__STATUS__STATUS_REFUSED;
		reply->error = "on hold: a hold made final keeps the hold's "
		               "date (--date not taken)";
		goto out;
	}
	if (release) {
		if ((e = mdb_del(txn, ca->revoked, &key, NULL)) != 0 ||
		    (e = crl_issue(ca, txn, now, 0, NULL, &number)) != 0)
			goto internal;
	} else {
		/* A hold made final keeps its date (the certificate was not
		 * to be trusted since then); when it became final is noted. */
		if ((text = crl_record(held ? held_since : when, reason,
		         in->revoked_by ? in->revoked_by : "?",
		         held ? (json_int_t)now : 0, foreign)) == NULL) {
			e = -1;
			goto internal;
		}
		val.mv_size = strlen(text);
		val.mv_data = text;
		/* A compromised key is certified no more, whatever
		 * transactionID a request brings it under. */
		if ((e = mdb_put(txn, ca->revoked, &key, &val, 0)) != 0 ||
		    (code == CRL_REASON_KEY_COMPROMISE && !foreign &&
		        (e = ca_ledger_compromised_put(ca, txn, serial)) !=
		            0) ||
		    (e = crl_issue(ca, txn, now, 0, NULL, &number)) != 0)
			goto internal;
	}
	e = mdb_txn_commit(txn);
	txn = NULL;
	if (e != 0)
		goto internal;
	if (release)
		log_event(LOG_LEVEL_WARN, NULL, req->id,
		    "released serial %s from its certificateHold by %s; CRL "
		    "number %lld no longer lists it",
		    serial, in->revoked_by ? in->revoked_by : "?",
		    (long long)number);
	else
		/* The date of one not in the ledger (--date): a restore
		 * redoes it. */
		crl_log_revoked(req->id, serial, reason, held, !foreign,
		    foreign && !held ? (time_t)when : 0,
		    in->revoked_by ? in->revoked_by : "?", "", number);
	out = rpc_alloc(arena, sizeof(*out));
	scep__v1__revoke_reply__init(out);
	out->crl_number = number;
	out->serial = rpc_strdup(arena, serial);
	reply->body_case = SCEP__V1__REPLY__BODY_REVOKE;
	reply->revoke = out;
	goto out;
internal:
	log_event(LOG_LEVEL_ERROR, NULL, req->id, "revoke %s: %s", serial,
	    e != 0 && e != -1 ? store_strerror(e) : "failed");
	reply->status = SCEP__V1__STATUS__STATUS_INTERNAL;
	reply->error = "the CA cannot revoke now";
out:
	if (txn != NULL)
		mdb_txn_abort(txn);
	free(text);
}

/* An import's entry as checked before anything is written. */
struct crl_import_entry {
	char serial[CA_SERIAL_HEX_ANY];
	const char *reason; /* its RFC 5280 spelling */
	int code;
	json_int_t when;
	enum { IMPORT_ADDED, IMPORT_UNCHANGED, IMPORT_MADE_FINAL } outcome;
	int in_ledger;
	json_int_t hold_since; /* IMPORT_MADE_FINAL: the hold's date */
};

/* Checks every entry of an import: NULL, or why the first bad one cannot
 * be taken (in `arena`). */
static char *
crl_import_check(const Scep__V1__RevokeImportRequest *in, time_t now,
    struct crl_import_entry *e, struct rpc_arena *arena)
{
	char why[160];

	for (size_t i = 0; i < in->n_entries; i++) {
		const Scep__V1__ImportedRevocation *r = in->entries[i];
		const char *reason = r->reason != NULL && r->reason[0] != '\0'
		    ? r->reason
		    : "unspecified";

		if (ca_serial_normalize_any(r->serial, e[i].serial) != 0) {
			snprintf(why, sizeof(why),
			    "entry %zu: not a serial (hex digits, at most 20 "
			    "octets); none of this request's imported",
			    i + 1);
			return rpc_strdup(arena, why);
		}
		if ((e[i].code = pki_crl_reason_code(reason, &e[i].reason)) <
		    0) {
			snprintf(why, sizeof(why),
			    "serial %s: reason %.40s is not one scepd "
			    "revokes for; none of this request's imported",
			    e[i].serial, reason);
			return rpc_strdup(arena, why);
		}
		if (r->revoked_at <= 0 ||
		    r->revoked_at > (int64_t)now + RPC_IMPORT_SKEW_S) {
			snprintf(why, sizeof(why),
			    "serial %s: its revocation date is not a past "
			    "time (before 1970, or more than %d s ahead of "
			    "the CA's clock); none of this request's imported",
			    e[i].serial, RPC_IMPORT_SKEW_S);
			return rpc_strdup(arena, why);
		}
		/* The old CA's clock a little ahead: revoked now. */
		e[i].when =
		    (json_int_t)(r->revoked_at > (int64_t)now ? (int64_t)now
		                                              : r->revoked_at);
	}
	return NULL;
}

/* Puts one checked entry in `revoked` (or leaves it: e->outcome says). An
 * MDB_* code, or -1. */
static int
crl_import_put(const struct ca *ca, MDB_txn *txn, struct crl_import_entry *e,
    const char *by, time_t now)
{
	MDB_val key = {strlen(e->serial), e->serial}, val;
	char *text = NULL;
	int rc, held;

	if ((rc = mdb_get(txn, ca->certs, &key, &val)) != 0 &&
	    rc != MDB_NOTFOUND)
		return rc;
	e->in_ledger = rc == 0;
	if ((rc = mdb_get(txn, ca->revoked, &key, &val)) == 0) {
		held = crl_on_hold(&val, &e->hold_since);
		/* Revoked for good here, or held and held there: as it is. */
		if (!held || e->code == CRL_REASON_CERTIFICATE_HOLD) {
			e->outcome = IMPORT_UNCHANGED;
			return 0;
		}
		e->outcome = IMPORT_MADE_FINAL;
	} else if (rc != MDB_NOTFOUND)
		return rc;
	else
		e->outcome = IMPORT_ADDED;
	if ((text = crl_record(
	         e->outcome == IMPORT_MADE_FINAL ? e->hold_since : e->when,
	         e->reason, by,
	         e->outcome == IMPORT_MADE_FINAL ? (json_int_t)now : 0,
	         !e->in_ledger)) == NULL)
		rc = -1;
	else {
		val.mv_size = strlen(text);
		val.mv_data = text;
		rc = mdb_put(txn, ca->revoked, &key, &val, 0);
		if (rc == 0 && e->in_ledger &&
		    e->code == CRL_REASON_KEY_COMPROMISE)
			rc = ca_ledger_compromised_put(ca, txn, e->serial);
	}
	free(text);
	return rc;
}

/*
 * scepctl import-crl: a CRL's entries in one transaction and one new CRL
 * (one `revoke` per entry issued a CRL each: minutes for thousands, and
 * the CRL numbers ran ahead of the clock by as many). All or nothing: an
 * entry that cannot be taken refuses the request before any is written.
 * Each one done is logged as `revoke` logs it, which a restore reads.
 */
void
ca_handle_revoke_import(void *worker, const Scep__V1__Request *req,
    Scep__V1__Reply *reply, struct rpc_arena *arena)
{
	const struct ca *ca = worker;
	const Scep__V1__RevokeImportRequest *in = req->revoke_import;
	const char *by = in->revoked_by ? in->revoked_by : "?";
	struct crl_import_entry *e;
	Scep__V1__RevokeImportReply *out;
	MDB_txn *txn = NULL;
	time_t now = time(NULL);
	int64_t number = 0;
	uint32_t count[3] = {0, 0, 0};
	char from[32] = "", from_crl[48], *why;
	int rc = 0;

	/* None: an empty CRL's number passed on. */
	if (in->n_entries == 0 && !in->has_from_crl_number) {
		reply->status = SCEP__V1__STATUS__STATUS_REFUSED;
		reply->error = "no entries to import";
		return;
	}
	if (in->has_from_crl_number &&
	    in->from_crl_number > RPC_IMPORT_NUMBER_MAX) {
		reply->status = SCEP__V1__STATUS__STATUS_REFUSED;
		reply->error = "the imported CRL's number leaves no room above "
		               "it (more than 2^63 - 2^32)";
		return;
	}
	if (now >= ca->not_after) {
		reply->status = SCEP__V1__STATUS__STATUS_REFUSED;
		reply->error = crl_ca_expired;
		return;
	}
	/* scepctl checked the CRL's signature with the certificate its
	 * scepd.conf names: this CA's, or the CRL may be another CA's. */
	if (!in->has_ca_certificate_sha256 ||
	    in->ca_certificate_sha256.len != sizeof(ca->cert_sha256) ||
	    memcmp(in->ca_certificate_sha256.data, ca->cert_sha256,
	        sizeof(ca->cert_sha256)) != 0) {
		reply->status = SCEP__V1__STATUS__STATUS_REFUSED;
		reply->error = "the CRL's signature was not checked with this "
		               "CA's certificate (scepctl's [ca] Certificate "
		               "is another one); nothing imported";
		return;
	}
	/* Copied into every entry's record. */
	if (strlen(by) > 255) {
		reply->status = SCEP__V1__STATUS__STATUS_REFUSED;
		reply->error = "revoked_by longer than 255 bytes";
		return;
	}
	e = rpc_alloc(arena, in->n_entries * sizeof(*e));
	if ((why = crl_import_check(in, now, e, arena)) != NULL) {
		reply->status = SCEP__V1__STATUS__STATUS_REFUSED;
		reply->error = why;
		return;
	}
	if ((rc = mdb_txn_begin(ca->env, NULL, 0, &txn)) != 0)
		goto internal;
	for (size_t i = 0; i < in->n_entries; i++) {
		if ((rc = crl_import_put(ca, txn, &e[i], by, now)) != 0)
			goto internal;
		count[e[i].outcome]++;
	}
	/* And when the imported CRL outnumbers the last one: from now on,
	 * relying parties that keep the highest-numbered CRL keep ours. */
	number = crl_meta_int(ca, txn, "crl_number");
	if (in->has_dry_run && in->dry_run) {
		mdb_txn_abort(txn);
		log_event(LOG_LEVEL_INFO, NULL, req->id,
		    "dry run of an import by %s: of %zu %s, %u would be put "
		    "on the CRL, %u made final from a hold, %u there already",
		    by, in->n_entries, in->n_entries == 1 ? "entry" : "entries",
		    count[IMPORT_ADDED], count[IMPORT_MADE_FINAL],
		    count[IMPORT_UNCHANGED]);
		goto answer;
	}
	if (count[IMPORT_ADDED] + count[IMPORT_MADE_FINAL] > 0 ||
	    (in->has_from_crl_number && in->from_crl_number >= number))
		rc = crl_issue(ca, txn, now,
		    in->has_from_crl_number ? in->from_crl_number : 0, NULL,
		    &number);
	if (rc != 0)
		goto internal;
	rc = mdb_txn_commit(txn);
	txn = NULL;
	if (rc != 0)
		goto internal;
	if (in->has_from_crl_number)
		snprintf(from, sizeof(from), " number %lld",
		    (long long)in->from_crl_number);
	snprintf(from_crl, sizeof(from_crl), ", from CRL%s", from);
	for (size_t i = 0; i < in->n_entries; i++)
		if (e[i].outcome != IMPORT_UNCHANGED)
			crl_log_revoked(req->id, e[i].serial, e[i].reason,
			    e[i].outcome == IMPORT_MADE_FINAL, e[i].in_ledger,
			    e[i].outcome == IMPORT_ADDED ? (time_t)e[i].when
			                                 : 0,
			    by, from_crl, number);
	log_event(LOG_LEVEL_WARN, NULL, req->id,
	    "imported %zu %s of CRL%s by %s: %u put on the CRL, %u made "
	    "final from a hold, %u there already; CRL number %lld",
	    in->n_entries, in->n_entries == 1 ? "entry" : "entries", from, by,
	    count[IMPORT_ADDED], count[IMPORT_MADE_FINAL],
	    count[IMPORT_UNCHANGED], (long long)number);
answer:
	out = rpc_alloc(arena, sizeof(*out));
	scep__v1__revoke_import_reply__init(out);
	out->crl_number = number;
	out->added = count[IMPORT_ADDED];
	out->made_final = count[IMPORT_MADE_FINAL];
	out->unchanged = count[IMPORT_UNCHANGED];
	reply->body_case = SCEP__V1__REPLY__BODY_REVOKE_IMPORT;
	reply->revoke_import = out;
	return;
internal:
	if (txn != NULL)
		mdb_txn_abort(txn);
	log_event(LOG_LEVEL_ERROR, NULL, req->id, "import of a CRL: %s",
	    rc != 0 && rc != -1 ? store_strerror(rc) : "failed");
	reply->status = SCEP__V1__STATUS__STATUS_INTERNAL;
	reply->error =
	    "the CA cannot revoke now; none of this request's imported";
}

/*
 * Whether a stored CRL is the signer's: its issuer, signed with its key.
 * A CA certificate and key replaced (a rollover keeping db/ca) left the
 * old CA's CRL served until it aged, and relying parties holding the new
 * CA found no issuer for it.
 */
static int
crl_ours(const struct ca_crl_signer *signer, X509_CRL *crl)
{
	EVP_PKEY *key = X509_get0_pubkey(signer->cert);

	return X509_NAME_cmp(X509_CRL_get_issuer(crl),
	           X509_get_subject_name(signer->cert)) == 0 &&
	    key != NULL && X509_CRL_verify(crl, key) == 1;
}

/*
 * The signer's stored CRL into `out` when it stands as it is: that CA
 * certificate's, valid now, not past half its validity (the checks of
 * ca_handle_get_crl, from its "made" record in a read transaction). 0
 * when the CRL must be looked at or made again.
 */
static int
crl_stored(const struct ca *ca, const struct ca_crl_signer *signer, time_t now,
    Scep__V1__GetCrlReply *out, struct rpc_arena *arena)
{
	MDB_txn *txn;
	MDB_val key, val;
	struct crl_made made;
	int ok = 0;

	if (mdb_txn_begin(ca->env, NULL, MDB_RDONLY, &txn) != 0)
		return 0;
	if (crl_made_get(ca, txn, signer->made_name, &made)) {
		key.mv_size = strlen(signer->crl_name);
		key.mv_data = (void *)signer->crl_name;
		/* Past the CA certificate's notAfter its last CRL stands
		 * (the previous CA's may end years before this one's: its
		 * relying parties still ask, and need no write transaction
		 * each). */
		ok = memcmp(made.ca, signer->cert_sha256, sizeof(made.ca)) ==
		        0 &&
		    (now >= signer->not_after ||
		        (now >= made.this_update &&
		            now < made.this_update +
		                    (made.next_update - made.this_update) / 2 &&
		            made.next_update <=
		                crl_next_update(ca, signer, now))) &&
		    mdb_get(txn, ca->meta, &key, &val) == 0;
	}
	if (ok) {
		out->crl.data = rpc_alloc(arena, val.mv_size);
		memcpy(out->crl.data, val.mv_data, val.mv_size);
		out->crl.len = val.mv_size;
		out->next_update = made.next_update;
	}
	mdb_txn_abort(txn);
	return ok;
}

/* GetCrlReply's issuer and issuer_key_sha256: whose CRL it is, `cert`'s.
 * 0, or -1 when OpenSSL failed. */
static int
crl_reply_whose(X509 *cert, Scep__V1__GetCrlReply *out, struct rpc_arena *arena)
{
	const X509_NAME *name = X509_get_subject_name(cert);
	unsigned char sha[EVP_MAX_MD_SIZE], *p;
	unsigned int sha_len = 0;
	int len = i2d_X509_NAME(name, NULL);

	if (len <= 0 ||
	    X509_pubkey_digest(cert, EVP_sha256(), sha, &sha_len) != 1)
		return -1;
	out->issuer.data = p = rpc_alloc(arena, (size_t)len);
	if (i2d_X509_NAME(name, &p) != len)
		return -1;
	out->issuer.len = (size_t)len;
	out->issuer_key_sha256.data = rpc_alloc(arena, sha_len);
	memcpy(out->issuer_key_sha256.data, sha, sha_len);
	out->issuer_key_sha256.len = sha_len;
	out->has_issuer = out->has_issuer_key_sha256 = 1;
	return 0;
}

/*
 * The previous CA's last CRL, as it stands: its key not loaded, every CA
 * replaced having expired (ca->previous_ended). Its "made" record names
 * the certificate that signed it, one of PreviousCACertificate's, served
 * as crl_stored serves an expired CA's.
 */
static void
crl_previous_last(const struct ca *ca, time_t now, Scep__V1__Reply *reply,
    struct rpc_arena *arena)
{
	struct ca_crl_signer last = {.crl_name = "crl_previous",
	    .made_name = "crl_previous_made",
	    .whose = "the previous CA's"};
	Scep__V1__GetCrlReply *out = rpc_alloc(arena, sizeof(*out));
	MDB_txn *txn;
	struct crl_made made = {0};
	unsigned char sha[32];

	if (mdb_txn_begin(ca->env, NULL, MDB_RDONLY, &txn) == 0) {
		if (crl_made_get(ca, txn, last.made_name, &made)) {
			for (int i = 0; i < sk_X509_num(ca->previous_cas) &&
			     last.cert == NULL;
			     i++)
				if (X509_digest(
				        sk_X509_value(ca->previous_cas, i),
				        EVP_sha256(), sha, NULL) == 1 &&
				    memcmp(sha, made.ca, sizeof(sha)) == 0)
					last.cert =
					    sk_X509_value(ca->previous_cas, i);
		}
		mdb_txn_abort(txn);
	}
	scep__v1__get_crl_reply__init(out);
	if (last.cert != NULL) {
		memcpy(last.cert_sha256, made.ca, sizeof(made.ca));
		if (pki_time(X509_get0_notAfter(last.cert), &last.not_after) !=
		    0)
			last.cert = NULL;
	}
	if (last.cert == NULL || now < last.not_after ||
	    !crl_stored(ca, &last, now, out, arena) ||
	    crl_reply_whose(last.cert, out, arena) != 0) {
		reply->status = SCEP__V1__STATUS__STATUS_REFUSED;
		reply->error = "the CAs this one replaced have expired, and no "
		               "CRL of theirs was made before";
		return;
	}
	reply->body_case = SCEP__V1__REPLY__BODY_GET_CRL;
	reply->get_crl = out;
}

void
ca_handle_get_crl(void *worker, const Scep__V1__Request *req,
    Scep__V1__Reply *reply, struct rpc_arena *arena)
{
	const struct ca *ca = worker;
	const struct ca_crl_signer *signer = &ca->crl_own;
	Scep__V1__GetCrlReply *out;
	MDB_txn *txn = NULL;
	MDB_val key, val;
	const unsigned char *p;
	X509_CRL *crl = NULL;
	ProtobufCBinaryData stood = {0, NULL};
	time_t now = time(NULL), last = 0, next = 0, stood_next = 0;
	struct crl_made made_rec;
	int64_t number;
	int e, ours, made;

	if (req->get_crl->has_previous_ca && req->get_crl->previous_ca) {
		if (ca->crl_previous.cert == NULL && ca->previous_ended) {
			crl_previous_last(ca, now, reply, arena);
			return;
		}
		if (ca->crl_previous.cert == NULL) {
			reply->status = SCEP__V1__STATUS__STATUS_REFUSED;
			reply->error = "no CRL of the CA this one replaced is "
			               "signed here: that CA's key is not set "
			               "([ca] PreviousCAKey)";
			return;
		}
		signer = &ca->crl_previous;
	}
	key.mv_size = strlen(signer->crl_name);
	key.mv_data = (void *)signer->crl_name;
	out = rpc_alloc(arena, sizeof(*out));
	scep__v1__get_crl_reply__init(out);
	if (crl_reply_whose(signer->cert, out, arena) != 0) {
		e = -1;
		goto internal;
	}
	if (crl_stored(ca, signer, now, out, arena)) {
		reply->body_case = SCEP__V1__REPLY__BODY_GET_CRL;
		reply->get_crl = out;
		return;
	}
	if ((e = mdb_txn_begin(ca->env, NULL, 0, &txn)) != 0)
		goto internal;
	if (mdb_get(txn, ca->meta, &key, &val) == 0) {
		p = val.mv_data;
		crl = d2i_X509_CRL(NULL, &p, (long)val.mv_size);
	}
	if (crl != NULL)
		(void)pki_time(X509_CRL_get0_lastUpdate(crl), &last);
	if (crl != NULL && X509_CRL_get0_nextUpdate(crl) != NULL)
		(void)pki_time(X509_CRL_get0_nextUpdate(crl), &next);
	ours = crl != NULL && crl_ours(signer, crl);
	/* Its "made" record gone: it misses a change (crl_issue). Made
	 * under another certificate of the same name and key (the CA
	 * certified again): crl_stored would never serve it, and each
	 * GetCRL would parse it here until its half-life. */
	made = crl_made_get(ca, txn, signer->made_name, &made_rec) &&
	    memcmp(made_rec.ca, signer->cert_sha256, sizeof(made_rec.ca)) == 0;
	if (now >= signer->not_after) {
		/* The last CRL stands (its nextUpdate is the CA's notAfter):
		 * no CRL is signed past it. One not that CA's (the key
		 * named another CA before) is no answer. */
		if (crl == NULL || !ours) {
			log_error(
			    "CRL: %s certificate has expired and no CRL "
			    "of it was issued before: none is signed past "
			    "its notAfter",
			    signer->whose);
			reply->status = SCEP__V1__STATUS__STATUS_REFUSED;
			reply->error = signer == &ca->crl_own
			    ? "the CA certificate has expired"
			    : "the previous CA certificate has expired and "
			      "no CRL of it was made before";
			X509_CRL_free(crl); /* another CA's, or none */
			mdb_txn_abort(txn);
			return;
		}
	} else if (crl == NULL || now >= last + (next - last) / 2 ||
	    now < last || !ours || !made ||
	    next > crl_next_update(ca, signer, now)) {
		/* Re-issued past half its validity: relying parties never
		 * see an expired one. And before it, when it is not yet
		 * valid (made while the clock ran ahead, which relying
		 * parties refuse until then), not this CA's, or valid
		 * longer than CRLValidityHours now allows (lowered). */
		if (crl != NULL && now < last)
			log_warn(
			    "CRL: the stored one's thisUpdate is %lld s "
			    "ahead of this clock (not yet valid to relying "
			    "parties): a new one is issued",
			    (long long)(last - now));
		else if (crl != NULL && !ours)
			log_warn("CRL: %s stored CRL is not that CA "
			         "certificate's (issuer or key changed): a new "
			         "one is issued",
			    signer->whose);
		else if (crl != NULL && next > crl_next_update(ca, signer, now))
			log_info("CRL: the stored one is valid until %lld s "
			         "from now, past CRLValidityHours = %ld in "
			         "[ca]: a new one is issued",
			    (long long)(next - now),
			    (long)ca->settings.crl_validity_hours);
		/* Past half its validity only: kept to be served if no new
		 * one can be stored (a full disk or map), rather than none. */
		if (ours && now >= last && now < next) {
			stood.data = rpc_alloc(arena, val.mv_size);
			memcpy(stood.data, val.mv_data, val.mv_size);
			stood.len = val.mv_size;
			stood_next = next;
		}
		X509_CRL_free(crl);
		crl = NULL;
		/* The previous CA's key failed lately (a token gone): the
		 * stored CRL, while valid, rather than a try per request. */
		if (signer == &ca->crl_previous && stood.data != NULL &&
		    crl_previous_failed_at != 0 &&
		    clock_monotonic_ms() - crl_previous_failed_at <
		        CRL_SIGN_RETRY_MS) {
			e = CRL_BACKING_OFF;
			goto internal;
		}
		if ((e = crl_issue(ca, txn, now, 0, signer, &number)) != 0)
			goto internal;
		if ((e = mdb_get(txn, ca->meta, &key, &val)) != 0)
			goto internal;
		next = crl_next_update(ca, signer, now);
	}
	out->crl.data = rpc_alloc(arena, val.mv_size);
	memcpy(out->crl.data, val.mv_data, val.mv_size);
	out->crl.len = val.mv_size;
	out->next_update = (int64_t)next;
	if ((e = mdb_txn_commit(txn)) != 0) {
		txn = NULL;
		goto internal;
	}
	txn = NULL;
	reply->body_case = SCEP__V1__REPLY__BODY_GET_CRL;
	reply->get_crl = out;
	X509_CRL_free(crl);
	return;
internal:
	if (txn != NULL)
		mdb_txn_abort(txn);
	X509_CRL_free(crl);
	if (stood.data != NULL) {
		if (e != CRL_BACKING_OFF)
			log_warn("CRL: a new one cannot be %s (%s): the one "
			         "stored, valid %lld s more, is served",
			    e == -1 ? "made" : "stored",
			    e == -1 ? "it cannot be signed" : store_strerror(e),
			    (long long)(stood_next - now));
		out->crl = stood;
		out->next_update = (int64_t)stood_next;
		reply->body_case = SCEP__V1__REPLY__BODY_GET_CRL;
		reply->get_crl = out;
		return;
	}
	log_error(
	    "CRL: %s", e != 0 && e != -1 ? store_strerror(e) : "cannot issue");
	reply->status = SCEP__V1__STATUS__STATUS_INTERNAL;
	reply->error = "the CA cannot give a CRL now";
}
