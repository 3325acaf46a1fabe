/*
 * SignRequest: re-check the CSR, then issue once per transactionID. The
 * ledger lookup, the serial check and the new record share one write
 * transaction, committed before the reply leaves: a retry always finds
 * what the first attempt issued.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/x509.h>

#include "ca.h"
#include "pki.h"
#include "pool.h"
#include "x509parse.h"
#include "store.h"
#include "log.h"
#include "scep.h"

#define CA_SERIAL_ATTEMPTS 8
/* One answer whatever holds the transactionID for another key. */
#define CA_TXID_OTHER_KEY "transactionID already used with another key"

static void
ca_sign_refuse(Scep__V1__Reply *reply, const Scep__V1__Request *req,
    const char *txid, const char *addr, int fail_info, const char *why,
    struct rpc_arena *arena)
{
	Scep__V1__SignReply *out = rpc_alloc(arena, sizeof(*out));

	log_event(LOG_LEVEL_WARN, txid, req->id, "refused (client %s): %s",
	    addr, why);
	scep__v1__sign_reply__init(out);
	out->has_fail_info = 1;
	out->fail_info = fail_info;
	reply->status = SCEP__V1__STATUS__STATUS_REFUSED;
	reply->error = rpc_strdup(arena, why);
	reply->body_case = SCEP__V1__REPLY__BODY_SIGN;
	reply->sign = out;
}

/* After ca_sign_refuse, for a refusal of the request itself (its CSR, a
 * policy): when nothing is bound to its transactionID (no certificate,
 * journal entry or pending request: the CSR is checked before they are
 * looked up), the RA may release the password reserved to it for the
 * device's next try. */
static void
ca_sign_nothing_bound(
    const struct ca *ca, const char *txid, Scep__V1__Reply *reply)
{
	struct ca_journal_entry j;
	char serial[CA_SERIAL_HEX];
	const uint8_t *der;
	size_t der_len;
	MDB_val key = {strlen(txid), (void *)txid}, val;
	MDB_txn *txn = NULL;
	int unbound;

	if (mdb_txn_begin(ca->env, NULL, MDB_RDONLY, &txn) != 0)
		return;
	unbound =
	    ca_ledger_find_txid(ca, txn, txid, &der, &der_len, serial) == 1 &&
	    ca_journal_get(ca, txn, txid, &j) == 1 &&
	    mdb_get(txn, ca->pending, &key, &val) == MDB_NOTFOUND;
	mdb_txn_abort(txn);
	reply->sign->has_nothing_bound = 1;
	reply->sign->nothing_bound = unbound;
}

/* After ca_sign_refuse, for a retry whose certificate is never its
 * answer: the RA may release a password the request reserved. */
static void
ca_sign_never_answered(Scep__V1__Reply *reply)
{
	reply->sign->has_never_answered = 1;
	reply->sign->never_answered = 1;
}

/* After an answer an earlier request of the transaction paid for: the RA
 * releases a password this one reserved. */
static void
ca_sign_paid_before(Scep__V1__Reply *reply)
{
	reply->sign->has_paid_before = 1;
	reply->sign->paid_before = 1;
}

static void
ca_sign_internal(Scep__V1__Reply *reply, const Scep__V1__Request *req,
    const char *txid, const char *what, int mdb_error)
{
	if (mdb_error != 0)
		log_event(LOG_LEVEL_ERROR, txid, req->id, "%s: %s", what,
		    store_strerror(mdb_error));
	else
		log_openssl(LOG_LEVEL_ERROR, txid, what);
	reply->status = SCEP__V1__STATUS__STATUS_INTERNAL;
	reply->error = "the CA cannot issue a certificate now";
}

/* The certificate `der`, and as the CertRep's degenerate SignedData when
 * `cert` (the same, parsed) is given: built here, where the certificate
 * is at hand, it spares the RA decoding its key. */
static void
ca_sign_answer(Scep__V1__Reply *reply, const uint8_t *der, size_t len,
    X509 *cert, struct rpc_arena *arena)
{
	Scep__V1__SignReply *out = rpc_alloc(arena, sizeof(*out));
	uint8_t *copy = rpc_alloc(arena, len), *certs_only = NULL;
	STACK_OF(X509) *one = cert != NULL ? sk_X509_new_null() : NULL;
	size_t certs_only_len = 0;

	memcpy(copy, der, len);
	scep__v1__sign_reply__init(out);
	out->has_cert = 1;
	out->cert.data = copy;
	out->cert.len = len;
	/* Without it the RA builds the SignedData from `cert` itself. */
	if (one != NULL && sk_X509_push(one, cert) > 0 &&
	    scep_certs_only_build(one, &certs_only, &certs_only_len) ==
	        SCEP_OK) {
		rpc_adopt(arena, certs_only);
		out->has_certs_only = 1;
		out->certs_only.data = certs_only;
		out->certs_only.len = certs_only_len;
	} else
		free(certs_only);
	sk_X509_free(one);
	reply->body_case = SCEP__V1__REPLY__BODY_SIGN;
	reply->sign = out;
}

/* The subject as one line, in the order sent: "O=Acme,OU=IT,CN=x". */
char *
ca_subject_line(const X509_NAME *name, struct rpc_arena *arena)
{
	unsigned long flags = XN_FLAG_SEP_COMMA_PLUS | XN_FLAG_FN_SN |
	    ((ASN1_STRFLGS_RFC2253 | ASN1_STRFLGS_ESC_CTRL) &
	        ~ASN1_STRFLGS_ESC_MSB);
	BIO *bio = BIO_new(BIO_s_mem());
	char *data = NULL, *line;
	long len;

	if (bio == NULL || X509_NAME_print_ex(bio, name, 0, flags) < 0) {
		BIO_free(bio);
		ERR_clear_error();
		return rpc_strdup(arena, "?");
	}
	len = BIO_get_mem_data(bio, &data);
	line = rpc_alloc(arena, (size_t)len + 1);
	memcpy(line, data, (size_t)len);
	BIO_free(bio);
	return line;
}

/* A refusal goes to the ledger with what could be read of the request. */
static void
ca_sign_record_refusal(const struct ca *ca, const Scep__V1__SignRequest *in,
    X509_REQ *checked, const char *txid, const struct ca_template *tpl,
    const char *why, struct rpc_arena *arena)
{
	const unsigned char *p = in->csr.data;
	/* Not read by ca_csr_read (unreadable, its signature bad): what
	 * OpenSSL makes of it, for the operator. */
	X509_REQ *csr = checked != NULL
	    ? checked
	    : d2i_X509_REQ(NULL, &p, (long)in->csr.len);
	char **sans = csr != NULL ? ca_csr_sans(csr) : NULL;

	ca_ledger_refusal(ca, txid, in->client_addr ? in->client_addr : "",
	    csr != NULL ? ca_subject_line(X509_REQ_get_subject_name(csr), arena)
	                : "",
	    sans, tpl != NULL ? tpl->name : "", why);
	ca_strings_free(sans);
	if (csr != checked)
		X509_REQ_free(csr);
	ERR_clear_error();
}

/* A retry is the same request sent again; the same key asking for
 * another name is a new enrollment, which RFC 8894's transactionID (the
 * key's) cannot tell from a retry: handed the old certificate, the device
 * held one for a name it did not ask, and its new password was spent. */
int
ca_retry_asks_the_same(const struct ca *ca, MDB_txn *txn, const char *serial,
    X509 *old, X509_REQ *csr, const struct ca_template *tpl)
{
	MDB_val key = {strlen(serial), (void *)serial}, val;
	struct ca_ledger_view view;
	char recorded[CA_TEMPLATE_NAME_MAX];
	X509_NAME *subject = ca_issue_subject(tpl, csr);
	GENERAL_NAMES *had =
	    X509_get_ext_d2i(old, NID_subject_alt_name, NULL, NULL);
	GENERAL_NAMES *asks = NULL;
	int same = -1;

	if (subject == NULL || ca_csr_san_names(csr, &asks) != 0 ||
	    mdb_get(txn, ca->certs, &key, &val) != 0 ||
	    ca_ledger_view(val.mv_data, val.mv_size, &view) != 0)
		goto out;
	/* As asked (a template without Subject then), or as the template
	 * gives it now (with Subject: its RDNs and the request's CN). */
	same = (X509_NAME_cmp(X509_REQ_get_subject_name(csr),
	            X509_get_subject_name(old)) == 0 ||
	           X509_NAME_cmp(subject, X509_get_subject_name(old)) == 0) &&
	    ca_names_within(asks, had) && ca_names_within(had, asks) &&
	    /* A record of version 1 does not say its template. */
	    (ca_ledger_template(&view, recorded, sizeof(recorded)) != 0 ||
	        strcmp(recorded, tpl->name) == 0);
out:
	X509_NAME_free(subject);
	GENERAL_NAMES_free(had);
	GENERAL_NAMES_free(asks);
	ERR_clear_error();
	return same;
}

/*
 * Whether the certificate `serial` a transactionID holds may be its answer
 * again (to a retry, a poll): not when revoked (a hold included) or
 * expired since, nor when its key was revoked for keyCompromise through
 * another certificate (a renewal that kept the key), nor, `replaced_too`,
 * when a CA this one replaced issued it. RFC 8894's transactionID is the
 * key's: a device re-enrolling with the key of that certificate comes back
 * here, as strongSwan's pki and sscep do with a kept key file. 0 when it
 * may; 1 with `why` (a failInfoText) when not; -1 when the ledger cannot
 * be read.
 */
int
ca_held_cert_refused(const struct ca *ca, MDB_txn *txn, const char *serial,
    X509 *cert, int replaced_too, char *why, size_t why_size)
{
	char other[CA_SERIAL_HEX];
	int e;

	if ((e = ca_ledger_is_revoked(ca, txn, serial)) < 0)
		return -1;
	if (e > 0 || X509_cmp_time(X509_get0_notAfter(cert), NULL) <= 0) {
		snprintf(why, why_size,
		    "certificate %s of this transactionID %s: enroll with a "
		    "new key",
		    serial, e > 0 ? "is revoked" : "has expired");
		return 1;
	}
	if ((e = ca_ledger_compromised(
	         ca, txn, X509_get0_pubkey(cert), other)) != 0) {
		if (e < 0)
			return -1;
		snprintf(why, why_size,
		    "the request's key is that of certificate %s, revoked for "
		    "keyCompromise: enroll with a new key",
		    other);
		return 1;
	}
	/* Not the answer (the device could not verify it with the CA
	 * certificate it fetched), and not a new enrollment either: its
	 * password may be the one that paid for that certificate, which
	 * the challenge service lets its transaction present again (a
	 * retry), and would then pay for another, of any subject. A new
	 * key makes a new transaction. */
	if (replaced_too && !pki_issued_by(cert, ca->cert)) {
		snprintf(why, why_size,
		    "certificate %s of this transactionID was issued by a CA "
		    "this one replaced: enroll with a new key, or renew that "
		    "certificate ([ca] PreviousCACertificate)",
		    serial);
		return 1;
	}
	return 0;
}

/*
 * A transaction seen before: the same key asking the same gets the same
 * certificate (the device retried), another key or another request is
 * refused. 1 when answered, 0 when the transaction is new, -1 on an
 * internal error (answered).
 */
static int
ca_sign_retry(const struct ca *ca, MDB_txn *txn, X509_REQ *csr,
    const struct ca_template *tpl, const Scep__V1__SignRequest *in,
    const Scep__V1__Request *req, const char *txid, const char *addr,
    Scep__V1__Reply *reply, struct rpc_arena *arena)
{
	const uint8_t *der = NULL, *p;
	size_t der_len = 0;
	char serial[CA_SERIAL_HEX], why[300];
	X509 *old = NULL;
	int found, refused, same, rc = -1;

	found = ca_ledger_find_txid(ca, txn, txid, &der, &der_len, serial);
	if (found == 1)
		return 0;
	p = der;
	if (found < 0 || (old = x509parse_cert(&p, (long)der_len)) == NULL) {
		ca_sign_internal(
		    reply, req, txid, "ledger record unreadable", 0);
		goto out;
	}
	/* A renewal keeping its key keeps its transactionID too (RFC 8894
	 * derives it from the key): the certificate it renews is not an
	 * answer to it. */
	if (in->has_renewal_of &&
	    (size_t)i2d_X509(old, NULL) == in->renewal_of.len) {
		unsigned char *mine = NULL;
		int len = i2d_X509(old, &mine),
		    same = len > 0 &&
		    memcmp(mine, in->renewal_of.data, (size_t)len) == 0;

		OPENSSL_free(mine);
		if (same) {
			rc = 0;
			goto out;
		}
	}
	if (EVP_PKEY_eq(X509_get0_pubkey(old), X509_REQ_get0_pubkey(csr)) !=
	    1) {
		ca_sign_refuse(reply, req, txid, addr,
		    SCEP__V1__FAIL_INFO__FAIL_BAD_REQUEST, CA_TXID_OTHER_KEY,
		    arena);
		rc = 1;
		goto out;
	}
	if ((refused = ca_held_cert_refused(
	         ca, txn, serial, old, 1, why, sizeof(why))) != 0) {
		if (refused < 0) {
			ca_sign_internal(
			    reply, req, txid, "ledger record unreadable", 0);
			goto out;
		}
		ca_sign_refuse(reply, req, txid, addr,
		    SCEP__V1__FAIL_INFO__FAIL_BAD_REQUEST, why, arena);
		ca_sign_never_answered(reply);
		rc = 1;
		goto out;
	}
	if ((same = ca_retry_asks_the_same(ca, txn, serial, old, csr, tpl)) <
	    0) {
		ca_sign_internal(reply, req, txid, "retry comparison", 0);
		goto out;
	}
	if (!same) {
		snprintf(why, sizeof(why), CA_RETRY_OTHER_REQUEST, serial);
		ca_sign_refuse(reply, req, txid, addr,
		    SCEP__V1__FAIL_INFO__FAIL_BAD_REQUEST, why, arena);
		ca_sign_never_answered(reply);
		rc = 1;
		goto out;
	}
	ca_sign_answer(reply, der, der_len, old, arena);
	ca_sign_paid_before(reply);
	log_event(LOG_LEVEL_INFO, txid, req->id,
	    "retry (client %s): the same certificate, serial %s", addr, serial);
	rc = 1;
out:
	X509_free(old);
	ERR_clear_error();
	return rc;
}

static void
ca_sign_pending(Scep__V1__Reply *reply, struct rpc_arena *arena)
{
	Scep__V1__SignReply *out = rpc_alloc(arena, sizeof(*out));

	scep__v1__sign_reply__init(out);
	out->has_pending = 1;
	out->pending = 1;
	reply->body_case = SCEP__V1__REPLY__BODY_SIGN;
	reply->sign = out;
}

#ifdef SCEPD_TEST_HOOKS
/* Test builds only: the crash the journal is for, where it is asked. The
 * test compares what it logs with what the retry gets. */
static void
ca_test_crash(const struct ca *ca, long issuance, const char *point,
    const char *txid, const char *hex, const unsigned char *der, size_t der_len)
{
	unsigned char md[CA_TBS_HASH_LEN];
	char md_hex[2 * CA_TBS_HASH_LEN + 1] = "-";

	if (ca->crash_at <= 0 || issuance != ca->crash_at ||
	    strcmp(ca->crash_point, point) != 0)
		return;
	if (der != NULL &&
	    EVP_Digest(der, der_len, md, NULL, EVP_sha256(), NULL) == 1)
		for (size_t i = 0; i < sizeof(md); i++)
			snprintf(md_hex + 2 * i, 3, "%02x", md[i]);
	log_warn("test hook: crashing after '%s' of transaction %s: serial "
	         "%s, certificate SHA-256 %s",
	    point, txid, hex, md_hex);
	_exit(70);
}
#else
#define ca_test_crash(ca, issuance, point, txid, hex, der, der_len) ((void)0)
#endif

/*
 * The journalled certificate of a transaction the CA crashed in the middle
 * of, built again from its serial and time: NULL (and a warning) when it
 * cannot be the same (another template, key or request, a changed CA) or
 * has expired by `now` (a short ValidityDays, a retry days later), which
 * is safe, as it was never delivered.
 */
static X509 *
ca_issue_rebuild(const struct ca *ca, X509_REQ *csr,
    const struct ca_template *tpl, const struct ca_journal_entry *j,
    const char *txid, time_t now)
{
	unsigned char hash[CA_TBS_HASH_LEN];
	char hex[CA_SERIAL_HEX];
	const char *why = "another template";
	X509 *cert = NULL;

	for (int i = 0; i < CA_SERIAL_LEN; i++)
		snprintf(hex + 2 * i, 3, "%02X", j->serial[i]);
	if (strcmp(j->template_name, tpl->name) == 0) {
		why = "another request or a changed CA";
		cert = ca_issue_build(
		    ca, tpl, csr, j->serial, (time_t)j->built_at, &why);
		if (cert != NULL &&
		    (ca_issue_tbs_hash(cert, hash) != 0 ||
		        CRYPTO_memcmp(hash, j->tbs_sha256, sizeof(hash)) !=
		            0)) {
			why = "another request or a changed CA";
			X509_free(cert);
			cert = NULL;
		}
		if (cert != NULL &&
		    X509_cmp_time(X509_get0_notAfter(cert), &now) <= 0) {
			why = "it would have expired already";
			X509_free(cert);
			cert = NULL;
		}
	}
	if (cert == NULL)
		log_warn("transaction %s: its journalled certificate (serial "
		         "%s, template %s) cannot be built again (%s); it was "
		         "never delivered: a new serial is issued",
		    txid, hex, j->template_name, why);
	else
		log_info("transaction %s: the CA stopped after journalling "
		         "serial %s: that certificate is signed now",
		    txid, hex);
	return cert;
}

/* One certificate on its way: what ca_issue_prepare leaves for
 * ca_issue_finish. */
struct ca_issue {
	X509_REQ *csr;
	const struct ca_template *tpl;
	time_t now;
	struct ca_ledger_entry *entry;
	struct ca_journal_entry j;
	int journalled; /* written now: to commit before the signature */
	long issuance; /* the CA's how-many-th (test hooks) */
	char hex[CA_SERIAL_HEX];
	X509 *cert; /* built, then signed */
	unsigned char *der;
	int der_len;
	struct rpc_arena *arena; /* the answer's: the subject line */
	int failed; /* not built or not signed: the reason in entry->subject */
};

/*
 * Before the signature, in `txn`: the certificate to sign and, unless the
 * journal holds this transaction's already (the CA crashed after it, and
 * not so long ago that no retry was to be waited for), its serial and
 * TBSCertificate hash in the journal. 0, an MDB_* code, or -1 with the
 * reason in entry->subject.
 */
static int
ca_issue_prepare(const struct ca *ca, MDB_txn *txn, struct ca_issue *is)
{
	struct ca_ledger_entry *entry = is->entry;
	struct ca_journal_entry *j = &is->j;
	const char *why = NULL;
	int used = 1, found, e;

#ifdef SCEPD_TEST_HOOKS
	is->issuance = ++((struct ca *)ca)->issuances;
#endif
	entry->subject = "the certificate cannot be built";
	if ((found = ca_journal_get(ca, txn, entry->txid, j)) < 0) {
		entry->subject = "the journal is unreadable";
		return -1;
	}
	if (found == 0 && ca_journal_stale(ca, j, is->now)) {
		if ((e = ca_journal_abandon(ca, txn, entry->txid, j)) != 0)
			return e;
		found = 1;
	}
	if (found == 0 &&
	    (is->cert = ca_issue_rebuild(
	         ca, is->csr, is->tpl, j, entry->txid, is->now)) != NULL)
		is->now = (time_t)j->built_at;
	if (is->cert == NULL) {
		for (int i = 0; i < CA_SERIAL_ATTEMPTS && used != 0; i++) {
			if (ca_serial_new(j->serial, is->hex) != 0 ||
			    (used = ca_ledger_serial_used(ca, txn, is->hex)) <
			        0) {
				entry->subject = "no random serial";
				return -1;
			}
		}
		if (used) {
			log_error("%d random serials in a row already used: "
			          "the random number generator is broken",
			    CA_SERIAL_ATTEMPTS);
			entry->subject = "no unused serial";
			return -1;
		}
		if ((is->cert = ca_issue_build(ca, is->tpl, is->csr, j->serial,
		         is->now, &why)) == NULL) {
			entry->subject = why;
			return -1;
		}
		/* Before the signature: the serial and what will be signed. */
		j->built_at = (int64_t)is->now;
		snprintf(j->template_name, sizeof(j->template_name), "%s",
		    is->tpl->name);
		if (ca_issue_tbs_hash(is->cert, j->tbs_sha256) != 0)
			return -1;
		if ((e = ca_journal_put(ca, txn, entry->txid, j)) != 0)
			return e;
		is->journalled = 1;
	}
	for (int i = 0; i < CA_SERIAL_LEN; i++)
		snprintf(is->hex + 2 * i, 3, "%02X", j->serial[i]);
	return 0;
}

/*
 * After the journal's commit: the signature, checked against the journal,
 * and the certificate's DER; is->failed set when it cannot be. On any of
 * the CA's signing threads ([ca] SignThreads): it touches only `is`.
 */
static void
ca_issue_sign(void *item, void *arg)
{
	const struct ca *ca = arg;
	struct ca_issue *is = item;
	struct ca_ledger_entry *entry = is->entry;
	unsigned char signed_hash[CA_TBS_HASH_LEN];
	const char *why = NULL;

	if (is->failed)
		return;
	if (X509_sign(is->cert, ca->key, EVP_sha256()) <= 0) {
		why = "signing failed";
	} else if (ca_issue_tbs_hash(is->cert, signed_hash) != 0 ||
	    CRYPTO_memcmp(signed_hash, is->j.tbs_sha256, sizeof(signed_hash)) !=
	        0) {
		/* What was signed is what was journalled, or the journal
		 * lies. */
		log_error("transaction %s: the signed TBSCertificate of serial "
		          "%s is not the journalled one",
		    entry->txid, is->hex);
		why = "the signed certificate is not the journalled one";
	} else if ((is->der_len = i2d_X509(is->cert, &is->der)) <= 0) {
		why = "the signed certificate cannot be encoded";
	}
	if (why != NULL) {
		/* OpenSSL's errors are this thread's: logged and cleared
		 * here, not left for the next failure on it. */
		log_openssl(LOG_LEVEL_ERROR, entry->txid, why);
		ERR_clear_error();
		entry->subject = why;
		is->failed = 1;
	}
}

/*
 * After the signature, in `txn`: the certificate in the ledger, its
 * journal entry gone. Returns as ca_issue_prepare.
 */
static int
ca_issue_finish(const struct ca *ca, MDB_txn *txn, struct ca_issue *is)
{
	struct ca_ledger_entry *entry = is->entry;
	time_t not_after;
	int e;

	ca_test_crash(ca, is->issuance, "signed", entry->txid, is->hex, is->der,
	    (size_t)is->der_len);
	entry->der = is->der;
	entry->der_len = (size_t)is->der_len;
	entry->subject =
	    ca_subject_line(X509_get_subject_name(is->cert), is->arena);
	entry->issued_at = (int64_t)is->now;
	entry->template_name = is->tpl->name;
	if (pki_time(X509_get0_notAfter(is->cert), &not_after) == 0)
		entry->not_after = (int64_t)not_after;
	if ((e = ca_ledger_put(ca, txn, is->hex, entry)) == 0)
		e = ca_journal_del(ca, txn, entry->txid);
	return e;
}

/*
 * The certificates of `group` in *txn: each built and journalled, the
 * journal committed if any was written (the one flush before any
 * signature), all signed (shared among the signing threads), each put in
 * the ledger, which the caller commits. 0, or an MDB_* code that fails
 * them all (*what says where); a certificate that cannot be built or
 * signed fails alone (its `failed`).
 */
static int
ca_issue_group(const struct ca *ca, MDB_txn **txn,
    struct ca_issue *const *group, size_t n, const char **what)
{
	void *items[RPC_BATCH_MAX] = {NULL};
	int e, journalled = 0;
	size_t i;

	*what = "ledger write";
	for (i = 0; i < n; i++) {
		/* -1 fails this one; an MDB_* code (negative too) or errno
		 * fails the group. */
		if ((e = ca_issue_prepare(ca, *txn, group[i])) != 0 && e != -1)
			return e;
		group[i]->failed = e == -1;
		journalled |= group[i]->journalled;
	}
	if (journalled) {
		if ((e = ca_journal_commit(ca, txn)) != 0) {
			*what = "journal commit";
			return e;
		}
		for (i = 0; i < n; i++)
			if (group[i]->journalled)
				ca_test_crash(ca, group[i]->issuance, "journal",
				    group[i]->entry->txid, group[i]->hex, NULL,
				    0);
	}
	/* A group is a batch's (RPC_BATCH_MAX at most) or one request's. */
	if (n > RPC_BATCH_MAX) {
		*what = "certificate group";
		return EINVAL;
	}
	for (i = 0; i < n; i++)
		items[i] = group[i];
	pool_run(ca->signers, ca_issue_sign, (void *)ca, items, n);
	for (i = 0; i < n; i++) {
		if (group[i]->failed)
			continue;
		if ((e = ca_issue_finish(ca, *txn, group[i])) != 0 && e != -1)
			return e;
		group[i]->failed = e == -1;
	}
	return 0;
}

int
ca_issue_record(const struct ca *ca, MDB_txn **txn, X509_REQ *csr,
    const struct ca_template *tpl, time_t now, struct ca_ledger_entry *entry,
    char hex[CA_SERIAL_HEX], unsigned char **der, int *der_len, X509 **issued,
    struct rpc_arena *arena)
{
	struct ca_issue is, *one = &is;
	const char *what;
	int e;

	memset(&is, 0, sizeof(is));
	is.csr = csr;
	is.tpl = tpl;
	is.now = now;
	is.entry = entry;
	is.arena = arena;
	if ((e = ca_issue_group(ca, txn, &one, 1, &what)) == 0 && is.failed)
		e = -1;
	memcpy(hex, is.hex, CA_SERIAL_HEX);
	*der = is.der;
	*der_len = is.der_len;
	if (e == 0 && issued != NULL) {
		*issued = is.cert;
		is.cert = NULL;
	}
	X509_free(is.cert);
	return e;
}

/* A SignRequest of a batch, from its checks to its answer. */
struct ca_sign_job {
	const Scep__V1__Request *req;
	Scep__V1__Reply *reply;
	struct rpc_arena *arena;
	const char *txid, *addr;
	X509_REQ *csr;
	const struct ca_template *tpl;
	char **sans;
	char renewed[CA_SERIAL_HEX];
	struct ca_ledger_entry issued;
	struct ca_issue is;
	int late; /* past its deadline once checked: not signed */
};

/*
 * A refusal of the request, after its CSR was read: the check's write
 * transaction ends first (the refusal is recorded in one of its own).
 * `may_release`: a refusal of the request itself, its password may be
 * released when nothing is bound to its transactionID (ca_sign_nothing_bound).
 */
static void
ca_sign_refused(const struct ca *ca, struct ca_sign_job *job, MDB_txn **txn,
    int fail_info, const char *why, int may_release)
{
	const Scep__V1__SignRequest *in = job->req->sign;

	mdb_txn_abort(*txn);
	*txn = NULL;
	ca_sign_refuse(job->reply, job->req, job->txid, job->addr, fail_info,
	    why, job->arena);
	if (may_release)
		ca_sign_nothing_bound(ca, job->txid, job->reply);
	ca_sign_record_refusal(
	    ca, in, job->csr, job->txid, job->tpl, why, job->arena);
}

int
ca_key_refused(const struct ca *ca, MDB_txn *txn, X509_REQ *csr,
    struct ca_refusal *refusal)
{
	char serial[CA_SERIAL_HEX];
	int found =
	    ca_ledger_compromised(ca, txn, X509_REQ_get0_pubkey(csr), serial);

	if (found <= 0)
		return found;
	refusal->fail_info = SCEP__V1__FAIL_INFO__FAIL_BAD_REQUEST;
	snprintf(refusal->why, sizeof(refusal->why),
	    "the request's key is that of certificate %s, revoked for "
	    "keyCompromise: enroll with a new key",
	    serial);
	return 1;
}

/*
 * Everything decided before a certificate is built, in a write
 * transaction of its own: the CSR, a retry, a renewal, the site's
 * policies, an operator's rejection or approval. 1 when answered (a
 * refusal, the earlier certificate, pending), 0 when the certificate is to
 * be issued: nothing is written then.
 */
static int
ca_sign_check(const struct ca *ca, struct ca_sign_job *job)
{
	const Scep__V1__Request *req = job->req;
	const Scep__V1__SignRequest *in = req->sign;
	Scep__V1__Reply *reply = job->reply;
	struct rpc_arena *arena = job->arena;
	const char *txid = in->transaction_id;
	const char *addr = in->client_addr != NULL && in->client_addr[0]
	    ? in->client_addr
	    : "-";
	struct ca_refusal refusal;
	MDB_txn *txn = NULL;
	time_t now = time(NULL);
	int e, held, unavailable = 0, rc = 1;

	job->txid = txid;
	job->addr = addr;
	job->is.now = now;
	if (txid == NULL || txid[0] == '\0' || strlen(txid) > CA_TXID_MAX) {
		log_event(LOG_LEVEL_WARN, NULL, req->id,
		    "refused request from %s: transactionID missing or longer "
		    "than %d bytes",
		    req->origin ? req->origin : "?", CA_TXID_MAX);
		/* The device's to fix: a refusal (FAILURE), not our error. */
		ca_sign_refuse(reply, req, NULL, addr,
		    SCEP__V1__FAIL_INFO__FAIL_BAD_REQUEST,
		    "transactionID missing or longer than 255 characters",
		    arena);
		return 1;
	}
	memset(&refusal, 0, sizeof(refusal));
	if (ca_csr_read(ca, in->csr.data, in->csr.len, 1, &job->csr, &job->tpl,
	        &refusal) != 0) {
		ca_sign_refuse(reply, req, txid, addr, refusal.fail_info,
		    refusal.why, arena);
		ca_sign_nothing_bound(ca, txid, reply);
		ca_sign_record_refusal(
		    ca, in, NULL, txid, job->tpl, refusal.why, arena);
		return 1;
	}
	if ((e = mdb_txn_begin(ca->env, NULL, 0, &txn)) != 0) {
		ca_sign_internal(reply, req, txid, "ledger", e);
		return 1;
	}
	/* A transaction issued before is answered from the ledger whatever
	 * the rules say today (the rules of its day passed it: its answer
	 * was lost, certmonger sends its request again), when the request
	 * asks what the certificate holds (ca_retry_asks_the_same). */
	if (ca_sign_retry(ca, txn, job->csr, job->tpl, in, req, txid, addr,
	        reply, arena) != 0) {
		/* The transactionID holds a certificate: its password is not
		 * to be freed, whatever the answer. */
		if (reply->sign != NULL) {
			reply->sign->has_nothing_bound = 1;
			reply->sign->nothing_bound = 0;
		}
		goto out;
	}
	if (ca_csr_rules(ca, job->tpl, job->csr, &refusal) != 0 ||
	    (e = ca_key_refused(ca, txn, job->csr, &refusal)) > 0) {
		ca_sign_refused(
		    ca, job, &txn, refusal.fail_info, refusal.why, 1);
		goto out;
	}
	if (e < 0) {
		ca_sign_internal(reply, req, txid, "ledger", 0);
		goto out;
	}
	job->sans = ca_csr_sans(job->csr);
	if (in->has_renewal_of &&
	    ca_renewal_check(ca, txn, in->renewal_of.data, in->renewal_of.len,
	        job->csr, job->tpl, now, &refusal, job->renewed) != 0) {
		ca_sign_refused(
		    ca, job, &txn, refusal.fail_info, refusal.why, 0);
		goto out;
	}
	if (ca->npolicies > 0 &&
	    ca_policies_check_request(ca, txn, job->csr, in->csr.data,
	        in->csr.len, job->tpl, job->sans, txid, in->client_addr, now,
	        req->deadline_ms, &refusal, &unavailable, arena) != 0) {
		if (unavailable) {
			log_event(
			    LOG_LEVEL_WARN, txid, req->id, "%s", refusal.why);
			reply->status = SCEP__V1__STATUS__STATUS_UNAVAILABLE;
			reply->error = rpc_strdup(arena, refusal.why);
			goto out;
		}
		ca_sign_refused(
		    ca, job, &txn, refusal.fail_info, refusal.why, 1);
		goto out;
	}
	/* A transactionID is its key's (RFC 8894): one waiting for an
	 * operator, or rejected, is not taken over by another request,
	 * PKCSReq or renewal, whatever its password. Another key is told
	 * what ca_sign_retry tells it, nothing of the request's state or
	 * the operator's reason: any holder of a certificate of this CA
	 * can send a renewal under any transactionID. */
	if ((held = ca_pending_held(ca, txn, txid, job->csr, in->csr.data,
	         in->csr.len, job->tpl, now)) < 0) {
		ca_sign_internal(
		    reply, req, txid, "pending table unreadable", 0);
		goto out;
	}
	if (held == CA_PENDING_OTHER_KEY) {
		/* The device is told what ca_sign_retry tells another key;
		 * the ledger says more. */
		mdb_txn_abort(txn);
		txn = NULL;
		ca_sign_refuse(reply, req, txid, addr,
		    SCEP__V1__FAIL_INFO__FAIL_BAD_REQUEST, CA_TXID_OTHER_KEY,
		    arena);
		ca_sign_record_refusal(ca, in, job->csr, txid, job->tpl,
		    CA_TXID_OTHER_KEY " (a request pending approval or "
		                      "rejected)",
		    arena);
		goto out;
	}
	if (ca_pending_rejected(
	        ca, txn, txid, refusal.why, sizeof(refusal.why))) {
		ca_sign_refuse(reply, req, txid, addr,
		    SCEP__V1__FAIL_INFO__FAIL_BAD_REQUEST, refusal.why, arena);
		goto out;
	}
	/* What the operator sees is what is approved: a request sent again
	 * stays as it was asked (and when, for PendingDays); another CSR
	 * under it, or one for another template (one without approval
	 * too), is refused until the operator decides or the request
	 * expires. The same one after ApprovalRequired was switched off is
	 * issued. */
	if (held == CA_PENDING_OTHER_CSR) {
		ca_sign_refused(ca, job, &txn,
		    SCEP__V1__FAIL_INFO__FAIL_BAD_REQUEST,
		    CA_PENDING_OTHER_REQUEST, 0);
		goto out;
	}
	if (job->tpl->s.approval_required && !job->renewed[0]) {
		/* Checked now, issued when an operator approves it. */
		e = held == CA_PENDING_SAME
		    ? 0
		    : ca_pending_put(ca, txn, in, job->tpl, now);
		if (e == 0)
			e = mdb_txn_commit(txn);
		else
			mdb_txn_abort(txn);
		txn = NULL;
		if (e != 0) {
			ca_sign_internal(reply, req, txid, "pending write", e);
			goto out;
		}
		ca_sign_pending(reply, arena);
		if (held == CA_PENDING_SAME)
			ca_sign_paid_before(reply);
		log_event(LOG_LEVEL_INFO, txid, req->id,
		    "%s (template %s, client %s): scepctl approve %s",
		    held == CA_PENDING_SAME
		        ? "sent again, still pending an operator's approval"
		        : "pending an operator's approval",
		    job->tpl->name, addr, txid);
		goto out;
	}
	rc = 0;
out:
	if (txn != NULL)
		mdb_txn_abort(txn);
	return rc;
}

static void
ca_sign_job_free(struct ca_sign_job *job)
{
	ca_strings_free(job->sans);
	OPENSSL_free(job->is.der);
	X509_free(job->is.cert);
	X509_REQ_free(job->csr);
}

/* The certificate of `job`, signed and recorded: its answer. */
static void
ca_sign_deliver(struct ca *ca, struct ca_sign_job *job)
{
	const Scep__V1__SignRequest *in = job->req->sign;
	X509 *cert = job->is.cert;

	ca_test_crash(ca, job->is.issuance, "recorded", job->txid, job->is.hex,
	    job->is.der, (size_t)job->is.der_len);
	/* The ledger's pages leave the CA's RSS (store_map_release): it
	 * would otherwise grow by 2 KiB per certificate ever issued. Every
	 * 16 issuances: an issuance reads a few pages of several trees at
	 * random places, and the kernel maps 64 KiB around each, so up to
	 * about 6 MiB are mapped in between (RESULTS.md: 1.3-5.9 MiB). */
	store_map_release_every(&ca->ledger_map, 16);
#ifdef SCEPD_TEST_HOOKS
	if (ca->cert_alone)
		cert = NULL;
#endif
	ca_sign_answer(
	    job->reply, job->is.der, (size_t)job->is.der_len, cert, job->arena);
	log_event(LOG_LEVEL_INFO, job->txid, job->req->id,
	    "issued serial %s to \"%s\" under template %s%s%s (client %s, "
	    "%s, %s)",
	    job->is.hex, job->issued.subject, job->tpl->name,
	    job->renewed[0] ? ", renewing " : "", job->renewed, job->addr,
	    in->has_message_type ? scep_message_type_name(in->message_type)
	                         : "messageType ?",
	    job->req->origin ? job->req->origin : "?");
}

/*
 * The certificates of the checked `jobs`, all in two transactions: the
 * journal's (one flush) before any signature, the ledger's (fully
 * durable) before any answer. A disk flush costs the CA's one thread more
 * than the signature (tests/bench/RESULTS.md); jobs that arrived together
 * share theirs. A job that cannot be built or signed is refused alone; a
 * failed write fails the whole batch, as it would each job alone.
 */
static void
ca_sign_issue(struct ca *ca, struct ca_sign_job *jobs, size_t n)
{
	struct ca_issue *group[RPC_BATCH_MAX];
	MDB_txn *txn = NULL;
	const char *what = "ledger";
	int64_t now = rpc_now_ms();
	int e = 0;
	size_t i, live = 0;

	for (i = 0; i < n; i++) {
		struct ca_sign_job *job = &jobs[i];

		/* Its checks took it past its deadline (a slow policy
		 * plugin, a long batch): the caller stopped waiting, and no
		 * one would read the answer; the certificate would exist with
		 * no device holding it and no "used" mark for its password. */
		if ((job->late = job->req->deadline_ms < now)) {
			log_event(LOG_LEVEL_WARN, job->txid, job->req->id,
			    "not signed: past its deadline after its checks");
			job->reply->status = SCEP__V1__STATUS__STATUS_INTERNAL;
			job->reply->error =
			    "the CA cannot issue a certificate now";
			continue;
		}
		job->issued.txid = job->txid;
		job->issued.client_addr = job->req->sign->client_addr != NULL
		    ? job->req->sign->client_addr
		    : "";
		job->issued.sans = job->sans;
		job->issued.renewal_of = job->renewed[0] ? job->renewed : NULL;
		job->is.csr = job->csr;
		job->is.tpl = job->tpl;
		job->is.entry = &job->issued;
		job->is.arena = job->arena;
		group[live++] = &job->is;
	}
	if (live > 0 && (e = mdb_txn_begin(ca->env, NULL, 0, &txn)) == 0 &&
	    (e = ca_issue_group(ca, &txn, group, live, &what)) == 0) {
		e = mdb_txn_commit(txn);
		txn = NULL;
		what = "ledger commit";
	}
	for (i = 0; i < n; i++) {
		struct ca_sign_job *job = &jobs[i];

		if (job->late)
			continue;
		if (job->is.failed)
			ca_sign_internal(job->reply, job->req, job->txid,
			    job->issued.subject, 0);
		else if (e != 0)
			ca_sign_internal(
			    job->reply, job->req, job->txid, what, e);
		else
			ca_sign_deliver(ca, job);
	}
	if (txn != NULL)
		mdb_txn_abort(txn);
	for (i = 0; i < n; i++)
		ca_sign_job_free(&jobs[i]);
	ERR_clear_error();
}

static int
ca_sign_queued(const struct ca_sign_job *jobs, size_t n, const char *txid)
{
	for (size_t i = 0; i < n; i++)
		if (txid != NULL && strcmp(jobs[i].txid, txid) == 0)
			return 1;
	return 0;
}

/*
 * The first requests of `items` whose certificates can share commits:
 * checked one by one, then issued together. A request that must see
 * those before it in the ledger (a renewal, any with issuance policies, a
 * second copy of a transactionID) starts the next group. Returns how many
 * were answered.
 */
size_t
ca_handle_sign_batch(void *worker, struct rpc_batch_item *items, size_t n)
{
	struct ca *ca = worker;
	struct ca_sign_job jobs[RPC_BATCH_MAX];
	size_t queued = 0, i;

	ca_pending_purge(ca, 0);
#ifdef SCEPD_TEST_HOOKS
	if (ca->hold_after > 0 && n > 1)
		log_warn("test hook: %zu SignRequests handed over together", n);
#endif
	for (i = 0; i < n; i++) {
		const Scep__V1__SignRequest *in = items[i].req->sign;
		int alone = ca->npolicies > 0 || in->has_renewal_of;
		struct ca_sign_job *job = &jobs[queued];

		if (queued > 0 &&
		    (alone || queued == RPC_BATCH_MAX ||
		        ca_sign_queued(jobs, queued, in->transaction_id)))
			break;
		memset(job, 0, sizeof(*job));
		job->req = items[i].req;
		job->reply = items[i].reply;
		job->arena = items[i].arena;
#ifdef SCEPD_TEST_HOOKS
		if (ca->check_ms > 0)
			usleep((useconds_t)ca->check_ms * 1000);
#endif
		if (ca_sign_check(ca, job) != 0) {
			ca_sign_job_free(job);
			ERR_clear_error();
			continue;
		}
		queued++;
		if (alone) {
			i++;
			break;
		}
	}
	if (queued > 0)
		ca_sign_issue(ca, jobs, queued);
#ifdef SCEPD_TEST_HOOKS
	if (ca->hold_after > 0 && ca->issuances >= ca->hold_after &&
	    !ca->held) {
		ca->held = 1;
		if (ca->hold_gather > 0) {
			log_warn("test hook: gathering %ld SignRequests (at "
			         "most %ld ms from the first) after issuance "
			         "%ld",
			    ca->hold_gather, ca->hold_ms, ca->issuances);
			rpc_test_gather_arm(ca->hold_gather, ca->hold_ms);
		} else {
			log_warn("test hook: holding for %ld ms after issuance "
			         "%ld",
			    ca->hold_ms, ca->issuances);
			usleep((useconds_t)ca->hold_ms * 1000);
		}
	}
#endif
	return i;
}

void
ca_handle_sign(void *worker, const Scep__V1__Request *req,
    Scep__V1__Reply *reply, struct rpc_arena *arena)
{
	struct rpc_batch_item item = {req, reply, arena};

	ca_handle_sign_batch(worker, &item, 1);
}
