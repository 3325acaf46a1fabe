/*
 * Admin accounts for /certsrv/mscep_admin/: a text file of lines
 *   user:$scrypt$N$r$p$<salt base64>$<hash base64>:right[,right]
 * (rights today: "enroll", the right to get challenge passwords). Hashes
 * are salted scrypt (OpenSSL's EVP_PBE_scrypt); comparison is constant time.
 */
#ifndef SCEPD_PASSWD_H
#define SCEPD_PASSWD_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

/* Writes a new hash of `password` into out (NUL-terminated). 0 or -1. */
int passwd_hash(const char *password, char *out, size_t outlen);
/* 1 if `password` matches `hash`, 0 if not, -1 if hash is malformed. */
int passwd_verify(const char *password, const char *hash);

/*
 * Credentials that matched lately, so that a client sending the same
 * again (an MDM asking a password per device) does not wait for scrypt
 * again. Each is remembered PASSWD_SEEN_MS by an HMAC (a key of this
 * process) of user, password and the hash they matched: a password
 * changed or an account deleted in the file matches nothing any more, and
 * rights are read from the file each time. A wrong password is never
 * remembered. Thread-safe.
 */
#define PASSWD_SEEN_SLOTS 32
#define PASSWD_SEEN_MS (5 * 60 * 1000)
struct passwd_seen {
	pthread_mutex_t lock;
	unsigned char key[32];
	struct {
		unsigned char digest[32];
		int64_t until_ms; /* CLOCK_MONOTONIC */
	} slot[PASSWD_SEEN_SLOTS];
};
struct passwd_seen *passwd_seen_new(void);
void passwd_seen_free(struct passwd_seen *seen);
/* 1 when `user` and `password` matched the account's present hash within
 * PASSWD_SEEN_MS (rights copied as below), 0 when not known (check them
 * with passwd_check_file), -1 when the file cannot be read. */
int passwd_check_seen(struct passwd_seen *seen, const char *file,
    const char *user, const char *password, char *rights, size_t rightslen);

/* 0 when `file` can be read as the accounts file: the file itself (not
 * a symbolic link, nor one of several hard links), a regular file; else
 * -1 with errno, which passwd_strerror says for the log. */
int passwd_file_usable(const char *file);
const char *passwd_strerror(int e);

/*
 * Looks `user` up in `file` and checks the password. Returns 1 and copies
 * the rights ("enroll") to rights when it matches, 0 when it does not (or
 * no such user), -1 when the file cannot be read. A match is remembered in
 * `seen` unless it is NULL.
 */
int passwd_check_file(const char *file, const char *user, const char *password,
    char *rights, size_t rightslen, struct passwd_seen *seen);
/* Longest user name, in bytes: the challenge service records it with
 * each password it issues and counts MdmPasswordMax by it. */
#define PASSWD_USER_MAX 63

/* Adds or replaces `user` in `file` (created mode 0600). 0 or -1. A file
 * rewritten keeps its owner and mode (or stays as it was, -1, when this
 * process may not give them to the new file), here and below. `rights`
 * NULL: the account's own (a new one's PASSWD_RIGHTS_DEFAULT). Writers
 * take FILE.lock in turn. */
#define PASSWD_RIGHTS_DEFAULT "enroll"
int passwd_set_file(const char *file, const char *user, const char *password,
    const char *rights);
/* Removes `user` from `file`: 0, 1 when there was no such user, -1. */
int passwd_delete_file(const char *file, const char *user);
/* Calls `each` with every account's name and rights (never a hash):
 * how many, or -1 when the file cannot be read. */
int passwd_list_file(const char *file,
    void (*each)(void *ctx, const char *user, const char *rights), void *ctx);

#endif
