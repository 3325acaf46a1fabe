/*
 * Admin accounts for /certsrv/mscep_admin/: a text file of lines
 *   user:$scrypt$N$r$p$<salt base64>$<hash base64>:right[,right]
 * (rights today: "enroll", the right to get challenge passwords). Hashes
 * are salted scrypt (OpenSSL's EVP_PBE_scrypt); comparison is constant time.
 */
#ifndef SCEPD_PASSWD_H
#define SCEPD_PASSWD_H

#include <stddef.h>

/* Writes a new hash of `password` into out (NUL-terminated). 0 or -1. */
int passwd_hash(const char *password, char *out, size_t outlen);
/* 1 if `password` matches `hash`, 0 if not, -1 if hash is malformed. */
int passwd_verify(const char *password, const char *hash);

/*
 * Looks `user` up in `file` and checks the password. Returns 1 and copies
 * the rights ("enroll") to rights when it matches, 0 when it does not (or
 * no such user), -1 when the file cannot be read.
 */
int passwd_check_file(const char *file, const char *user, const char *password,
    char *rights, size_t rightslen);
/* Longest user name, in bytes: the challenge service records it with
 * each password it issues and counts MdmPasswordMax by it. */
#define PASSWD_USER_MAX 63

/* Adds or replaces `user` in `file` (created mode 0600). 0 or -1. A file
 * rewritten keeps its owner and mode (or stays as it was, -1, when this
 * process may not give them to the new file), here and below. */
int passwd_set_file(const char *file, const char *user, const char *password,
    const char *rights);
/* Removes `user` from `file`: 0, 1 when there was no such user, -1. */
int passwd_delete_file(const char *file, const char *user);
/* Calls `each` with every account's name and rights (never a hash):
 * how many, or -1 when the file cannot be read. */
int passwd_list_file(const char *file,
    void (*each)(void *ctx, const char *user, const char *rights), void *ctx);

#endif
