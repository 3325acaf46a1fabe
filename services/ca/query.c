/*
 * LedgerListRequest and LedgerShowRequest: what the CA issued and refused
 * and what waits for an approval, for the operator (scepctl list, scepctl
 * show SERIAL). Read-only transactions, on the CA's one thread: a
 * listing of the ledger reads every record (serials are random, the
 * newest are found by their time) but builds entries for the newest
 * `limit` only; it delays signatures while it reads.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ca.h"
#include "log.h"
#include "store.h"

#define CA_LIST_DEFAULT 100

static char *
ca_arena_strndup(struct rpc_arena *arena, const char *s, size_t n)
{
	char *out = rpc_alloc(arena, n + 1);

	memcpy(out, s, n);
	out[n] = '\0';
	return out;
}

/* Template and SANs from a record's JSON (none in version 1 records). */
static void
ca_entry_meta(Scep__V1__LedgerEntry *e, const char *meta, size_t len,
    struct rpc_arena *arena)
{
	json_t *o = len > 0 ? json_loadb(meta, len, 0, NULL) : NULL;
	json_t *sans = json_object_get(o, "sans");
	const char *t = json_string_value(json_object_get(o, "template"));

	if (t != NULL)
		e->template_name = rpc_strdup(arena, t);
	if (json_is_array(sans) && json_array_size(sans) > 0) {
		size_t n = json_array_size(sans);

		e->sans = rpc_alloc(arena, n * sizeof(*e->sans));
		for (size_t i = 0; i < n; i++) {
			const char *v =
			    json_string_value(json_array_get(sans, i));

			if (v != NULL)
				e->sans[e->n_sans++] = rpc_strdup(arena, v);
		}
	}
	json_decref(o);
}

static Scep__V1__LedgerEntry *
ca_entry_issued(const struct ca *ca, MDB_txn *txn, const char *serial,
    size_t serial_len, const struct ca_ledger_view *v, int with_cert,
    struct rpc_arena *arena)
{
	MDB_val key = {serial_len, (void *)serial}, val;
	Scep__V1__LedgerEntry *e = rpc_alloc(arena, sizeof(*e));

	scep__v1__ledger_entry__init(e);
	e->serial = ca_arena_strndup(arena, serial, serial_len);
	e->subject = ca_arena_strndup(arena, v->subject, v->subject_len);
	e->transaction_id = ca_arena_strndup(arena, v->txid, v->txid_len);
	e->client_addr = ca_arena_strndup(arena, v->addr, v->addr_len);
	e->has_time = 1;
	e->time = v->issued_at;
	e->has_not_after = 1;
	e->not_after = v->not_after;
	e->status = "issued";
	if (mdb_get(txn, ca->revoked, &key, &val) == 0) {
		json_t *o = json_loadb(val.mv_data, val.mv_size, 0, NULL);
		const char *why =
		    json_string_value(json_object_get(o, "reason"));

		const char *by = json_string_value(json_object_get(o, "by"));

		e->status = "revoked";
		e->reason = rpc_strdup(arena, why != NULL ? why : "");
		e->has_revoked_at = 1;
		e->revoked_at = json_integer_value(json_object_get(o, "time"));
		e->revoked_by = rpc_strdup(arena, by != NULL ? by : "");
		e->has_hold_final_at = 1;
		e->hold_final_at =
		    json_integer_value(json_object_get(o, "final_at"));
		json_decref(o);
	}
	ca_entry_meta(e, v->meta, v->meta_len, arena);
	if (with_cert) {
		e->has_cert = 1;
		e->cert.data = rpc_alloc(arena, v->der_len);
		memcpy(e->cert.data, v->der, v->der_len);
		e->cert.len = v->der_len;
	}
	return e;
}

static Scep__V1__LedgerEntry *
ca_entry_refused(const MDB_val *val, struct rpc_arena *arena)
{
	Scep__V1__LedgerEntry *e = rpc_alloc(arena, sizeof(*e));
	json_t *o = json_loadb(val->mv_data, val->mv_size, 0, NULL);
	json_t *sans = json_object_get(o, "sans");
	static const struct {
		const char *key;
		size_t offset;
	} fields[] = {
	    {"subject", offsetof(Scep__V1__LedgerEntry, subject)},
	    {"transaction_id", offsetof(Scep__V1__LedgerEntry, transaction_id)},
	    {"client", offsetof(Scep__V1__LedgerEntry, client_addr)},
	    {"template", offsetof(Scep__V1__LedgerEntry, template_name)},
	    {"reason", offsetof(Scep__V1__LedgerEntry, reason)},
	};

	scep__v1__ledger_entry__init(e);
	e->serial = "";
	e->status = "refused";
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		const char *v =
		    json_string_value(json_object_get(o, fields[i].key));

		*(char **)((char *)e + fields[i].offset) =
		    rpc_strdup(arena, v != NULL ? v : "");
	}
	e->has_time = 1;
	e->time = json_integer_value(json_object_get(o, "time"));
	if (json_is_array(sans) && json_array_size(sans) > 0) {
		e->sans =
		    rpc_alloc(arena, json_array_size(sans) * sizeof(char *));
		for (size_t i = 0; i < json_array_size(sans); i++) {
			const char *v =
			    json_string_value(json_array_get(sans, i));

			if (v != NULL)
				e->sans[e->n_sans++] = rpc_strdup(arena, v);
		}
	}
	json_decref(o);
	return e;
}

static int
ca_entry_newer(const void *a, const void *b)
{
	const Scep__V1__LedgerEntry *x = *(Scep__V1__LedgerEntry *const *)a;
	const Scep__V1__LedgerEntry *y = *(Scep__V1__LedgerEntry *const *)b;

	return (x->time < y->time) - (x->time > y->time);
}

/* A certificate's record among the newest seen (ca_newest_push): its
 * key and value point into the read transaction's pages. */
struct ca_listed {
	int64_t at;
	MDB_val key, val;
};

/* Keeps the `limit` newest records in `heap` (a min-heap on `at`, *n
 * long), so that a listing of the last few of a large ledger builds those
 * few entries only, not one per certificate ever issued. */
static void
ca_newest_push(
    struct ca_listed *heap, size_t *n, size_t limit, const struct ca_listed *x)
{
	size_t i;

	if (*n < limit) {
		/* Up from the end. */
		for (i = (*n)++; i > 0 && heap[(i - 1) / 2].at > x->at;
		     i = (i - 1) / 2)
			heap[i] = heap[(i - 1) / 2];
		heap[i] = *x;
		return;
	}
	if (limit == 0 || x->at <= heap[0].at)
		return;
	/* Down from the root, which x replaces. */
	for (i = 0;;) {
		size_t c = 2 * i + 1;

		if (c >= *n)
			break;
		if (c + 1 < *n && heap[c + 1].at < heap[c].at)
			c++;
		if (heap[c].at >= x->at)
			break;
		heap[i] = heap[c];
		i = c;
	}
	heap[i] = *x;
}

void
ca_handle_ledger_list(void *worker, const Scep__V1__Request *req,
    Scep__V1__Reply *reply, struct rpc_arena *arena)
{
	const struct ca *ca = worker;
	const Scep__V1__LedgerListRequest *in = req->ledger_list;
	Scep__V1__LedgerListReply *out;
	Scep__V1__LedgerEntry **all = NULL;
	struct ca_listed *newest = NULL;
	size_t n = 0, cap = 0, limit, nnewest = 0, total = 0;
	int refusals = in->has_refusals && in->refusals;
	int pending = in->has_pending && in->pending;
	MDB_txn *txn = NULL;
	MDB_cursor *cur = NULL;
	MDB_val key, val;
	int e;

	limit = in->has_limit && in->limit > 0 ? in->limit : CA_LIST_DEFAULT;
	if (refusals && pending) {
		reply->status = SCEP__V1__STATUS__STATUS_REFUSED;
		reply->error = "refusals or pending requests, not both";
		return;
	}
	if ((e = mdb_txn_begin(ca->env, NULL, MDB_RDONLY, &txn)) != 0 ||
	    (e = mdb_cursor_open(txn,
	         refusals      ? ca->events
	             : pending ? ca->pending
	                       : ca->certs,
	         &cur)) != 0) {
		log_error("ledger list: %s", store_strerror(e));
		reply->status = SCEP__V1__STATUS__STATUS_INTERNAL;
		reply->error = "the ledger cannot be read";
		goto out;
	}
	if (!refusals && !pending) {
		MDB_stat st;

		/* Room for the newest `limit`, at most for all there are
		 * (a limit is up to 2^32 - 1). */
		if ((e = mdb_stat(txn, ca->certs, &st)) != 0) {
			log_error("ledger list: %s", store_strerror(e));
			reply->status = SCEP__V1__STATUS__STATUS_INTERNAL;
			reply->error = "the ledger cannot be read";
			goto out;
		}
		if (limit > st.ms_entries)
			limit = st.ms_entries;
		if ((newest = malloc((limit ? limit : 1) * sizeof(*newest))) ==
		    NULL)
			abort(); /* as rpc_alloc does */
	}
	if (refusals) {
		MDB_stat st;

		/* Keyed by time: the newest `limit` from the end, not every
		 * refusal built to keep a few. */
		if ((e = mdb_stat(txn, ca->events, &st)) != 0) {
			log_error("ledger list: %s", store_strerror(e));
			reply->status = SCEP__V1__STATUS__STATUS_INTERNAL;
			reply->error = "the ledger cannot be read";
			goto out;
		}
		total = st.ms_entries;
		if ((all = malloc((limit < total  ? limit
		                          : total ? total
		                                  : 1) *
		         sizeof(*all))) == NULL)
			abort(); /* as rpc_alloc does */
		for (e = mdb_cursor_get(cur, &key, &val, MDB_LAST);
		     e == 0 && n < limit;
		     e = mdb_cursor_get(cur, &key, &val, MDB_PREV))
			all[n++] = ca_entry_refused(&val, arena);
	}
	/* Every record, newest first after sorting: serials are random. */
	for (e = refusals ? MDB_NOTFOUND
	                  : mdb_cursor_get(cur, &key, &val, MDB_FIRST);
	     e == 0; e = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
		struct ca_ledger_view v;
		Scep__V1__LedgerEntry *entry;

		if (newest != NULL) {
			struct ca_listed x = {0, key, val};

			if (ca_ledger_view(val.mv_data, val.mv_size, &v) != 0)
				continue;
			x.at = v.issued_at;
			ca_newest_push(newest, &nnewest, limit, &x);
			total++;
			continue;
		}
		if (pending) {
			if ((entry = ca_pending_entry(ca, &key, &val, arena)) ==
			    NULL) {
				log_warn("pending request %.*s unreadable",
				    (int)key.mv_size, (char *)key.mv_data);
				continue;
			}
		} else
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			all = realloc(all, cap * sizeof(*all));
			if (all == NULL)
				abort(); /* as rpc_alloc does */
		}
		all[n++] = entry;
		total++;
	}
	if (newest != NULL && nnewest > 0) {
		if ((all = malloc(nnewest * sizeof(*all))) == NULL)
			abort();
		for (size_t i = 0; i < nnewest; i++) {
			struct ca_ledger_view v;

			if (ca_ledger_view(newest[i].val.mv_data,
			        newest[i].val.mv_size, &v) == 0)
				all[n++] = ca_entry_issued(ca, txn,
				    newest[i].key.mv_data,
				    newest[i].key.mv_size, &v, 0, arena);
		}
	}
	if (n > 1) /* qsort of NULL is undefined, even of nothing */
		qsort(all, n, sizeof(*all), ca_entry_newer);
	out = rpc_alloc(arena, sizeof(*out));
	scep__v1__ledger_list_reply__init(out);
	out->has_total = 1;
	out->total = total;
	out->n_entries = n < limit ? n : limit;
	if (out->n_entries > 0) {
		out->entries =
		    rpc_alloc(arena, out->n_entries * sizeof(*out->entries));
		memcpy(out->entries, all, out->n_entries * sizeof(*all));
	}
	reply->body_case = SCEP__V1__REPLY__BODY_LEDGER_LIST;
	reply->ledger_list = out;
out:
	free(all);
	free(newest);
	if (cur != NULL)
		mdb_cursor_close(cur);
	if (txn != NULL)
		mdb_txn_abort(txn);
}

void
ca_handle_ledger_show(void *worker, const Scep__V1__Request *req,
    Scep__V1__Reply *reply, struct rpc_arena *arena)
{
	const struct ca *ca = worker;
	const char *serial = req->ledger_show->serial;
	char upper[CA_SERIAL_HEX];
	Scep__V1__LedgerShowReply *out;
	struct ca_ledger_view v;
	MDB_txn *txn = NULL;
	MDB_val key, val;
	size_t len;
	int e;

	if (ca_serial_normalize(serial, upper) != 0) {
		reply->status = SCEP__V1__STATUS__STATUS_REFUSED;
		reply->error = "no such serial";
		return;
	}
	len = strlen(upper);
	key.mv_size = len;
	key.mv_data = upper;
	if ((e = mdb_txn_begin(ca->env, NULL, MDB_RDONLY, &txn)) != 0) {
		reply->status = SCEP__V1__STATUS__STATUS_INTERNAL;
		reply->error = "the ledger cannot be read";
		return;
	}
	e = mdb_get(txn, ca->certs, &key, &val);
	if (e != 0 || ca_ledger_view(val.mv_data, val.mv_size, &v) != 0) {
		reply->status = e == MDB_NOTFOUND || e == 0
		    ? SCEP__V1__STATUS__STATUS_REFUSED
		    : SCEP__V1__STATUS__STATUS_INTERNAL;
		reply->error = e == MDB_NOTFOUND ? "no such serial"
		                                 : "the record cannot be read";
		goto out;
	}
	out = rpc_alloc(arena, sizeof(*out));
	scep__v1__ledger_show_reply__init(out);
	out->entry = ca_entry_issued(ca, txn, upper, len, &v, 1, arena);
	reply->body_case = SCEP__V1__REPLY__BODY_LEDGER_SHOW;
	reply->ledger_show = out;
out:
	mdb_txn_abort(txn);
}
