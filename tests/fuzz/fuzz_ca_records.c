/*
 * libFuzzer target: the CA's readers of what it stored in ca.mdb, on the
 * same bytes as a ledger record (ca_ledger_view, ca_ledger_template), a
 * journal record (journal_decode, static: journal.c is included) and a
 * pending request's JSON (ca_pending_entry, what `scepctl list --pending`
 * shows), and the subjects index's key of a subject line
 * (ca_subject_key: of the request's subject as OpenSSL prints it). The CA
 * wrote them, but a database restored from elsewhere, an
 * older version's or a damaged one is read by the same code: a bad record
 * must be refused, never read past.
 */
#include "../../services/ca/journal.c"

#include <stdint.h>
#include <stdlib.h>

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct ca ca = {.settings.pending_days = 30};
	MDB_val key = {9, "fuzz-txid"}, val = {size, (void *)data};
	struct ca_journal_entry j;
	struct ca_ledger_view v;
	struct rpc_arena *arena;
	Scep__V1__LedgerEntry *e;
	char name[CA_TEMPLATE_NAME_MAX];
	char subject_key[CA_SUBJECT_KEY_MAX + 1], again[CA_SUBJECT_KEY_MAX + 1];
	size_t n;

	if (ca_ledger_view(data, size, &v) == 0) {
		/* The parts lie within the record, one after another. */
		if (v.der <= data ||
		    v.subject != (const char *)v.der + v.der_len ||
		    v.txid != v.subject + v.subject_len ||
		    v.addr != v.txid + v.txid_len ||
		    v.meta != v.addr + v.addr_len ||
		    v.meta + v.meta_len != (const char *)data + size)
			abort();
		if (ca_ledger_template(&v, name, sizeof(name)) == 0 &&
		    strlen(name) >= sizeof(name))
			abort();
	}
	/* Within bounds, and a fixed point: the key of a key is itself
	 * (else two spellings of one subject could take two keys). */
	n = ca_subject_key((const char *)data, size, subject_key);
	if (n > CA_SUBJECT_KEY_MAX || subject_key[n] != '\0')
		abort();
	if (strncmp(subject_key, "sha256:", 7) != 0 &&
	    (ca_subject_key(subject_key, n, again) != n ||
	        memcmp(again, subject_key, n) != 0))
		abort();
	if (journal_decode(&val, &j) == 0 &&
	    strnlen(j.template_name, sizeof(j.template_name)) ==
	        sizeof(j.template_name))
		abort();
	if ((arena = rpc_arena_new()) == NULL)
		abort();
	e = ca_pending_entry(&ca, &key, &val, arena);
	if (e != NULL &&
	    (e->transaction_id == NULL || e->subject == NULL ||
	        e->status == NULL))
		abort();
	rpc_arena_free(arena);
	return 0;
}
