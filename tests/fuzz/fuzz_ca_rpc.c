/*
 * libFuzzer target: a Request as a peer of the CA can send it (an RA or
 * scepctl taken over, or a buggy one), unpacked and handed in process to
 * the CA's own route table (routes.c, which main.c serves) as rpc.c
 * would hand it (rpc_route_for): the route of its body (Sign,
 * LedgerList, LedgerShow, Revoke, RevokeImport, Poll, Decide, GetCRL,
 * its own or a replaced CA's, Health), only for an origin the route admits. A request past its
 * deadline is dropped by rpc.c before any handler: here it gets a
 * deadline a minute ahead instead, so that the corpus does not go stale.
 *
 * The CA is set up once as main.c sets it up, from a P-256 key and CA
 * certificate made at start (an ECDSA signature costs microseconds: a
 * Sign, a Revoke or an approval signs once), the templates below and a
 * ledger in a directory of its own under /tmp (removed at exit). Its
 * ledger is then given, through the handlers, a certificate issued
 * (fuzz-tx-issued), one revoked (fuzz-tx-revoked), a request pending
 * approval (fuzz-tx-pending), one rejected (fuzz-tx-rejected) and a
 * refusal (fuzz-tx-refused), from the CSRs captured from real clients in
 * corpus/csr; that state is kept in memory and written back before each
 * input, so that every input runs against it, the ledger never grows and
 * a crash reproduces from its input alone. The serials of the first two
 * are random: a serial "@issued" or "@revoked" (LedgerShow, Revoke) and a
 * renewal_of "@issued" (Sign) stand for them. Bit 0 of the request's id
 * makes every template ApprovalRequired for that input.
 *
 * Checked of every answer: its status is one of Status's values; a
 * refusal says why; an answer OK carries the body of the request's kind;
 * the reply packs and unpacks as the server sends it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "ca.h"
#include "log.h"
#include "pool.h"
#include "protobuf_mutator.h"
#include "service_fuzz.h"

#ifndef FUZZ_CORPUS_DIR
#error "FUZZ_CORPUS_DIR: tests/fuzz/corpus (tests/CMakeLists.txt)"
#endif

#define FUZZ_V_APPROVAL 0x01 /* every template ApprovalRequired */

static const char fuzz_conf[] =
    "[template.FuzzSigning]\n"
    "KeyUsage = digitalSignature\n"
    "Subject = O=Fuzz,OU=Devices\n"
    "AllowedSANs = DNS:* email:*\n"
    "[template.FuzzGeneral]\n"
    "ExtendedKeyUsage = clientAuth\n"
    "AllowedSANs = DNS:*.example.com email:*@example.com IP:192.0.2.*\n"
    "RenewalWindow = 100\n"
    "RenewalNewKey = 0\n";

/* A copy of one database of the ledger. */
struct fuzz_db {
	MDB_dbi *dbi;
	MDB_val *keys, *vals;
	size_t n;
};

static struct {
	int ready;
	struct ca ca;
	struct ca previous; /* its key and certificate: a CA replaced */
	struct fuzz_workdir work;
	struct fuzz_db dbs[9];
	char issued[CA_SERIAL_HEX], revoked[CA_SERIAL_HEX];
	uint8_t *issued_der;
	size_t issued_der_len;
} fx;

static void
fuzz_cleanup(void)
{
	struct ca *ca = &fx.ca;

	pool_stop(ca->signers);
	ca_ledger_close(ca);
	ca_templates_free(ca);
	ca_policies_free(ca);
	X509_ALGOR_free(ca->sig_alg);
	X509_EXTENSION_free(ca->crl_dp);
	X509_EXTENSION_free(ca->akid);
	X509_EXTENSION_free(ca->crl_previous.akid);
	X509_free(ca->cert);
	EVP_PKEY_free(ca->key);
	X509_free(fx.previous.cert);
	EVP_PKEY_free(fx.previous.key);
	for (size_t i = 0; i < sizeof(fx.dbs) / sizeof(fx.dbs[0]); i++) {
		for (size_t k = 0; k < fx.dbs[i].n; k++) {
			free(fx.dbs[i].keys[k].mv_data);
			free(fx.dbs[i].vals[k].mv_data);
		}
		free(fx.dbs[i].keys);
		free(fx.dbs[i].vals);
	}
	free(fx.issued_der);
	fuzz_workdir_remove(&fx.work);
}

static _Noreturn void
fuzz_fail(const char *what)
{
	fprintf(stderr, "fuzz_ca_rpc: setting up: %s\n", what);
	ERR_print_errors_fp(stderr);
	abort();
}

static int
fuzz_time(const ASN1_TIME *t, time_t *out)
{
	struct tm tm;

	if (ASN1_TIME_to_tm(t, &tm) != 1)
		return -1;
	*out = timegm(&tm);
	return 0;
}

/* A P-256 CA key and its self-signed certificate, as scepd-init makes. */
static void
fuzz_ca_keys(struct ca *ca)
{
	static const char *const exts[][2] = {
	    {"basicConstraints", "critical,CA:TRUE"},
	    {"keyUsage", "critical,keyCertSign,cRLSign"},
	    {"subjectKeyIdentifier", "hash"},
	};
	X509_NAME *name = X509_NAME_new();
	X509V3_CTX ctx;

	ca->key = EVP_EC_gen("P-256");
	ca->cert = X509_new();
	if (ca->key == NULL || ca->cert == NULL || name == NULL ||
	    X509_set_version(ca->cert, 2) != 1 ||
	    ASN1_INTEGER_set(X509_get_serialNumber(ca->cert), 1) != 1 ||
	    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	        (const unsigned char *)"fuzz_ca_rpc CA", -1, -1, 0) != 1 ||
	    X509_set_subject_name(ca->cert, name) != 1 ||
	    X509_set_issuer_name(ca->cert, name) != 1 ||
	    X509_gmtime_adj(X509_getm_notBefore(ca->cert), -86400) == NULL ||
	    X509_gmtime_adj(X509_getm_notAfter(ca->cert), 20L * 365 * 86400) ==
	        NULL ||
	    X509_set_pubkey(ca->cert, ca->key) != 1)
		fuzz_fail("CA certificate");
	X509_NAME_free(name);
	X509V3_set_ctx(&ctx, ca->cert, ca->cert, NULL, NULL, 0);
	for (size_t i = 0; i < sizeof(exts) / sizeof(exts[0]); i++) {
		X509_EXTENSION *ext =
		    X509V3_EXT_nconf(NULL, &ctx, exts[i][0], exts[i][1]);

		if (ext == NULL || X509_add_ext(ca->cert, ext, -1) != 1)
			fuzz_fail("CA certificate extension");
		X509_EXTENSION_free(ext);
	}
	if (X509_sign(ca->cert, ca->key, EVP_sha256()) <= 0 ||
	    fuzz_time(X509_get0_notBefore(ca->cert), &ca->not_before) != 0 ||
	    fuzz_time(X509_get0_notAfter(ca->cert), &ca->not_after) != 0 ||
	    X509_digest(ca->cert, EVP_sha256(), ca->cert_sha256, NULL) != 1)
		fuzz_fail("CA certificate signature");
}

static uint8_t *
fuzz_read(const char *name, size_t *len)
{
	char path[512];
	uint8_t *buf = NULL;
	FILE *f;
	long n = 0;

	snprintf(path, sizeof(path), "%s/csr/%s", FUZZ_CORPUS_DIR, name);
	if ((f = fopen(path, "rb")) == NULL || fseek(f, 0, SEEK_END) != 0 ||
	    (n = ftell(f)) <= 0 || fseek(f, 0, SEEK_SET) != 0 ||
	    (buf = malloc((size_t)n)) == NULL ||
	    fread(buf, 1, (size_t)n, f) != (size_t)n)
		fuzz_fail(path);
	fclose(f);
	*len = (size_t)n;
	return buf;
}

/* One request through its handler, at setup: its status must be `want`. */
static void
fuzz_setup_call(Scep__V1__Request *req, const char *origin,
    Scep__V1__Status want, const char *what)
{
	Scep__V1__Reply reply = SCEP__V1__REPLY__INIT;
	struct rpc_arena *arena = rpc_arena_new();
	const struct rpc_route *route;

	req->origin = (char *)origin;
	if (arena == NULL || (route = rpc_route_for(ca_routes, req)) == NULL)
		fuzz_fail(what);
	req->deadline_ms = rpc_now_ms() + 60000;
	reply.status = SCEP__V1__STATUS__STATUS_OK;
	route->handler(&fx.ca, req, &reply, arena);
	if (reply.status != want) {
		fprintf(stderr, "fuzz_ca_rpc: %s: status %d: %s\n", what,
		    (int)reply.status, reply.error ? reply.error : "");
		fuzz_fail(what);
	}
	rpc_arena_free(arena);
}

static void
fuzz_setup_sign(const char *csr_file, const char *txid, Scep__V1__Status want)
{
	Scep__V1__Request req = SCEP__V1__REQUEST__INIT;
	Scep__V1__SignRequest sign = SCEP__V1__SIGN_REQUEST__INIT;

	sign.csr.data = fuzz_read(csr_file, &sign.csr.len);
	sign.transaction_id = (char *)txid;
	sign.client_addr = "192.0.2.7";
	req.body_case = SCEP__V1__REQUEST__BODY_SIGN;
	req.sign = &sign;
	fuzz_setup_call(&req, "ra", want, txid);
	free(sign.csr.data);
}

static void
fuzz_approval(int on)
{
	for (size_t i = 0; i < fx.ca.ntemplates; i++)
		fx.ca.templates[i].s.approval_required = on;
}

/* The serial issued to `txid` at setup. */
static void
fuzz_serial_of(const char *txid, char serial[CA_SERIAL_HEX])
{
	const uint8_t *der;
	size_t len;
	MDB_txn *txn = NULL;

	if (mdb_txn_begin(fx.ca.env, NULL, MDB_RDONLY, &txn) != 0 ||
	    ca_ledger_find_txid(&fx.ca, txn, txid, &der, &len, serial) != 0)
		fuzz_fail(txid);
	mdb_txn_abort(txn);
}

/* The ledger's state after setup, kept in memory. */
static void
fuzz_snapshot(void)
{
	struct ca *ca = &fx.ca;
	MDB_dbi *dbis[] = {&ca->certs, &ca->txids, &ca->subjects, &ca->events,
	    &ca->revoked, &ca->meta, &ca->pending, &ca->journal, &ca->renewed};
	const uint8_t *der;
	MDB_txn *txn = NULL;

	if (mdb_txn_begin(ca->env, NULL, MDB_RDONLY, &txn) != 0)
		fuzz_fail("snapshot");
	for (size_t i = 0; i < sizeof(dbis) / sizeof(dbis[0]); i++) {
		struct fuzz_db *d = &fx.dbs[i];
		MDB_cursor *cur = NULL;
		MDB_val k, v;
		size_t cap = 0;
		int e;

		d->dbi = dbis[i];
		if (mdb_cursor_open(txn, *d->dbi, &cur) != 0)
			fuzz_fail("snapshot cursor");
		for (e = mdb_cursor_get(cur, &k, &v, MDB_FIRST); e == 0;
		     e = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
			if (d->n == cap) {
				cap = cap ? 2 * cap : 16;
				d->keys = realloc(d->keys, cap * sizeof(k));
				d->vals = realloc(d->vals, cap * sizeof(v));
				if (d->keys == NULL || d->vals == NULL)
					abort();
			}
			d->keys[d->n].mv_size = k.mv_size;
			d->vals[d->n].mv_size = v.mv_size;
			d->keys[d->n].mv_data = malloc(k.mv_size + 1);
			d->vals[d->n].mv_data = malloc(v.mv_size + 1);
			if (d->keys[d->n].mv_data == NULL ||
			    d->vals[d->n].mv_data == NULL)
				abort();
			memcpy(d->keys[d->n].mv_data, k.mv_data, k.mv_size);
			memcpy(d->vals[d->n].mv_data, v.mv_data, v.mv_size);
			d->n++;
		}
		mdb_cursor_close(cur);
		if (e != MDB_NOTFOUND)
			fuzz_fail("snapshot read");
	}
	if (ca_ledger_find_txid(ca, txn, "fuzz-tx-issued", &der,
	        &fx.issued_der_len, fx.issued) != 0 ||
	    (fx.issued_der = malloc(fx.issued_der_len)) == NULL)
		fuzz_fail("the issued certificate");
	memcpy(fx.issued_der, der, fx.issued_der_len);
	mdb_txn_abort(txn);
}

static void
fuzz_setup(void)
{
	struct ca *ca = &fx.ca;
	Scep__V1__Request req = SCEP__V1__REQUEST__INIT;
	Scep__V1__RevokeRequest revoke = SCEP__V1__REVOKE_REQUEST__INIT;
	Scep__V1__DecideRequest decide = SCEP__V1__DECIDE_REQUEST__INIT;
	char err[512];

	fuzz_workdir_make(&fx.work, "fuzz_ca_rpc", fuzz_conf);
	log_init("fuzz_ca_rpc", LOG_LEVEL_INFO);
	ca->settings.database = fx.work.dir;
	ca->settings.database_max_mib = 64;
	ca->settings.validity_days = 365;
	ca->settings.min_rsa_bits = 2048;
	ca->settings.signature_template = "FuzzSigning";
	ca->settings.encryption_template = "FuzzGeneral";
	ca->settings.general_purpose_template = "FuzzGeneral";
	ca->settings.policies = "";
	ca->settings.crl_url = "http://ca.example.com/fuzz.crl";
	ca->settings.pending_days = 7;
	ca->settings.crl_validity_hours = 168;
	ca->settings.refusals_kept = 10;
	ca->settings.plugin_dir = "";
	ca->settings.signer = "file";
	ca->settings.sign_threads = 1;
	if (ca_crl_dp_load(ca, err, sizeof(err)) != 0)
		fuzz_fail(err);
	fuzz_ca_keys(ca);
	if ((ca->akid = ca_akid_ext(ca->cert)) == NULL)
		fuzz_fail("authorityKeyIdentifier");
	ca_crl_signer_own(ca);
	/* A CA it replaced, whose CRL it signs too ([ca] PreviousCAKey):
	 * GetCrlRequest.previous_ca. */
	fuzz_ca_keys(&fx.previous);
	ca->crl_previous.key = fx.previous.key;
	if (ca_crl_signer_previous(ca, fx.previous.cert, "PreviousCAKey") != 0)
		fuzz_fail("the previous CA");
	if (ca_templates_load(ca, fx.work.conf) != 0 ||
	    ca_policies_load(ca, fx.work.conf) != 0)
		fuzz_fail("templates");
	if (ca_ledger_open(ca, err, sizeof(err)) != 0)
		fuzz_fail(err);
	/* Durability is not what is tested: no flush per commit. */
	mdb_env_set_flags(ca->env, MDB_NOSYNC, 1);
	if ((ca->sig_alg = ca_issue_learn_sig_alg(ca)) == NULL)
		fuzz_fail("signature algorithm");
	ca_pending_purge(ca, 1);
	if ((ca->signers = pool_start(0, "fuzz-sign")) == NULL)
		fuzz_fail("signing pool");
	atexit(fuzz_cleanup);

	fuzz_setup_sign(
	    "captured-pki.der", "fuzz-tx-issued", SCEP__V1__STATUS__STATUS_OK);
	fuzz_setup_sign("captured-scepclient.der", "fuzz-tx-revoked",
	    SCEP__V1__STATUS__STATUS_OK);
	fuzz_setup_sign("generated_printable.der", "fuzz-tx-refused",
	    SCEP__V1__STATUS__STATUS_REFUSED);
	fuzz_approval(1);
	fuzz_setup_sign("captured-certmonger.der", "fuzz-tx-pending",
	    SCEP__V1__STATUS__STATUS_OK);
	fuzz_setup_sign("captured-ios.der", "fuzz-tx-rejected",
	    SCEP__V1__STATUS__STATUS_OK);
	fuzz_approval(0);
	decide.transaction_id = "fuzz-tx-rejected";
	decide.approve = 0;
	decide.reason = "not one of ours";
	decide.decided_by = "fuzz";
	req.body_case = SCEP__V1__REQUEST__BODY_DECIDE;
	req.decide = &decide;
	fuzz_setup_call(
	    &req, "scepctl", SCEP__V1__STATUS__STATUS_OK, "reject pending");
	fuzz_serial_of("fuzz-tx-revoked", fx.revoked);
	revoke.serial = fx.revoked;
	revoke.reason = "keyCompromise";
	revoke.revoked_by = "fuzz";
	req.body_case = SCEP__V1__REQUEST__BODY_REVOKE;
	req.revoke = &revoke;
	fuzz_setup_call(&req, "scepctl", SCEP__V1__STATUS__STATUS_OK, "revoke");
	fuzz_snapshot();
	fx.ready = 1;
}

/* Every input's starting point: the ledger as setup left it. */
static void
fuzz_reset(uint64_t variant)
{
	struct ca *ca = &fx.ca;
	MDB_txn *txn = NULL;
	int e = 0;

	if ((e = mdb_txn_begin(ca->env, NULL, 0, &txn)) != 0)
		goto fail;
	for (size_t i = 0; i < sizeof(fx.dbs) / sizeof(fx.dbs[0]); i++) {
		const struct fuzz_db *d = &fx.dbs[i];

		if ((e = mdb_drop(txn, *d->dbi, 0)) != 0)
			goto fail;
		for (size_t k = 0; k < d->n; k++)
			if ((e = mdb_put(txn, *d->dbi, &d->keys[k], &d->vals[k],
			         0)) != 0)
				goto fail;
	}
	e = mdb_txn_commit(txn);
	txn = NULL;
	if (e != 0)
		goto fail;
	/* The hourly purge ran at setup: not again in a run. */
	ca->pending_purged_at = time(NULL);
	fuzz_approval((variant & FUZZ_V_APPROVAL) != 0);
	return;
fail:
	fprintf(
	    stderr, "fuzz_ca_rpc: resetting the ledger: %s\n", mdb_strerror(e));
	abort();
}

/* "@issued", "@revoked": the serials of setup's certificates; in an
 * import (RevokeImport), among its first entries. */
#define FUZZ_IMPORT_NAMED 4
static char **
fuzz_serial_field(Scep__V1__Request *req)
{
	if (req->body_case == SCEP__V1__REQUEST__BODY_LEDGER_SHOW)
		return &req->ledger_show->serial;
	if (req->body_case == SCEP__V1__REQUEST__BODY_REVOKE)
		return &req->revoke->serial;
	return NULL;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Scep__V1__Request *req;
	Scep__V1__Reply reply = SCEP__V1__REPLY__INIT;
	struct rpc_arena *arena;
	ProtobufCBinaryData renewal_of = {0, NULL}, ca_sha256 = {0, NULL};
	char **serial, *sent_serial = NULL;
	struct {
		char **field, *sent;
	} imported[FUZZ_IMPORT_NAMED];
	size_t n_imported = 0;
	const struct rpc_route *route;
	int64_t now_ms;

	if (!fx.ready)
		fuzz_setup();
	/* The CA reads no more (ZMQ_MAXMSGSIZE). */
	if (size > RPC_MAX_CA_REQUEST)
		return 0;
	if ((req = rpc_request_unpack(data, size)) == NULL)
		return 0;
	/* The service's own table, as the server admits a caller of this
	 * host; not the test builds' sandbox probe. */
	if ((route = rpc_route_for(ca_routes, req)) == NULL ||
	    req->body_case == SCEP__V1__REQUEST__BODY_SANDBOX_PROBE) {
		scep__v1__request__free_unpacked(req, NULL);
		return 0;
	}
	now_ms = rpc_now_ms();
	if (req->deadline_ms < now_ms)
		req->deadline_ms = now_ms + 60000;
	if ((serial = fuzz_serial_field(req)) != NULL) {
		sent_serial = *serial;
		if (strcmp(sent_serial, "@issued") == 0)
			*serial = fx.issued;
		else if (strcmp(sent_serial, "@revoked") == 0)
			*serial = fx.revoked;
	}
	/* An import names the CA certificate it was checked with as "@ca"
	 * (made at setup, so unknown to the corpus); its first entries may
	 * name those serials too. */
	if (req->body_case == SCEP__V1__REQUEST__BODY_REVOKE_IMPORT &&
	    req->revoke_import->has_ca_certificate_sha256 &&
	    req->revoke_import->ca_certificate_sha256.len == 3 &&
	    memcmp(req->revoke_import->ca_certificate_sha256.data, "@ca", 3) ==
	        0) {
		ca_sha256 = req->revoke_import->ca_certificate_sha256;
		req->revoke_import->ca_certificate_sha256.data =
		    fx.ca.cert_sha256;
		req->revoke_import->ca_certificate_sha256.len =
		    sizeof(fx.ca.cert_sha256);
	}
	if (req->body_case == SCEP__V1__REQUEST__BODY_REVOKE_IMPORT)
		for (size_t i = 0; i < req->revoke_import->n_entries &&
		     n_imported < FUZZ_IMPORT_NAMED;
		     i++) {
			char **s = &req->revoke_import->entries[i]->serial;
			char *to = strcmp(*s, "@issued") == 0 ? fx.issued
			    : strcmp(*s, "@revoked") == 0     ? fx.revoked
			                                      : NULL;

			if (to == NULL)
				continue;
			imported[n_imported].field = s;
			imported[n_imported++].sent = *s;
			*s = to;
		}
	if (req->body_case == SCEP__V1__REQUEST__BODY_SIGN &&
	    req->sign->has_renewal_of && req->sign->renewal_of.len == 7 &&
	    memcmp(req->sign->renewal_of.data, "@issued", 7) == 0) {
		renewal_of = req->sign->renewal_of;
		req->sign->renewal_of.data = fx.issued_der;
		req->sign->renewal_of.len = fx.issued_der_len;
	}
	fuzz_reset(req->id);
	if ((arena = rpc_arena_new()) == NULL)
		abort();
	reply.id = req->id;
	reply.status = SCEP__V1__STATUS__STATUS_OK;
	route->handler(&fx.ca, req, &reply, arena);
	fuzz_reply_check(&reply, req->body_case);
	/* OpenSSL's queue is the handler's to empty (one line per event,
	 * drained where it failed): what is left would be blamed on the
	 * next request. */
	ERR_clear_error();
	rpc_arena_free(arena);
	if (serial != NULL)
		*serial = sent_serial;
	if (renewal_of.data != NULL)
		req->sign->renewal_of = renewal_of;
	if (ca_sha256.data != NULL)
		req->revoke_import->ca_certificate_sha256 = ca_sha256;
	while (n_imported > 0) {
		n_imported--;
		*imported[n_imported].field = imported[n_imported].sent;
	}
	scep__v1__request__free_unpacked(req, NULL);
	return 0;
}
