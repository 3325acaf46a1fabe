/*
 * The built-in `static` validator: NDES's UseSinglePassword, one password
 * shared by every device. It is set in the configuration (SinglePassword)
 * or through the admin API, which stores only its HMAC and wins over the
 * configuration. Not one-time: anyone who learns it can enroll, which is
 * why it is off by default and logged at every start when on.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "challenge.h"
#include "log.h"
#include "store.h"

/* The one set through the API: 0 with its MAC and who set it, 1 when
 * none was, -1 when it cannot be read. */
static int
single_stored(struct challenge *c, unsigned char mac[CHALLENGE_MAC_LEN],
    char *set_by, size_t len)
{
	struct challenge_single single;
	MDB_txn *txn = NULL;
	int found, e;

	if ((e = mdb_txn_begin(c->env, NULL, MDB_RDONLY, &txn)) != 0) {
		log_error("single password: %s", store_strerror(e));
		return -1;
	}
	found = challenge_single_get(txn, c->dbi, &single);
	mdb_txn_abort(txn);
	if (found == 0) {
		memcpy(mac, single.mac, CHALLENGE_MAC_LEN);
		snprintf(set_by, len, "%s", single.set_by);
		OPENSSL_cleanse(&single, sizeof(single));
	}
	return found < 0 ? -1 : found;
}

/*
 * The MAC to compare with, and who set it. 0; -1 when none is set; -2
 * when the one set through the API cannot be read: then the file's
 * SinglePassword, which the API's replaced, must not come back.
 */
static int
single_current(struct challenge *c, unsigned char mac[CHALLENGE_MAC_LEN],
    char *set_by, size_t len)
{
	int found = single_stored(c, mac, set_by, len);

	if (found < 0)
		return -2;
	if (found == 0)
		return 0;
	if (c->settings.single_password != NULL &&
	    c->settings.single_password[0] != '\0') {
		char norm[CHALLENGE_PASSWORD_MAX + 1];
		int rc;

		challenge_normalize(
		    c->settings.single_password, norm, sizeof(norm));
		rc = challenge_mac(c, norm, mac);
		OPENSSL_cleanse(norm, sizeof(norm));
		snprintf(set_by, len, "the configuration (SinglePassword)");
		return rc == 0 ? 0 : -2;
	}
	return -1;
}

int
challenge_single_info(struct challenge *c, char *set_by, size_t len)
{
	unsigned char mac[CHALLENGE_MAC_LEN];
	int rc = single_current(c, mac, set_by, len);

	OPENSSL_cleanse(mac, sizeof(mac));
	return rc;
}

static enum scepd_verdict
static_check(void *state, const struct scepd_challenge_request *req, char *why,
    size_t whylen)
{
	struct challenge *c = state;
	unsigned char want[CHALLENGE_MAC_LEN], got[CHALLENGE_MAC_LEN];
	char norm[CHALLENGE_PASSWORD_MAX + 1], set_by[CHALLENGE_WHO_MAX];
	int rc;

	if ((rc = single_current(c, want, set_by, sizeof(set_by))) == -2) {
		snprintf(why, whylen,
		    "the challenge service cannot read the single password "
		    "now");
		return SCEPD_VERDICT_UNAVAILABLE;
	}
	if (rc != 0) {
		snprintf(why, whylen,
		    "UseSinglePassword = 1 but no single password is set");
		return SCEPD_VERDICT_REFUSE;
	}
	challenge_normalize(req->challenge, norm, sizeof(norm));
	rc = challenge_mac(c, norm, got);
	OPENSSL_cleanse(norm, sizeof(norm));
	if (rc != 0) {
		snprintf(why, whylen,
		    "the challenge service cannot check passwords now");
		return SCEPD_VERDICT_UNAVAILABLE;
	}
	/* MACs of equal length: constant time whatever was typed. */
	if (CRYPTO_memcmp(want, got, CHALLENGE_MAC_LEN) != 0) {
		log_event(LOG_LEVEL_WARN, req->transaction_id, 0,
		    "static: wrong single password from client %s",
		    req->requester);
		snprintf(why, whylen, "challenge password is not valid");
		return SCEPD_VERDICT_REFUSE;
	}
	log_event(LOG_LEVEL_INFO, req->transaction_id, 0,
	    "static: single password (set by %s) accepted from client %s",
	    set_by, req->requester);
	return SCEPD_VERDICT_ALLOW;
}

static const char *const static_keys[] = {NULL};

static int
static_init(const struct scepd_plugin_host *host, void **state, char *err,
    size_t errlen)
{
	struct challenge *c = host->opaque;
	unsigned char mac[CHALLENGE_MAC_LEN];
	char set_by[CHALLENGE_WHO_MAX];

	*state = c;
	if (!c->settings.use_single_password) {
		snprintf(err, errlen,
		    "the static validator needs UseSinglePassword = 1 in "
		    "[challenge]");
		return -1;
	}
	/* Said at each start: an admin who changed the file (a leaked
	 * password rotated) would take the new one for the one in force. */
	if (c->settings.single_password != NULL &&
	    c->settings.single_password[0] != '\0' &&
	    single_stored(c, mac, set_by, sizeof(set_by)) == 0)
		log_warn("SinglePassword in [challenge] is not in force: the "
		         "single password set through api/single-password by "
		         "%s is, until a new one is set there",
		    set_by);
	OPENSSL_cleanse(mac, sizeof(mac));
	return 0;
}

static void
static_destroy(void *state)
{
	(void)state;
}

const struct scepd_challenge_validator challenge_static_validator = {
    SCEPD_PLUGIN_ABI_VERSION,
    "static",
    static_keys,
    static_init,
    static_check,
    NULL,
    static_destroy,
};

void
challenge_handle_set_single(void *worker, const Scep__V1__Request *req,
    Scep__V1__Reply *reply, struct rpc_arena *arena)
{
	struct challenge *c = worker;
	const Scep__V1__ChallengeSetSingleRequest *in =
	    req->challenge_set_single;
	Scep__V1__ChallengeSetSingleReply *out;
	struct challenge_single single;
	char made[2 * CHALLENGE_RAW_MAX + 1] = "";
	char norm[CHALLENGE_PASSWORD_MAX + 1];
	const char *password = in->password;
	MDB_txn *txn = NULL;
	int e;

	if (!c->settings.use_single_password) {
		reply->status = SCEP__V1__STATUS__STATUS_REFUSED;
		reply->error = "UseSinglePassword = 0 in [challenge]: there is "
		               "no single password to set";
		return;
	}
	if (password == NULL || password[0] == '\0') {
		if (challenge_new_password(
		        (size_t)c->settings.password_length, made) != 0) {
			reply->status = SCEP__V1__STATUS__STATUS_INTERNAL;
			reply->error = "no random password could be made";
			return;
		}
		password = made;
	} else if (strlen(password) < 8 ||
	    strlen(password) > CHALLENGE_PASSWORD_MAX) {
		reply->status = SCEP__V1__STATUS__STATUS_REFUSED;
		reply->error = "a single password has 8 to 255 characters";
		return;
	}
	memset(&single, 0, sizeof(single));
	single.version = 1;
	single.set_at = c->now();
	snprintf(single.set_by, sizeof(single.set_by), "%s", in->set_by);
	challenge_normalize(password, norm, sizeof(norm));
	e = challenge_mac(c, norm, single.mac);
	OPENSSL_cleanse(norm, sizeof(norm));
	if (e == 0 && (e = challenge_txn_begin(c, &txn)) == 0) {
		/* Commit frees the transaction whatever its result. */
		if ((e = challenge_single_put(txn, c->dbi, &single)) == 0)
			e = challenge_txn_commit(c, txn);
		else
			challenge_txn_abort(c, txn);
	}
	if (e != 0) {
		OPENSSL_cleanse(made, sizeof(made));
		reply->status = SCEP__V1__STATUS__STATUS_INTERNAL;
		reply->error = "the single password could not be stored";
		return;
	}
	log_event(LOG_LEVEL_WARN, NULL, req->id,
	    "single password %s by %s (%s, via %s)", made[0] ? "made" : "set",
	    single.set_by, in->client_addr ? in->client_addr : "-",
	    req->origin ? req->origin : "?");
	out = rpc_alloc(arena, sizeof(*out));
	scep__v1__challenge_set_single_reply__init(out);
	if (made[0] != '\0')
		out->password = rpc_strdup_secret(arena, made);
	OPENSSL_cleanse(made, sizeof(made));
	reply->body_case = SCEP__V1__REPLY__BODY_CHALLENGE_SET_SINGLE;
	reply->challenge_set_single = out;
}
