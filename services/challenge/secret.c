/*
 * The HMAC secret: 32 random bytes in SecretFile. Created at first start;
 * refused when group or others may read it, since with the secret and the
 * database a password could be tested offline.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "challenge.h"
#include "store.h"
#include "log.h"

static int
challenge_secret_create(
    const char *path, unsigned char *secret, char *err, size_t errlen)
{
	char *copy = NULL, tmp[4096];
	int fd = -1, rc = -1;

	if ((copy = strdup(path)) == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		goto out;
	}
	if (store_mkdir_p(dirname(copy), err, errlen) != 0)
		goto out;
	if (RAND_bytes(secret, CHALLENGE_SECRET_LEN) != 1) {
		snprintf(err, errlen, "%s: no random bytes from OpenSSL", path);
		goto out;
	}
	/* Written whole under another name, then linked in place: a stop in
	 * the middle never leaves an empty secret behind, and an existing
	 * one is never replaced (link fails on it). */
	snprintf(tmp, sizeof(tmp), "%s.new", path);
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd == -1) {
		snprintf(
		    err, errlen, "%s: cannot create: %s", tmp, strerror(errno));
		goto out;
	}
	if (write(fd, secret, CHALLENGE_SECRET_LEN) != CHALLENGE_SECRET_LEN ||
	    fsync(fd) != 0 || link(tmp, path) != 0) {
		snprintf(
		    err, errlen, "%s: cannot write: %s", path, strerror(errno));
		unlink(tmp);
		goto out;
	}
	unlink(tmp);
	/* Else a crash could lose the name, and the next start make
	 * another secret: every password stored meanwhile void. */
	if (store_sync_dir(path) != 0) {
		snprintf(err, errlen, "%s: cannot flush its directory: %s",
		    path, strerror(errno));
		goto out;
	}
	log_info("created SecretFile %s", path);
	rc = 0;
out:
	if (fd != -1)
		close(fd);
	free(copy);
	return rc;
}

int
challenge_secret_load(
    const char *path, unsigned char *secret, char *err, size_t errlen)
{
	struct stat st;
	ssize_t n;
	int fd = -1, rc = -1;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		if (errno == ENOENT)
			return challenge_secret_create(
			    path, secret, err, errlen);
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (fstat(fd, &st) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		goto out;
	}
	if ((st.st_mode & 077) != 0) {
		snprintf(err, errlen,
		    "%s: mode %04o lets group or others read the secret; "
		    "chmod 600 it",
		    path, (unsigned)(st.st_mode & 07777));
		goto out;
	}
	if (st.st_size != CHALLENGE_SECRET_LEN) {
		snprintf(err, errlen,
		    "%s: %lld bytes; expected %d random bytes (delete it to "
		    "have a new one made, which voids outstanding passwords)",
		    path, (long long)st.st_size, CHALLENGE_SECRET_LEN);
		goto out;
	}
	n = read(fd, secret, CHALLENGE_SECRET_LEN);
	if (n != CHALLENGE_SECRET_LEN) {
		snprintf(err, errlen, "%s: cannot read: %s", path,
		    n < 0 ? strerror(errno) : "short read");
		OPENSSL_cleanse(secret, CHALLENGE_SECRET_LEN);
		goto out;
	}
	rc = 0;
out:
	if (fd != -1)
		close(fd);
	return rc;
}
