/*
 * ca.mdb: the ledger of issued certificates. Named databases:
 *   certs     serial (32 upper-case hex digits) -> record
 *   txids     transactionID -> serial
 *   subjects  subject line, as name matching sees it -> serial (several
 *             per subject; ca_subject_key)
 *   events    time (ns, big-endian) -> a refusal, as JSON
 *   journal   transactionID -> a certificate about to be signed (journal.c)
 *   compromised  SHA-256 of a key (ca_key_hash) -> the serial revoked for
 *             keyCompromise that holds it
 * A record is a fixed header followed by the DER certificate, the subject
 * line, the transactionID, the client address (no NULs stored) and, from
 * version 2 on, a JSON object of what else is known (template, SANs).
 */
#include <errno.h>
#include <stdio.h>
#include <time.h>

#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ca.h"
#include "log.h"
#include "pki.h"
#include "store.h"
#include "x509parse.h"

#define CA_LEDGER_VERSION 2 /* 1: no meta; still read */

struct ca_ledger_head {
	uint32_t version;
	uint32_t der_len;
	uint32_t subject_len;
	uint32_t txid_len;
	uint32_t addr_len;
	uint32_t meta_len; /* 0 in version 1 */
	int64_t issued_at;
	int64_t not_after;
};

/* A one-time change of the ledger's (an index made again) is noted in
 * meta as `mark` = `done`: *marked 1 when it is, else 0. An MDB_* code. */
static int
ledger_marked(struct ca *ca, MDB_txn *txn, const char *mark, const char *done,
    int *marked)
{
	MDB_val key = {strlen(mark), (void *)mark}, val;
	int e = mdb_get(txn, ca->meta, &key, &val);

	*marked = e == 0 && val.mv_size == strlen(done) &&
	    memcmp(val.mv_data, done, val.mv_size) == 0;
	return e == MDB_NOTFOUND ? 0 : e;
}

static int
ledger_mark(struct ca *ca, MDB_txn *txn, const char *mark, const char *done)
{
	MDB_val key = {strlen(mark), (void *)mark},
	        val = {strlen(done), (void *)done};

	return mdb_put(txn, ca->meta, &key, &val, 0);
}

/* What one record of a table gives an index made again (MDB_* code);
 * *added is set when it put something there. */
typedef int ledger_index_add_fn(struct ca *ca, MDB_txn *txn, const MDB_val *key,
    const MDB_val *val, int *added);

/* An index the ledger keeps, made again from its table once when meta's
 * `mark` does not say `done` (a ledger from before it was kept so). */
struct ledger_index {
	const char *name; /* in logs and errors */
	const char *mark, *done;
	MDB_dbi index, table;
	ledger_index_add_fn *add;
	const char *made; /* the log line's end, when made again */
};

/* `ix` made again unless done: `index` emptied, every record of `table`
 * offered to `add`, the mark set, all in `txn`. An MDB_* code. */
static int
ledger_index_remake(struct ca *ca, MDB_txn *txn, const struct ledger_index *ix)
{
	MDB_cursor *cur = NULL;
	MDB_val key, val;
	unsigned long n = 0;
	int e, marked, added;

	if ((e = ledger_marked(ca, txn, ix->mark, ix->done, &marked)) != 0 ||
	    marked)
		return e;
	if ((e = mdb_drop(txn, ix->index, 0)) != 0 ||
	    (e = mdb_cursor_open(txn, ix->table, &cur)) != 0)
		return e;
	/* `add` puts into the index only: the cursor stays where it was. */
	for (e = mdb_cursor_get(cur, &key, &val, MDB_FIRST); e == 0;
	     e = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
		added = 0;
		if ((e = ix->add(ca, txn, &key, &val, &added)) != 0)
			break;
		n += added != 0;
	}
	mdb_cursor_close(cur);
	if ((e != MDB_NOTFOUND && e != 0) ||
	    (e = ledger_mark(ca, txn, ix->mark, ix->done)) != 0)
		return e;
	if (n > 0) /* a new ledger's is made so from the start */
		log_info("ledger: %s made again from %lu certificate%s: %s",
		    ix->name, n, n == 1 ? "" : "s", ix->made);
	return 0;
}

static int
ledger_subject_add(struct ca *ca, MDB_txn *txn, const MDB_val *key,
    const MDB_val *val, int *added)
{
	char subject_key[CA_SUBJECT_KEY_MAX + 1];
	struct ca_ledger_view v;
	MDB_val skey, serial = *key;
	int e;

	if (ca_ledger_view(val->mv_data, val->mv_size, &v) != 0 ||
	    v.subject_len == 0)
		return 0;
	skey.mv_size = ca_subject_key(v.subject, v.subject_len, subject_key);
	skey.mv_data = subject_key;
	if ((e = mdb_put(txn, ca->subjects, &skey, &serial, 0)) == 0)
		*added = 1;
	return e;
}

int
ca_key_hash(const EVP_PKEY *key, unsigned char out[SHA256_DIGEST_LENGTH])
{
	char group[64] = "";
	const char *kind;
	unsigned char *whole = NULL;
	BIGNUM *v = NULL;
	size_t n0, n1, nv;
	int rc = -1;

	/*
	 * The key's numbers, not its encoding, which a request may vary (a
	 * length written long, an EC point compressed): an RSA key by its
	 * modulus alone (whoever holds the key knows its factors, and any
	 * exponent with them), an EC key by its curve and x alone (-P's
	 * private key is n - d). Read from the key, not through i2d: OpenSSL
	 * 3.0 sets up an encoder for that (150 us, per request).
	 */
	if (key == NULL)
		return -1;
	if (EVP_PKEY_is_a(key, "RSA") || EVP_PKEY_is_a(key, "RSA-PSS")) {
		kind = "rsa";
		if (EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &v) != 1)
			goto out;
	} else if (EVP_PKEY_is_a(key, "EC")) {
		kind = "ec";
		if (EVP_PKEY_get_utf8_string_param(key,
		        OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
		        NULL) != 1 ||
		    EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, &v) !=
		        1)
			goto out;
	} else {
		rc = 1;
		goto out;
	}
	n0 = strlen(kind) + 1;
	n1 = strlen(group) + 1;
	nv = (size_t)BN_num_bytes(v);
	if ((whole = malloc(n0 + n1 + nv)) == NULL)
		goto out;
	memcpy(whole, kind, n0);
	memcpy(whole + n0, group, n1);
	BN_bn2bin(v, whole + n0 + n1);
	SHA256(whole, n0 + n1 + nv, out);
	rc = 0;
out:
	free(whole);
	BN_free(v);
	ERR_clear_error();
	return rc;
}

int
ca_ledger_compromised(const struct ca *ca, MDB_txn *txn, const EVP_PKEY *key,
    char serial[CA_SERIAL_HEX])
{
	unsigned char hash[SHA256_DIGEST_LENGTH];
	MDB_val k = {sizeof(hash), hash}, val;
	int e;

	if ((e = ca_key_hash(key, hash)) != 0)
		return e > 0 ? 0 : -1; /* no index of other kinds of key */
	if ((e = mdb_get(txn, ca->compromised, &k, &val)) == MDB_NOTFOUND)
		return 0;
	if (e != 0 || val.mv_size >= CA_SERIAL_HEX) {
		log_error("ledger: compromised keys: %s",
		    e != 0 ? store_strerror(e) : "a record too long");
		return -1;
	}
	memcpy(serial, val.mv_data, val.mv_size);
	serial[val.mv_size] = '\0';
	return 1;
}

int
ca_ledger_compromised_put(const struct ca *ca, MDB_txn *txn, const char *serial)
{
	unsigned char hash[SHA256_DIGEST_LENGTH];
	MDB_val key = {strlen(serial), (void *)serial}, val, k;
	struct ca_ledger_view v;
	const unsigned char *p;
	X509 *cert = NULL;
	int e;

	if ((e = mdb_get(txn, ca->certs, &key, &val)) == MDB_NOTFOUND)
		return 0; /* not the ledger's: its key is not known */
	if (e != 0)
		return e;
	if (ca_ledger_view(val.mv_data, val.mv_size, &v) == 0) {
		p = v.der;
		cert = x509parse_cert(&p, (long)v.der_len);
	}
	if (cert != NULL &&
	    (e = ca_key_hash(X509_get0_pubkey(cert), hash)) < 0) {
		X509_free(cert);
		return ENOMEM; /* whatever failed may not next time */
	}
	if (cert == NULL || e != 0) {
		/* The revocation stands all the same; the index lacks it. */
		log_error("ledger: certificate %s: its key cannot be read from "
		          "its record: not indexed as compromised",
		    serial);
		X509_free(cert);
		return 0;
	}
	X509_free(cert);
	k.mv_size = sizeof(hash);
	k.mv_data = hash;
	return mdb_put(txn, ca->compromised, &k, &key, 0);
}

static int
ledger_compromised_add(struct ca *ca, MDB_txn *txn, const MDB_val *key,
    const MDB_val *val, int *added)
{
	json_t *o = json_loadb(val->mv_data, val->mv_size, 0, NULL);
	const char *r = json_string_value(json_object_get(o, "reason"));
	char serial[CA_SERIAL_HEX_ANY];
	int compromised = r != NULL &&
	    pki_crl_reason_code(r, NULL) == CRL_REASON_KEY_COMPROMISE;
	int e;

	json_decref(o);
	if (!compromised || key->mv_size >= sizeof(serial))
		return 0;
	memcpy(serial, key->mv_data, key->mv_size);
	serial[key->mv_size] = '\0';
	if ((e = ca_ledger_compromised_put(ca, txn, serial)) == 0)
		*added = 1;
	return e;
}

int
ca_ledger_open(struct ca *ca, char *err, size_t errlen)
{
	static const char *const names[] = {"certs", "txids", "events",
	    "revoked", "meta", "pending", "journal", "renewed", "compromised",
	    NULL};
	MDB_dbi dbis[9];
	const char *step = "the subjects index";
	MDB_txn *txn;
	int e;

	/* The map is address space only; the file grows with what is
	 * written. */
	if (store_open(ca->settings.database, ca->settings.database_max_mib,
	        "DatabaseMaxMiB in [ca]", names, &ca->env, dbis, err,
	        errlen) != 0)
		return -1;
	ca->certs = dbis[0];
	ca->txids = dbis[1];
	ca->events = dbis[2];
	ca->revoked = dbis[3];
	ca->meta = dbis[4];
	ca->pending = dbis[5];
	ca->journal = dbis[6];
	ca->renewed = dbis[7];
	ca->compromised = dbis[8];
	/* Several certificates per subject: its own flags, so reopened. */
	if ((e = mdb_txn_begin(ca->env, NULL, 0, &txn)) != 0)
		goto out;
	if ((e = mdb_dbi_open(txn, "subjects", MDB_CREATE | MDB_DUPSORT,
	         &ca->subjects)) == 0) {
		/*
		 * Keyed by the subject as name matching sees it (ca_subject_key)
		 * since "matched-sorted": an older ledger's, keyed by the exact
		 * line, let CN=ROBS IPAD through as no twin of CN=Robs iPad.
		 * Compromised keys by their numbers (ca_key_hash) since
		 * "numbers": an older ledger's, by an earlier hash ("made") or
		 * none, matched no request.
		 */
		const struct ledger_index indexes[] = {
		    {"the subjects index", "subjects_index", "matched-sorted",
		        ca->subjects, ca->certs, ledger_subject_add,
		        "keyed by the subject as name matching sees it (letter "
		        "case, runs of spaces and the order of a multi-valued "
		        "RDN's parts aside)"},
		    {"the index of compromised keys", "compromised_index",
		        "numbers", ca->compromised, ca->revoked,
		        ledger_compromised_add,
		        "those revoked for keyCompromise: their keys are never "
		        "certified again"},
		};

		for (size_t i = 0;
		     e == 0 && i < sizeof(indexes) / sizeof(indexes[0]); i++) {
			step = indexes[i].name;
			e = ledger_index_remake(ca, txn, &indexes[i]);
		}
	}
	if (e != 0)
		mdb_txn_abort(txn);
	else
		e = mdb_txn_commit(txn);
out:
	if (e != 0) {
		snprintf(err, errlen, "%s: %s", step, store_strerror(e));
		return -1;
	}
	/* Now, before the sandbox closes /proc: without it the ledger's
	 * pages accumulate in the CA's RSS, which is only a figure. */
	if (store_map_find(ca->env, &ca->ledger_map) != 0)
		log_warn("the ledger's map is not in /proc/self/maps: its "
		         "pages will count in the CA's RSS");
	return 0;
}

void
ca_ledger_close(struct ca *ca)
{
	if (ca->env != NULL)
		mdb_env_close(ca->env);
	ca->env = NULL;
}

/* The record under `key` in `dbi` into *val: 1, 0 when there is none, -1
 * on a database error (logged). */
static int
ledger_lookup(MDB_txn *txn, MDB_dbi dbi, const char *key, MDB_val *val)
{
	MDB_val k = {strlen(key), (void *)key};
	int e = mdb_get(txn, dbi, &k, val);

	if (e == MDB_NOTFOUND)
		return 0;
	if (e != 0) {
		log_error("ledger: %s", store_strerror(e));
		return -1;
	}
	return 1;
}

int
ca_ledger_serial_used(const struct ca *ca, MDB_txn *txn, const char *serial)
{
	MDB_val val;

	return ledger_lookup(txn, ca->certs, serial, &val);
}

static int
serial_hex_digit(char c)
{
	return c != '\0' && strchr("0123456789abcdefABCDEF", c) != NULL;
}

/* Up to `max` hex digits, leading zeros dropped; out: 32 digits padded
 * with zeros (the ledger's keys), or as many as there are above 32. */
static int
serial_normalize(const char *in, char *out, size_t max)
{
	char digits[CA_SERIAL_HEX_ANY];
	size_t len, n = 0, group = 0, pad;
	int separated = 0;

	/* Tools print serials without leading zero bytes ("openssl x509
	 * -serial"), in either case, or as pairs separated by colons
	 * ("openssl x509 -text", strongSwan's "pki --print") or spaces; the
	 * ledger keys are 32 upper-case. Blanks around it are copy and
	 * paste. */
	if (in == NULL)
		return -1;
	in += strspn(in, " \t\r\n");
	/* "0x1000", as `openssl x509 -text` writes a short serial after
	 * its decimal form: "4096 (0x1000)". */
	if (in[0] == '0' && (in[1] == 'x' || in[1] == 'X'))
		in += 2;
	len = strlen(in);
	while (len > 0 && strchr(" \t\r\n", in[len - 1]) != NULL)
		len--;
	for (size_t i = 0; i < len; i++) {
		if (in[i] == ':' || in[i] == ' ') {
			/* Only between pairs: "60:AF", not "6:0AF" or "60::AF". */
			if (group != 2 || i + 1 == len ||
			    !serial_hex_digit(in[i + 1]))
				return -1;
			separated = 1;
			group = 0;
			continue;
		}
		if (!serial_hex_digit(in[i]))
			return -1;
		group++;
		if (n == 0 && in[i] == '0')
			continue; /* a leading zero */
		if (n == max)
			return -1;
		digits[n++] =
		    (char)(in[i] >= 'a' && in[i] <= 'f' ? in[i] - 32 : in[i]);
	}
	if (n == 0 || (separated && group != 2))
		return -1;
	pad = n < CA_SERIAL_HEX - 1 ? CA_SERIAL_HEX - 1 - n : 0;
	memset(out, '0', pad);
	memcpy(out + pad, digits, n);
	out[pad + n] = '\0';
	return 0;
}

int
ca_serial_normalize(const char *in, char out[CA_SERIAL_HEX])
{
	return serial_normalize(in, out, CA_SERIAL_HEX - 1);
}

int
ca_serial_normalize_any(const char *in, char out[CA_SERIAL_HEX_ANY])
{
	return serial_normalize(in, out, CA_SERIAL_HEX_ANY - 1);
}

int
ca_ledger_is_revoked(const struct ca *ca, MDB_txn *txn, const char *serial)
{
	MDB_val val;

	return ledger_lookup(txn, ca->revoked, serial, &val);
}

int
ca_ledger_view(const void *data, size_t size, struct ca_ledger_view *v)
{
	struct ca_ledger_head head;
	const char *p = data;

	if (size < sizeof(head))
		return -1;
	memcpy(&head, data, sizeof(head));
	if ((head.version != 1 && head.version != CA_LEDGER_VERSION) ||
	    (uint64_t)head.der_len + head.subject_len + head.txid_len +
	            head.addr_len + head.meta_len !=
	        size - sizeof(head))
		return -1;
	p += sizeof(head);
	v->der = (const uint8_t *)p;
	v->der_len = head.der_len;
	p += head.der_len;
	v->subject = p;
	v->subject_len = head.subject_len;
	p += head.subject_len;
	v->txid = p;
	v->txid_len = head.txid_len;
	p += head.txid_len;
	v->addr = p;
	v->addr_len = head.addr_len;
	p += head.addr_len;
	v->meta = p;
	v->meta_len = head.meta_len;
	v->issued_at = head.issued_at;
	v->not_after = head.not_after;
	return 0;
}

int
ca_ledger_template(const struct ca_ledger_view *v, char *out, size_t outlen)
{
	json_t *o =
	    v->meta_len > 0 ? json_loadb(v->meta, v->meta_len, 0, NULL) : NULL;
	const char *t = json_string_value(json_object_get(o, "template"));
	int rc = t != NULL && strlen(t) < outlen ? 0 : -1;

	if (rc == 0)
		strcpy(out, t);
	json_decref(o);
	return rc;
}

int
ca_ledger_find_txid(const struct ca *ca, MDB_txn *txn, const char *txid,
    const uint8_t **der, size_t *der_len, char serial[CA_SERIAL_HEX])
{
	MDB_val key = {strlen(txid), (void *)txid}, val;
	struct ca_ledger_head head;
	int e;

	if ((e = mdb_get(txn, ca->txids, &key, &val)) == MDB_NOTFOUND)
		return 1;
	if (e != 0) {
		log_event(
		    LOG_LEVEL_ERROR, txid, 0, "ledger: %s", store_strerror(e));
		return -1;
	}
	if (val.mv_size != CA_SERIAL_HEX - 1) {
		log_event(LOG_LEVEL_ERROR, txid, 0,
		    "ledger: transaction record of %zu bytes", val.mv_size);
		return -1;
	}
	memcpy(serial, val.mv_data, CA_SERIAL_HEX - 1);
	serial[CA_SERIAL_HEX - 1] = '\0';
	key.mv_size = CA_SERIAL_HEX - 1;
	key.mv_data = serial;
	if ((e = mdb_get(txn, ca->certs, &key, &val)) != 0) {
		log_event(LOG_LEVEL_ERROR, txid, 0,
		    "ledger: serial %s of this transaction: %s", serial,
		    store_strerror(e));
		return -1;
	}
	if (val.mv_size < sizeof(head)) {
		log_event(LOG_LEVEL_ERROR, txid, 0,
		    "ledger: record %s is truncated", serial);
		return -1;
	}
	memcpy(&head, val.mv_data, sizeof(head));
	if ((head.version != 1 && head.version != CA_LEDGER_VERSION) ||
	    (uint64_t)head.der_len + head.subject_len + head.txid_len +
	            head.addr_len + head.meta_len !=
	        val.mv_size - sizeof(head)) {
		log_event(LOG_LEVEL_ERROR, txid, 0,
		    "ledger: record %s is malformed", serial);
		return -1;
	}
	*der = (const uint8_t *)val.mv_data + sizeof(head);
	*der_len = head.der_len;
	return 0;
}

int
ca_ledger_vouched(const struct ca *ca, const uint8_t *der, size_t len)
{
	const unsigned char *p = der;
	X509 *cert = x509parse_cert(&p, (long)len);
	int vouched = cert == NULL || pki_issued_by(cert, ca->cert) ||
	    pki_issuer_among(cert, ca->previous_cas) != NULL;

	X509_free(cert);
	return vouched;
}

/*
 * Text a device sent (a subject, a SAN, a reason quoting them) as a JSON
 * string: jansson takes UTF-8 only and gives NULL otherwise, which lost
 * the whole record. Bytes of text that is not UTF-8 are written \xHH.
 */
json_t *
ca_ledger_text(const char *s)
{
	json_t *j;
	char *esc;
	size_t n = 0;

	if (s == NULL)
		s = "";
	if ((j = json_string(s)) != NULL)
		return j;
	if ((esc = malloc(4 * strlen(s) + 1)) == NULL)
		return NULL;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < 0x80)
			esc[n++] = (char)*p;
		else
			n += (size_t)snprintf(esc + n, 5, "\\x%02X", *p);
	esc[n] = '\0';
	j = json_string(esc);
	free(esc);
	return j;
}

/* What else is known of a certificate, as JSON; NULL on failure. */
static char *
ca_ledger_meta(const struct ca_ledger_entry *entry)
{
	json_t *o = json_object(), *sans = json_array();
	char *out = NULL;

	if (o == NULL || sans == NULL)
		goto out;
	for (size_t i = 0; entry->sans != NULL && entry->sans[i] != NULL; i++)
		if (json_array_append_new(
		        sans, ca_ledger_text(entry->sans[i])) != 0)
			goto out;
	if (entry->renewal_of != NULL &&
	    json_object_set_new(
	        o, "renewal_of", json_string(entry->renewal_of)) != 0)
		goto out;
	if (json_object_set_new(o, "template",
	        json_string(
	            entry->template_name ? entry->template_name : "")) == 0 &&
	    json_object_set(o, "sans", sans) == 0)
		out = json_dumps(o, JSON_COMPACT);
out:
	json_decref(sans);
	json_decref(o);
	return out;
}

int
ca_ledger_put(const struct ca *ca, MDB_txn *txn, const char *serial,
    const struct ca_ledger_entry *entry)
{
	struct ca_ledger_head head;
	size_t subject_len = strlen(entry->subject);
	size_t txid_len = strlen(entry->txid);
	size_t addr_len = strlen(entry->client_addr);
	char *meta = ca_ledger_meta(entry);
	size_t meta_len = meta != NULL ? strlen(meta) : 0;
	MDB_val key = {strlen(serial), (void *)serial}, val;
	char subject_key[CA_SUBJECT_KEY_MAX + 1];
	uint8_t *p;
	int e;

	if (meta == NULL)
		return ENOMEM;
	if (entry->der_len > UINT32_MAX || subject_len > UINT32_MAX ||
	    txid_len > UINT32_MAX || addr_len > UINT32_MAX) {
		free(meta);
		return EINVAL;
	}
	memset(&head, 0, sizeof(head));
	head.version = CA_LEDGER_VERSION;
	head.der_len = (uint32_t)entry->der_len;
	head.subject_len = (uint32_t)subject_len;
	head.txid_len = (uint32_t)txid_len;
	head.addr_len = (uint32_t)addr_len;
	head.meta_len = (uint32_t)meta_len;
	head.issued_at = entry->issued_at;
	head.not_after = entry->not_after;
	val.mv_size = sizeof(head) + entry->der_len + subject_len + txid_len +
	    addr_len + meta_len;
	val.mv_data = NULL;
	/* Written in place: MDB_RESERVE hands us the record's memory. */
	if ((e = mdb_put(txn, ca->certs, &key, &val,
	         MDB_NOOVERWRITE | MDB_RESERVE)) != 0) {
		free(meta);
		return e;
	}
	p = val.mv_data;
	memcpy(p, &head, sizeof(head));
	p += sizeof(head);
	memcpy(p, entry->der, entry->der_len);
	p += entry->der_len;
	memcpy(p, entry->subject, subject_len);
	p += subject_len;
	memcpy(p, entry->txid, txid_len);
	p += txid_len;
	memcpy(p, entry->client_addr, addr_len);
	p += addr_len;
	memcpy(p, meta, meta_len);
	free(meta);

	if (subject_len > 0) {
		key.mv_size =
		    ca_subject_key(entry->subject, subject_len, subject_key);
		key.mv_data = subject_key;
		val.mv_size = strlen(serial);
		val.mv_data = (void *)serial;
		if ((e = mdb_put(txn, ca->subjects, &key, &val, 0)) != 0)
			return e;
	}
	val.mv_size = strlen(serial);
	val.mv_data = (void *)serial;
	if (entry->renewal_of != NULL) { /* for RenewOnce */
		key.mv_size = strlen(entry->renewal_of);
		key.mv_data = (void *)entry->renewal_of;
		if ((e = mdb_put(txn, ca->renewed, &key, &val, 0)) != 0)
			return e;
	}
	key.mv_size = txid_len;
	key.mv_data = (void *)entry->txid;
	/* A renewal keeping its key reuses its transactionID: the newest
	 * certificate answers it from now on. */
	return mdb_put(txn, ca->txids, &key, &val,
	    entry->renewal_of != NULL ? 0 : MDB_NOOVERWRITE);
}

int
ca_ledger_renewed_by(const struct ca *ca, MDB_txn *txn, const char *serial,
    char by[CA_SERIAL_HEX])
{
	MDB_val val;
	int found = ledger_lookup(txn, ca->renewed, serial, &val);

	if (found > 0)
		snprintf(by, CA_SERIAL_HEX, "%.*s", (int)val.mv_size,
		    (const char *)val.mv_data);
	return found;
}

/* What a refusal records of a request, bounded: a request is anyone's to
 * send (a renewal needs no password), and one of 1,400 SANs wrote 115 KB
 * to the ledger. */
#define REFUSAL_SUBJECT_MAX 1024
#define REFUSAL_SANS_MAX 16
#define REFUSAL_SAN_MAX 256

/* `s` cut to `max` bytes, on a UTF-8 character's boundary, "..." after. */
static json_t *
refusal_text(const char *s, size_t max)
{
	size_t n = strlen(s);
	char *cut;
	json_t *j;

	if (n <= max)
		return ca_ledger_text(s);
	/* A UTF-8 character is 4 bytes at most; text that is not UTF-8
	 * (continuation bytes only) is cut where it is. */
	for (int back = 0;
	     back < 3 && max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80;
	     back++)
		max--;
	if ((cut = malloc(max + 4)) == NULL)
		return NULL;
	memcpy(cut, s, max);
	memcpy(cut + max, "...", 4);
	j = ca_ledger_text(cut);
	free(cut);
	return j;
}

/* Refusals deleted with one new one at most: RefusalsKept lowered on a
 * large table shrinks it over the next refusals, each transaction small. */
#define REFUSALS_TRIM_MAX 64

/* The oldest refusals beyond RefusalsKept, in `txn`: usually one. */
static int
refusals_trim(const struct ca *ca, MDB_txn *txn)
{
	MDB_cursor *cur;
	MDB_stat st;
	MDB_val key, val;
	size_t extra;
	int e;

	if ((e = mdb_stat(txn, ca->events, &st)) != 0)
		return e;
	if (st.ms_entries <= (size_t)ca->settings.refusals_kept)
		return 0;
	extra = st.ms_entries - (size_t)ca->settings.refusals_kept;
	if (extra > REFUSALS_TRIM_MAX)
		extra = REFUSALS_TRIM_MAX;
	if ((e = mdb_cursor_open(txn, ca->events, &cur)) != 0)
		return e;
	while (extra-- > 0 &&
	    (e = mdb_cursor_get(cur, &key, &val, MDB_FIRST)) == 0 &&
	    (e = mdb_cursor_del(cur, 0)) == 0)
		;
	mdb_cursor_close(cur);
	return e;
}

/* A refusal's key: the time in ns, big-endian, after the newest one's
 * (a clock stepped back made new refusals the oldest, deleted at once by
 * the trim; two in one nanosecond overwrote one another). */
static int
refusal_key(
    const struct ca *ca, MDB_txn *txn, uint64_t ns, unsigned char key_bytes[8])
{
	MDB_cursor *cur;
	MDB_val key, val;
	uint64_t last = 0;
	int e;

	if ((e = mdb_cursor_open(txn, ca->events, &cur)) != 0)
		return e;
	if (mdb_cursor_get(cur, &key, &val, MDB_LAST) == 0 &&
	    key.mv_size == 8) {
		for (int i = 0; i < 8; i++)
			last =
			    last << 8 | ((const unsigned char *)key.mv_data)[i];
		if (ns <= last)
			ns = last + 1;
	}
	mdb_cursor_close(cur);
	for (int i = 0; i < 8; i++)
		key_bytes[i] = (unsigned char)(ns >> (56 - 8 * i));
	return 0;
}

void
ca_ledger_refusal(const struct ca *ca, const char *txid,
    const char *client_addr, const char *subject, char *const *sans,
    const char *template_name, const char *why)
{
	json_t *o = json_object(), *a = json_array();
	struct timespec ts;
	unsigned char key_bytes[8];
	MDB_val key = {sizeof(key_bytes), key_bytes}, val;
	MDB_txn *txn = NULL;
	uint64_t ns;
	char *text = NULL;
	int e = ENOMEM;

	clock_gettime(CLOCK_REALTIME, &ts);
	ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	for (size_t i = 0; a != NULL && sans != NULL && sans[i] != NULL; i++) {
		json_t *san = NULL;

		if (i == REFUSAL_SANS_MAX) {
			size_t more = 0;
			char line[64];

			while (sans[i + more] != NULL)
				more++;
			snprintf(line, sizeof(line), "(%zu more)", more);
			san = json_string(line);
		} else
			san = refusal_text(sans[i], REFUSAL_SAN_MAX);
		if (json_array_append_new(a, san) != 0)
			goto out;
		if (i == REFUSAL_SANS_MAX)
			break;
	}
	if (o == NULL || a == NULL ||
	    json_object_set_new(o, "time", json_integer(ts.tv_sec)) != 0 ||
	    json_object_set_new(o, "outcome", json_string("refused")) != 0 ||
	    json_object_set_new(o, "transaction_id", ca_ledger_text(txid)) !=
	        0 ||
	    json_object_set_new(o, "client", ca_ledger_text(client_addr)) !=
	        0 ||
	    json_object_set_new(o, "subject",
	        refusal_text(subject, REFUSAL_SUBJECT_MAX)) != 0 ||
	    json_object_set(o, "sans", a) != 0 ||
	    json_object_set_new(o, "template", ca_ledger_text(template_name)) !=
	        0 ||
	    json_object_set_new(o, "reason", ca_ledger_text(why)) != 0 ||
	    (text = json_dumps(o, JSON_COMPACT)) == NULL)
		goto out;
	val.mv_size = strlen(text);
	val.mv_data = text;
	if ((e = mdb_txn_begin(ca->env, NULL, 0, &txn)) != 0)
		goto out;
	if ((e = refusal_key(ca, txn, ns, key_bytes)) != 0 ||
	    (e = mdb_put(txn, ca->events, &key, &val, 0)) != 0 ||
	    (e = refusals_trim(ca, txn)) != 0) {
		mdb_txn_abort(txn);
		goto out;
	}
	e = mdb_txn_commit(txn);
out:
	if (e != 0)
		log_event(LOG_LEVEL_ERROR, txid, 0,
		    "ledger: the refusal could not be recorded: %s",
		    e == ENOMEM ? "out of memory" : store_strerror(e));
	free(text);
	json_decref(a);
	json_decref(o);
}

/* Appends `c` at out[*n] while it fits in `cap`; counts it always. */
static void
canon_put(char *out, size_t cap, size_t *n, char c)
{
	if (*n < cap)
		out[*n] = c;
	(*n)++;
}

static int
canon_hex(char c)
{
	return c >= '0' && c <= '9' ? c - '0'
	    : c >= 'A' && c <= 'F'  ? c - 'A' + 10
	    : c >= 'a' && c <= 'f'  ? c - 'a' + 10
	                            : -1;
}

/*
 * A subject line (ca_subject_line's RFC 2253 form, escapes and all) as
 * name matching compares it (RFC 5280 7.1, OpenSSL's X509_NAME_cmp): in
 * each value, white space at either end dropped, each run of it within
 * one space, ASCII letters lower-case; written to `out` up to `cap`
 * bytes, escaped again where a byte would read as a separator (so that
 * the only ',' and '+' left are separators). The length it takes,
 * whatever `cap`.
 */
static size_t
ca_subject_canon(const char *line, size_t len, char *out, size_t cap)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t i = 0, n = 0;

	while (i < len) {
		int started = 0, space = 0;

		/* The type, as OpenSSL names it. */
		while (i < len && line[i] != '=')
			canon_put(out, cap, &n, line[i++]);
		if (i == len)
			break;
		canon_put(out, cap, &n, line[i++]);
		while (i < len && line[i] != ',' && line[i] != '+') {
			unsigned char b;

			if (line[i] == '\\' && i + 2 < len &&
			    canon_hex(line[i + 1]) >= 0 &&
			    canon_hex(line[i + 2]) >= 0) {
				b = (unsigned char)(canon_hex(line[i + 1]) *
				        16 +
				    canon_hex(line[i + 2]));
				i += 3;
			} else if (line[i] == '\\' && i + 1 < len) {
				b = (unsigned char)line[i + 1];
				i += 2;
			} else
				b = (unsigned char)line[i++];
			if (b == ' ' || (b >= '\t' && b <= '\r')) {
				space = started;
				continue;
			}
			if (space)
				canon_put(out, cap, &n, ' ');
			space = 0;
			started = 1;
			if (b >= 'A' && b <= 'Z')
				b = (unsigned char)(b - 'A' + 'a');
			if (b < 0x20 || b == 0x7f || b == '\\' || b == ',' ||
			    b == '+' || b == '=') {
				canon_put(out, cap, &n, '\\');
				canon_put(out, cap, &n, hex[b >> 4]);
				canon_put(out, cap, &n, hex[b & 15]);
			} else
				canon_put(out, cap, &n, (char)b);
		}
		if (i < len) /* the separator */
			canon_put(out, cap, &n, line[i++]);
	}
	return n;
}

/* Parts of a canonical subject line: where each begins, how long. */
struct canon_part {
	const char *at;
	size_t len;
};

static int
canon_part_cmp(const void *a, const void *b)
{
	const struct canon_part *x = a, *y = b;
	int c = memcmp(x->at, y->at, x->len < y->len ? x->len : y->len);

	return c != 0 ? c : (x->len > y->len) - (x->len < y->len);
}

/*
 * The parts of each multi-valued RDN of canonical `in` (n bytes; its
 * separators are the only ',' and '+' left unescaped) in sorted order
 * into `out`, as X509_NAME_cmp sees them (a SET OF: O=x+CN=y is
 * CN=y+O=x). The length, n.
 */
static size_t
canon_sort_rdns(const char *in, size_t n, char *out)
{
	struct canon_part *parts = malloc((n + 1) * sizeof(*parts));
	size_t o = 0;

	if (parts == NULL)
		abort(); /* as rpc_alloc does */
	for (size_t i = 0; i < n;) {
		size_t np = 0, end = i;

		/* One RDN: parts up to the next ',' (or the end). */
		while (end < n && in[end] != ',') {
			size_t at = end;

			while (end < n && in[end] != ',' && in[end] != '+')
				end++;
			parts[np].at = in + at;
			parts[np++].len = end - at;
			if (end < n && in[end] == '+')
				end++;
		}
		qsort(parts, np, sizeof(*parts), canon_part_cmp);
		for (size_t k = 0; k < np; k++) {
			if (k > 0)
				out[o++] = '+';
			memcpy(out + o, parts[k].at, parts[k].len);
			o += parts[k].len;
		}
		/* A '+' that ends the RDN with nothing after it stays. */
		if (end > i && in[end - 1] == '+')
			out[o++] = '+';
		if (end < n)
			out[o++] = in[end++];
		i = end;
	}
	free(parts);
	return o;
}

size_t
ca_subject_key(
    const char *subject, size_t len, char out[CA_SUBJECT_KEY_MAX + 1])
{
	unsigned char md[SHA256_DIGEST_LENGTH];
	size_t n = ca_subject_canon(subject, len, NULL, 0);
	char *whole, *sorted;

	if ((whole = malloc(n + 1)) == NULL || (sorted = malloc(n + 1)) == NULL)
		abort(); /* as rpc_alloc does */
	ca_subject_canon(subject, len, whole, n);
	n = canon_sort_rdns(whole, n, sorted);
	free(whole);
	/* LMDB keys are at most 511 bytes. */
	if (n <= CA_SUBJECT_KEY_MAX) {
		memcpy(out, sorted, n);
		out[n] = '\0';
		free(sorted);
		return n;
	}
	SHA256((const unsigned char *)sorted, n, md);
	free(sorted);
	n = (size_t)snprintf(out, CA_SUBJECT_KEY_MAX + 1, "sha256:");
	for (size_t i = 0; i < sizeof(md); i++)
		n += (size_t)snprintf(
		    out + n, CA_SUBJECT_KEY_MAX + 1 - n, "%02x", md[i]);
	return n;
}
