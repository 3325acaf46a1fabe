/*
 * The content-encryption keys the RA has unwrapped, each with the content
 * it came with (scep.h, struct scep_wrapped_keys).
 *
 * Why: an envelope's content is AES/3DES-CBC with no integrity of its own,
 * and anyone may sign a pkiMessage. Copying a device's RecipientInfo (the
 * key wrapped to the RA) into an envelope of one's own, with a chosen IV
 * and ciphertext, under a messageType whose content carries no signature
 * (GetCRL, GetCert, CertPoll), makes the RA decrypt chosen blocks under the
 * device's key; whether they read as that content showed in the answer, a
 * CBC padding oracle recovering the device's CSR, challengePassword and
 * all, in a few thousand requests. A wrapped key is made once per
 * envelope (RSA PKCS#1 v1.5 padding is random), so a client never sends
 * one with other content: the second content is refused unread.
 *
 * A fixed table, four entries a bucket, the oldest of a full bucket
 * forgotten. Tags are SHA-256 under a secret drawn at start, so that no
 * one can aim wrapped keys at one bucket to push a device's out.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "clock.h"
#include "scep.h"

#define WRAPPED_KEY_WAYS 4

struct wrapped_key {
	uint8_t key[16]; /* of the wrapped key */
	uint8_t content[16]; /* of the content it came with */
	int64_t seen_ms; /* 0: empty */
};

struct scep_wrapped_keys {
	pthread_mutex_t lock;
	EVP_MD *sha256;
	uint8_t secret[32];
	size_t buckets;
	struct wrapped_key *slots; /* buckets x WRAPPED_KEY_WAYS */
	uint64_t refused, forgotten;
	int64_t youngest_forgotten_ms; /* its age when forgotten */
};

struct scep_wrapped_keys *
scep_wrapped_keys_new(size_t capacity)
{
	struct scep_wrapped_keys *w;

	if (capacity < WRAPPED_KEY_WAYS || capacity > SCEP_WRAPPED_KEYS_MAX ||
	    (w = calloc(1, sizeof(*w))) == NULL)
		return NULL;
	w->buckets = capacity / WRAPPED_KEY_WAYS;
	w->youngest_forgotten_ms = -1;
	if (pthread_mutex_init(&w->lock, NULL) != 0) {
		free(w);
		return NULL;
	}
	if ((w->slots = calloc(
	         w->buckets * WRAPPED_KEY_WAYS, sizeof(*w->slots))) == NULL ||
	    (w->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL)) == NULL ||
	    RAND_priv_bytes(w->secret, sizeof(w->secret)) != 1) {
		scep_wrapped_keys_free(w);
		return NULL;
	}
	return w;
}

void
scep_wrapped_keys_free(struct scep_wrapped_keys *w)
{
	if (w == NULL)
		return;
	pthread_mutex_destroy(&w->lock);
	EVP_MD_free(w->sha256);
	OPENSSL_cleanse(w->secret, sizeof(w->secret));
	free(w->slots);
	free(w);
}

/* SHA-256 of the secret, a label and up to two pieces. */
static int
wrapped_keys_tag(const struct scep_wrapped_keys *w, char label,
    const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len,
    uint8_t out[32])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok = ctx != NULL && EVP_DigestInit_ex2(ctx, w->sha256, NULL) &&
	    EVP_DigestUpdate(ctx, w->secret, sizeof(w->secret)) &&
	    EVP_DigestUpdate(ctx, &label, 1) &&
	    EVP_DigestUpdate(ctx, a, a_len) &&
	    (b_len == 0 || EVP_DigestUpdate(ctx, b, b_len)) &&
	    EVP_DigestFinal_ex(ctx, out, NULL);

	EVP_MD_CTX_free(ctx);
	return ok ? 0 : -1;
}

int
scep_wrapped_keys_check(struct scep_wrapped_keys *w, const uint8_t *key,
    size_t key_len, const uint8_t *content, size_t content_len,
    const uint8_t *more, size_t more_len)
{
	uint8_t k[32], c[32];
	struct wrapped_key *bucket, *slot = NULL;
	int64_t now = clock_monotonic_ms();
	uint64_t at;
	int fresh = 1;

	/* `more` first: DER, it ends where it says. */
	if (wrapped_keys_tag(w, 'c', more, more_len, content, content_len, c) !=
	        0 ||
	    wrapped_keys_tag(w, 'k', key, key_len, NULL, 0, k) != 0)
		return -1;
	memcpy(&at, k + 16, sizeof(at));
	bucket = &w->slots[(at % w->buckets) * WRAPPED_KEY_WAYS];
	pthread_mutex_lock(&w->lock);
	for (int i = 0; i < WRAPPED_KEY_WAYS && fresh; i++)
		if (bucket[i].seen_ms != 0 &&
		    CRYPTO_memcmp(bucket[i].key, k, sizeof(bucket[i].key)) ==
		        0) {
			fresh = 0;
			if (CRYPTO_memcmp(bucket[i].content, c,
			        sizeof(bucket[i].content)) != 0) {
				w->refused++;
				pthread_mutex_unlock(&w->lock);
				return 0;
			}
		}
	if (fresh) {
		for (int i = 0; i < WRAPPED_KEY_WAYS; i++)
			if (slot == NULL || bucket[i].seen_ms < slot->seen_ms)
				slot = &bucket[i];
		if (slot->seen_ms != 0) {
			w->forgotten++;
			if (w->youngest_forgotten_ms < 0 ||
			    now - slot->seen_ms < w->youngest_forgotten_ms)
				w->youngest_forgotten_ms = now - slot->seen_ms;
		}
		memcpy(slot->key, k, sizeof(slot->key));
		memcpy(slot->content, c, sizeof(slot->content));
		/* Never 0, the empty mark, even on a clock starting at 0. */
		slot->seen_ms = now > 0 ? now : 1;
	}
	pthread_mutex_unlock(&w->lock);
	return 1;
}

void
scep_wrapped_keys_stats(struct scep_wrapped_keys *w, uint64_t *refused,
    uint64_t *forgotten, int64_t *youngest_forgotten_ms)
{
	pthread_mutex_lock(&w->lock);
	*refused = w->refused;
	*forgotten = w->forgotten;
	*youngest_forgotten_ms = w->youngest_forgotten_ms;
	w->youngest_forgotten_ms = -1;
	pthread_mutex_unlock(&w->lock);
}
