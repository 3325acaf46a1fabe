/*
 * ChallengeIssueRequest: a fresh one-time password, unless PasswordMax are
 * already outstanding (then NDES's own refusal text, which admins know).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "challenge.h"
#include "log.h"
#include "store.h"

#define CHALLENGE_CACHE_FULL "The password cache is full."

/* PasswordLength random bytes as upper-case hex (NDES's default is 8
 * bytes, 16 digits; scepd's 16, 32 digits). */
int
challenge_new_password(size_t raw_len, char out[2 * CHALLENGE_RAW_MAX + 1])
{
	unsigned char raw[CHALLENGE_RAW_MAX];

	if (raw_len > sizeof(raw) || RAND_bytes(raw, (int)raw_len) != 1)
		return -1;
	for (size_t i = 0; i < raw_len; i++)
		snprintf(out + 2 * i, 3, "%02X", raw[i]);
	OPENSSL_cleanse(raw, sizeof(raw));
	return 0;
}

/* UseSinglePassword: nothing to issue; say who set the shared one. */
static void
challenge_issue_single(struct challenge *c, const Scep__V1__Request *req,
    Scep__V1__Reply *reply, struct rpc_arena *arena, const char *who)
{
	Scep__V1__ChallengeIssueReply *out;
	char set_by[CHALLENGE_WHO_MAX];
	int set = challenge_single_info(c, set_by, sizeof(set_by));

	if (set == -2) {
		reply->status = SCEP__V1__STATUS__STATUS_INTERNAL;
		reply->error = "the challenge service cannot read the single "
		               "password now";
		return;
	}
	if (set != 0) {
		log_event(LOG_LEVEL_WARN, NULL, req->id,
		    "issue refused to %s: UseSinglePassword = 1 but no single "
		    "password is set",
		    who);
		reply->status = SCEP__V1__STATUS__STATUS_REFUSED;
		reply->error = "UseSinglePassword = 1 but no single password "
		               "is set: set SinglePassword in [challenge] or "
		               "POST api/single-password";
		return;
	}
	out = rpc_alloc(arena, sizeof(*out));
	scep__v1__challenge_issue_reply__init(out);
	out->password = "";
	out->expires_at = 0;
	out->validity_minutes = 0;
	out->has_single = 1;
	out->single = 1;
	out->single_set_by = rpc_strdup(arena, set_by);
	reply->body_case = SCEP__V1__REPLY__BODY_CHALLENGE_ISSUE;
	reply->challenge_issue = out;
	log_event(LOG_LEVEL_INFO, NULL, req->id,
	    "%s asked for a password: the single password (set by %s) is in "
	    "use",
	    who, set_by);
}

static void
challenge_internal(
    Scep__V1__Reply *reply, uint64_t reqid, const char *what, int e)
{
	log_event(LOG_LEVEL_ERROR, NULL, reqid, "issue: %s: %s", what,
	    e ? store_strerror(e) : "failed");
	reply->status = SCEP__V1__STATUS__STATUS_INTERNAL;
	reply->error = "the challenge service cannot issue a password now";
}

/* Whether any SCEP path takes one-time passwords: the default
 * validator's, or one of [challenge.paths]. */
static int
challenge_otp_served(const struct challenge *c)
{
	if (strcmp(c->default_validator->name, "otp") == 0)
		return 1;
	for (size_t i = 0; i < c->nroutes; i++)
		if (strcmp(c->routes[i].validator->name, "otp") == 0)
			return 1;
	return 0;
}

void
challenge_handle_issue(void *worker, const Scep__V1__Request *req,
    Scep__V1__Reply *reply, struct rpc_arena *arena)
{
	struct challenge *c = worker;
	const Scep__V1__ChallengeIssueRequest *in = req->challenge_issue;
	Scep__V1__ChallengeIssueReply *out;
	struct challenge_record rec;
	char password[2 * CHALLENGE_RAW_MAX + 1], id[17];
	const char *who, *addr;
	unsigned long outstanding = 0, swept = 0;
	int64_t now = c->now();
	enum challenge_pool pool = CHALLENGE_POOL_ADMIN;
	long max = c->settings.password_max;
	MDB_txn *txn = NULL;
	size_t room;
	int e;

	memset(password, 0, sizeof(password));
	who = in->issued_by != NULL && in->issued_by[0] != '\0' ? in->issued_by
	                                                        : "?";
	addr = in->client_addr != NULL ? in->client_addr : "-";
	/* Each password records its account, and MdmPasswordMax counts by
	 * it: a name cut to fit would never match its own passwords. */
	if (strlen(who) >= CHALLENGE_WHO_MAX) {
		reply->status = SCEP__V1__STATUS__STATUS_BAD_REQUEST;
		reply->error = rpc_alloc(arena, 48);
		snprintf(reply->error, 48, "account name longer than %d bytes",
		    CHALLENGE_WHO_MAX - 1);
		return;
	}
	if (in->pool != NULL && strcmp(in->pool, "mdm") == 0) {
		pool = CHALLENGE_POOL_MDM;
		max = c->settings.mdm_password_max;
	} else if (in->pool != NULL && in->pool[0] != '\0' &&
	    strcmp(in->pool, "admin") != 0) {
		reply->status = SCEP__V1__STATUS__STATUS_BAD_REQUEST;
		reply->error = "unknown password pool";
		return;
	}
	/* A password for a path (a profile's URL) is one its validator
	 * takes, or devices given it would be refused, each refusal counted
	 * against their address. */
	if (in->path != NULL && in->path[0] != '\0') {
		const struct validator *by = validators_for_path(c, in->path);
		const char *v = by->name;

		if (strcmp(v, "static") == 0) {
			challenge_issue_single(c, req, reply, arena, who);
			return;
		}
		if (strcmp(v, "otp") != 0) {
			log_event(LOG_LEVEL_WARN, NULL, req->id,
			    "issue refused to %s: SCEP path %s is checked by "
			    "validator %s, not one-time passwords",
			    who, in->path, v);
			reply->status = SCEP__V1__STATUS__STATUS_REFUSED;
			reply->error = rpc_alloc(arena, 512);
			snprintf(reply->error, 512,
			    "SCEP path %.128s is checked by validator %.64s "
			    "(%s), which takes no one-time password: a device "
			    "given one would be refused. Point [frontend] "
			    "ExternalURL (or the first of Paths) at a path of "
			    "one-time passwords.",
			    in->path, v,
			    by == c->default_validator ? "[challenge] Validator"
			                               : "[challenge.paths]");
			return;
		}
	} else if (c->settings.use_single_password &&
	    strcmp(c->default_validator->name, "otp") != 0) {
		/* The single password is the answer unless the default
		 * paths take one-time passwords (Validator = otp beside it,
		 * static for some paths only): then they are issued here. */
		challenge_issue_single(c, req, reply, arena, who);
		return;
	} else if (!challenge_otp_served(c)) {
		/* The admin page and api/challenges name no path: a password
		 * no path takes would be refused to every device, each
		 * refusal counted against its address. */
		log_event(LOG_LEVEL_WARN, NULL, req->id,
		    "issue refused to %s: no SCEP path takes one-time "
		    "passwords ([challenge] Validator = %s)",
		    who, c->default_validator->name);
		reply->status = SCEP__V1__STATUS__STATUS_REFUSED;
		reply->error = rpc_alloc(arena, 320);
		snprintf(reply->error, 320,
		    "No SCEP path takes one-time passwords: [challenge] "
		    "Validator = %.64s, and no path in [challenge.paths] is "
		    "given otp. A device given one would be refused.",
		    c->default_validator->name);
		return;
	}

	/* What is due first, a few at a time (a full map has room for no
	 * more). */
	if ((e = challenge_sweep_batches(c, now, &swept)) != 0)
		log_event(LOG_LEVEL_WARN, NULL, req->id,
		    "issue: sweep before: %s", store_strerror(e));
	else if (swept > 0)
		log_event(LOG_LEVEL_DEBUG, NULL, req->id,
		    "swept %lu expired password%s", swept,
		    swept == 1 ? "" : "s");
	/* A new password makes the database grow: not into the pages kept
	 * for what frees or settles others (sweeps, reservations, "used"
	 * marks), without which a full map could never be swept. */
	if ((room = challenge_map_free_pages(c, CHALLENGE_MAP_RESERVE)) <
	    CHALLENGE_MAP_RESERVE) {
		log_event(LOG_LEVEL_ERROR, NULL, req->id,
		    "issue refused to %s: the database is full (%zu free "
		    "pages, %d kept for sweeps and reservations): raise "
		    "DatabaseMaxMiB in [challenge] and restart the service",
		    who, room, CHALLENGE_MAP_RESERVE);
		reply->status = SCEP__V1__STATUS__STATUS_INTERNAL;
		reply->error =
		    "the challenge service cannot issue a password now";
		goto out;
	}
	/* Count and insert in one write transaction: two callers can never
	 * both take the last free slot. */
	if ((e = challenge_txn_begin(c, &txn)) != 0) {
		challenge_internal(reply, req->id, "begin", e);
		goto out;
	}
	if ((e = challenge_outstanding(c, txn, now, pool, who, &outstanding)) !=
	    0) {
		challenge_internal(reply, req->id, "count", e);
		goto out;
	}
	if (outstanding >= (unsigned long)max) {
		log_event(LOG_LEVEL_WARN, NULL, req->id,
		    "issue refused to %s (%s, via %s): %lu passwords "
		    "outstanding, %s = %ld",
		    who, addr, req->origin ? req->origin : "?", outstanding,
		    pool == CHALLENGE_POOL_MDM ? "MdmPasswordMax"
		                               : "PasswordMax",
		    max);
		reply->status = SCEP__V1__STATUS__STATUS_REFUSED;
		reply->error = CHALLENGE_CACHE_FULL;
		/* Commit the sweep anyway. */
		goto commit;
	}

	memset(&rec, 0, sizeof(rec));
	rec.version = CHALLENGE_RECORD_VERSION;
	rec.state = CHALLENGE_ISSUED;
	rec.issued_at = now;
	rec.expires_at = now + (int64_t)c->settings.password_validity * 60;
	rec.pool = pool;
	snprintf(rec.issued_by, sizeof(rec.issued_by), "%s", who);
	/* A collision of PasswordLength random bytes means a broken RNG. */
	if (challenge_new_password(
	        (size_t)c->settings.password_length, password) != 0 ||
	    challenge_mac(c, password, rec.mac) != 0) {
		challenge_internal(reply, req->id, "random or HMAC", 0);
		goto out;
	}
	if ((e = challenge_record_add(c, txn, &rec)) != 0) {
		challenge_internal(reply, req->id, "store", e);
		goto out;
	}
	/* Its caller stopped waiting (the lock held by a slow disk's
	 * commits): no one would be shown this password, which would count
	 * against PasswordMax until it expired, and none can withdraw it. */
	if (req->deadline_ms > 0 && rpc_now_ms() > req->deadline_ms) {
		log_event(LOG_LEVEL_WARN, NULL, req->id,
		    "issue to %s not done: past its caller's deadline", who);
		reply->status = SCEP__V1__STATUS__STATUS_UNAVAILABLE;
		reply->error = "the challenge service answered too late";
		goto out;
	}
commit:
	e = challenge_txn_commit(c, txn);
	txn = NULL;
	if (e != 0) {
		challenge_internal(reply, req->id, "commit", e);
		goto out;
	}
	if (reply->status != SCEP__V1__STATUS__STATUS_OK) {
		/* Counted as answered: a failed commit answers INTERNAL. */
		c->counters.cache_full++;
		goto out;
	}

	out = rpc_alloc(arena, sizeof(*out));
	scep__v1__challenge_issue_reply__init(out);
	out->password = rpc_strdup_secret(arena, password);
	out->expires_at = rec.expires_at;
	out->validity_minutes = (uint32_t)c->settings.password_validity;
	reply->body_case = SCEP__V1__REPLY__BODY_CHALLENGE_ISSUE;
	reply->challenge_issue = out;
	challenge_mac_id(rec.mac, id);
	c->counters.issued++;
	log_event(LOG_LEVEL_INFO, NULL, req->id,
	    "issued password id=%s to %s (%s, via %s), valid %ld minutes, "
	    "%lu of %s = %ld outstanding",
	    id, who, addr, req->origin ? req->origin : "?",
	    c->settings.password_validity, outstanding + 1,
	    pool == CHALLENGE_POOL_MDM ? "MdmPasswordMax" : "PasswordMax", max);
out:
	if (txn != NULL)
		challenge_txn_abort(c, txn);
	OPENSSL_cleanse(password, sizeof(password));
}
