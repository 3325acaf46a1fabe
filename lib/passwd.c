#include <errno.h>
#include <libgen.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "clock.h"
#include "log.h"
#include "passwd.h"
#include "store.h"

/* 16 MiB and ~50 ms per check: slow for a guesser, fine for an admin. */
#define PASSWD_N 16384
#define PASSWD_R 8
#define PASSWD_P 1
#define PASSWD_SALT 16
#define PASSWD_KEY 32
/* Parameters asking for more memory than this are refused as malformed. */
#define PASSWD_MAXMEM (64u << 20)

/*
 * Checked when the user does not exist, so that a miss costs as much as a
 * wrong password and user names cannot be probed by timing.
 */
static const char passwd_dummy[] =
    "$scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

struct passwd_hash {
	unsigned long n, r, p;
	unsigned char salt[64], key[64];
	size_t salt_len, key_len;
};

static int
b64_decode(
    const char *s, size_t len, unsigned char *out, size_t cap, size_t *out_len)
{
	unsigned char tmp[96];
	int n, pad = 0;

	if (len == 0 || len % 4 != 0 || len / 4 * 3 > sizeof(tmp))
		return -1;
	if ((n = EVP_DecodeBlock(tmp, (const unsigned char *)s, (int)len)) < 0)
		return -1;
	pad = (s[len - 1] == '=') + (s[len - 2] == '=');
	if ((size_t)(n - pad) > cap)
		return -1;
	memcpy(out, tmp, (size_t)(n - pad));
	*out_len = (size_t)(n - pad);
	return 0;
}

static int
parse_ulong(const char *s, size_t len, unsigned long max, unsigned long *v)
{
	unsigned long n = 0;

	if (len == 0 || len > 10 || s[0] == '0')
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		n = n * 10 + (unsigned long)(s[i] - '0');
	}
	if (n > max)
		return -1;
	*v = n;
	return 0;
}

/* "$scrypt$N$r$p$salt$key" into h; -1 when malformed or too costly. */
static int
passwd_parse(const char *hash, struct passwd_hash *h)
{
	const char *f[5];
	size_t flen[5];
	const char *p;

	if (strncmp(hash, "$scrypt$", 8) != 0)
		return -1;
	p = hash + 8;
	for (int i = 0; i < 5; i++) {
		const char *d = strchr(p, '$');

		if ((d == NULL) != (i == 4))
			return -1;
		f[i] = p;
		flen[i] = d != NULL ? (size_t)(d - p) : strlen(p);
		p = d != NULL ? d + 1 : NULL;
	}
	if (parse_ulong(f[0], flen[0], 1ul << 20, &h->n) != 0 ||
	    (h->n & (h->n - 1)) != 0 || h->n < 2 ||
	    parse_ulong(f[1], flen[1], 64, &h->r) != 0 ||
	    parse_ulong(f[2], flen[2], 16, &h->p) != 0 ||
	    128ull * h->r * (h->n + h->p) > PASSWD_MAXMEM ||
	    b64_decode(f[3], flen[3], h->salt, sizeof(h->salt), &h->salt_len) !=
	        0 ||
	    b64_decode(f[4], flen[4], h->key, sizeof(h->key), &h->key_len) !=
	        0 ||
	    h->salt_len < 8 || h->key_len < 16)
		return -1;
	return 0;
}

static int
passwd_derive(
    const char *password, const struct passwd_hash *h, unsigned char *key)
{
	if (EVP_PBE_scrypt(password, strlen(password), h->salt, h->salt_len,
	        h->n, h->r, h->p, PASSWD_MAXMEM, key, h->key_len) != 1) {
		log_openssl(LOG_LEVEL_ERROR, NULL, "scrypt failed");
		return -1;
	}
	return 0;
}

int
passwd_hash(const char *password, char *out, size_t outlen)
{
	struct passwd_hash h = {
	    PASSWD_N, PASSWD_R, PASSWD_P, {0}, {0}, PASSWD_SALT, PASSWD_KEY};
	char salt64[64], key64[64];
	int n, rc = -1;

	if (RAND_bytes(h.salt, PASSWD_SALT) != 1 ||
	    passwd_derive(password, &h, h.key) != 0)
		goto out;
	EVP_EncodeBlock((unsigned char *)salt64, h.salt, PASSWD_SALT);
	EVP_EncodeBlock((unsigned char *)key64, h.key, PASSWD_KEY);
	n = snprintf(out, outlen, "$scrypt$%lu$%lu$%lu$%s$%s", h.n, h.r, h.p,
	    salt64, key64);
	if (n < 0 || (size_t)n >= outlen)
		goto out;
	rc = 0;
out:
	OPENSSL_cleanse(&h, sizeof(h));
	OPENSSL_cleanse(key64, sizeof(key64));
	return rc;
}

int
passwd_verify(const char *password, const char *hash)
{
	struct passwd_hash h;
	unsigned char key[64];
	int rc = -1;

	if (passwd_parse(hash, &h) != 0 ||
	    passwd_derive(password, &h, key) != 0)
		goto out;
	rc = CRYPTO_memcmp(key, h.key, h.key_len) == 0;
out:
	OPENSSL_cleanse(&h, sizeof(h));
	OPENSSL_cleanse(key, sizeof(key));
	return rc;
}

/* Splits "user:hash:rights" in place; -1 for a comment, blank or bad line. */
static int
passwd_split(char *line, char **user, char **hash, char **rights)
{
	char *c1, *c2;

	line[strcspn(line, "\r\n")] = '\0';
	if (line[0] == '\0' || line[0] == '#' ||
	    (c1 = strchr(line, ':')) == NULL ||
	    (c2 = strchr(c1 + 1, ':')) == NULL)
		return -1;
	*c1 = *c2 = '\0';
	*user = line;
	*hash = c1 + 1;
	*rights = c2 + 1;
	return 0;
}

/*
 * `file` opened to read, if it is a regular file of one link, not a
 * symbolic link: whoever may write its directory (the frontend's user)
 * could otherwise put there a link to a file of root's, which `scepctl
 * passwd` run as root would copy beside it with that file's owner, or
 * `--list` print. NULL with errno (ELOOP, EMLINK, EINVAL for another
 * kind of file).
 */

static FILE *passwd_open(const char *file);

/* Why passwd_open failed, for the log. */
const char *
passwd_strerror(int e)
{
	switch (e) {
	case ELOOP:
		return "a symbolic link, refused (put the file itself there)";
	case EMLINK:
		return "a file of several hard links, refused (copy it)";
	case EINVAL:
		return "not a regular file";
	default:
		return strerror(e);
	}
}

int
passwd_file_usable(const char *file)
{
	FILE *f = passwd_open(file);

	if (f == NULL)
		return -1;
	fclose(f);
	return 0;
}

static FILE *
passwd_open(const char *file)
{
	struct stat st;
	FILE *f;
	/* O_NONBLOCK: a FIFO put there would block the open forever; a
	 * regular file's reads do not care, and it is taken off after. */
	int fd = open(file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK), e;

	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1 ||
	    fcntl(fd, F_SETFL, 0) != 0 || (f = fdopen(fd, "r")) == NULL) {
		e = errno;
		if (fstat(fd, &st) == 0)
			e = !S_ISREG(st.st_mode) ? EINVAL
			    : st.st_nlink != 1   ? EMLINK
			                         : e;
		close(fd);
		errno = e;
		return NULL;
	}
	return f;
}

/* The line of `user` in `file`: its hash and rights (the caller frees
 * both). 1 found, 0 no such user, -1 the file cannot be read. */
static int
passwd_find(const char *file, const char *user, char **hash, char **rights)
{
	FILE *f;
	char *line = NULL;
	size_t cap = 0;
	int rc = 0;

	*hash = *rights = NULL;
	if ((f = passwd_open(file)) == NULL) {
		log_error("cannot read %s: %s", file, passwd_strerror(errno));
		return -1;
	}
	while (rc == 0 && getline(&line, &cap, f) >= 0) {
		char *u, *h, *r;

		if (passwd_split(line, &u, &h, &r) != 0 || strcmp(u, user) != 0)
			continue;
		rc = 1;
		if ((*hash = strdup(h)) == NULL ||
		    (*rights = strdup(r)) == NULL)
			rc = -1;
	}
	if (rc == 0 && ferror(f)) {
		log_error("cannot read %s: %s", file, passwd_strerror(errno));
		rc = -1;
	}
	if (rc == -1) {
		free(*hash);
		free(*rights);
		*hash = *rights = NULL;
	}
	fclose(f);
	if (line != NULL)
		OPENSSL_cleanse(line, cap);
	free(line);
	return rc;
}

/* What credentials that matched are remembered by: an HMAC under a key of
 * this process of the user, the hash matched and the password. */
static int
passwd_seen_digest(const struct passwd_seen *seen, const char *user,
    const char *hash, const char *password, unsigned char out[32])
{
	EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	EVP_MAC_CTX *ctx = mac != NULL ? EVP_MAC_CTX_new(mac) : NULL;
	OSSL_PARAM params[] = {
	    OSSL_PARAM_construct_utf8_string("digest", "SHA256", 0),
	    OSSL_PARAM_construct_end()};
	size_t len = 0;
	int ok = ctx != NULL &&
	    EVP_MAC_init(ctx, seen->key, sizeof(seen->key), params) &&
	    EVP_MAC_update(
	        ctx, (const unsigned char *)user, strlen(user) + 1) &&
	    EVP_MAC_update(
	        ctx, (const unsigned char *)hash, strlen(hash) + 1) &&
	    EVP_MAC_update(
	        ctx, (const unsigned char *)password, strlen(password)) &&
	    EVP_MAC_final(ctx, out, &len, 32) && len == 32;

	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(mac);
	return ok ? 0 : -1;
}

struct passwd_seen *
passwd_seen_new(void)
{
	struct passwd_seen *seen = calloc(1, sizeof(*seen));

	if (seen == NULL)
		return NULL;
	if (RAND_bytes(seen->key, sizeof(seen->key)) != 1) {
		free(seen);
		return NULL;
	}
	pthread_mutex_init(&seen->lock, NULL);
	return seen;
}

void
passwd_seen_free(struct passwd_seen *seen)
{
	if (seen == NULL)
		return;
	pthread_mutex_destroy(&seen->lock);
	OPENSSL_cleanse(seen, sizeof(*seen));
	free(seen);
}

int
passwd_check_seen(struct passwd_seen *seen, const char *file, const char *user,
    const char *password, char *rights, size_t rightslen)
{
	char *hash, *found_rights;
	unsigned char digest[32];
	int64_t now = clock_monotonic_ms();
	int rc;

	if ((rc = passwd_find(file, user, &hash, &found_rights)) != 1)
		return rc;
	rc = 0;
	if (passwd_seen_digest(seen, user, hash, password, digest) == 0) {
		pthread_mutex_lock(&seen->lock);
		for (size_t i = 0; i < PASSWD_SEEN_SLOTS && rc == 0; i++)
			rc = seen->slot[i].until_ms > now &&
			    CRYPTO_memcmp(seen->slot[i].digest, digest, 32) ==
			        0;
		pthread_mutex_unlock(&seen->lock);
	}
	if (rc == 1 && rights != NULL && rightslen > 0)
		snprintf(rights, rightslen, "%s", found_rights);
	OPENSSL_cleanse(digest, sizeof(digest));
	free(hash);
	free(found_rights);
	return rc;
}

/* Remembers credentials that matched `hash`, in place of the entry that
 * ends first. */
static void
passwd_seen_add(struct passwd_seen *seen, const char *user, const char *hash,
    const char *password)
{
	unsigned char digest[32];
	size_t oldest = 0;

	if (passwd_seen_digest(seen, user, hash, password, digest) != 0)
		return;
	pthread_mutex_lock(&seen->lock);
	for (size_t i = 1; i < PASSWD_SEEN_SLOTS; i++)
		if (seen->slot[i].until_ms < seen->slot[oldest].until_ms)
			oldest = i;
	memcpy(seen->slot[oldest].digest, digest, 32);
	seen->slot[oldest].until_ms = clock_monotonic_ms() + PASSWD_SEEN_MS;
	pthread_mutex_unlock(&seen->lock);
	OPENSSL_cleanse(digest, sizeof(digest));
}

int
passwd_check_file(const char *file, const char *user, const char *password,
    char *rights, size_t rightslen, struct passwd_seen *seen)
{
	char *hash, *found_rights;
	int rc, v;

	if ((rc = passwd_find(file, user, &hash, &found_rights)) < 0)
		return -1;
	v = passwd_verify(password, hash != NULL ? hash : passwd_dummy);
	if (hash != NULL && v < 0)
		log_warn("%s: the hash of user %s is malformed", file, user);
	rc = hash != NULL && v == 1;
	if (rc == 1 && rights != NULL && rightslen > 0)
		snprintf(rights, rightslen, "%s", found_rights);
	if (rc == 1 && seen != NULL)
		passwd_seen_add(seen, user, hash, password);
	free(hash);
	free(found_rights);
	return rc;
}

static int
passwd_field_ok(const char *s, int allow_empty)
{
	return (allow_empty || s[0] != '\0') && strpbrk(s, ":\r\n") == NULL;
}

/*
 * Gives the replacement `out` of `in` (`file`) the owner and mode of `in`:
 * root rewriting the file of the frontend's user must leave it that
 * user's. 0, or -1 logged (the file is then left as it is).
 */
static int
passwd_keep_owner(const char *file, FILE *in, FILE *out)
{
	struct stat old, new;

	if (fstat(fileno(in), &old) != 0 || fstat(fileno(out), &new) != 0) {
		log_error("cannot write %s: %s", file, strerror(errno));
		return -1;
	}
	if ((old.st_uid != new.st_uid || old.st_gid != new.st_gid) &&
	    fchown(fileno(out), old.st_uid, old.st_gid) != 0) {
		log_error("%s is left unchanged: it belongs to uid %u gid %u, "
		          "and its replacement could not be given that owner "
		          "(%s): run this as root or as that user",
		    file, (unsigned)old.st_uid, (unsigned)old.st_gid,
		    strerror(errno));
		return -1;
	}
	/* Its owner's and group's: never others' (password hashes). */
	if (fchmod(fileno(out), old.st_mode & 0770) != 0) {
		log_error("%s is left unchanged: cannot give its replacement "
		          "mode %04o: %s",
		    file, (unsigned)(old.st_mode & 0770), strerror(errno));
		return -1;
	}
	if ((old.st_mode & 07) != 0)
		log_warn("%s was readable by others (mode %04o): now %04o",
		    file, (unsigned)(old.st_mode & 07777),
		    (unsigned)(old.st_mode & 0770));
	return 0;
}

/*
 * A new file made by root takes its directory's owner and group: in a
 * directory of the frontend's user (scepd --service-users' admin/) the
 * frontend reads it at every login. 0, or -1 logged.
 */
static int
passwd_dir_owner(const char *file, FILE *out)
{
	char *copy = strdup(file);
	struct stat dir;
	int rc = 0;

	if (copy == NULL)
		return -1;
	if (geteuid() == 0 && stat(dirname(copy), &dir) == 0 &&
	    dir.st_uid != 0 &&
	    fchown(fileno(out), dir.st_uid, dir.st_gid) != 0) {
		log_error("cannot give %s its directory's owner (uid %u gid "
		          "%u): %s",
		    file, (unsigned)dir.st_uid, (unsigned)dir.st_gid,
		    strerror(errno));
		rc = -1;
	}
	free(copy);
	return rc;
}

/*
 * Rewrites `file` (a temporary file renamed over it, mode 0600 from the
 * start, then the owner and mode of the file it replaces) with `user`'s
 * line replaced by `entry` ("user:hash:rights"), or dropped when entry is
 * NULL, or appended when there was none. Returns 0, 1 when there was none
 * to drop, -1 on error (logged).
 */
static int
passwd_rewrite(const char *file, const char *user, const char *entry)
{
	char *tmp = NULL, *line = NULL;
	FILE *in = NULL, *out = NULL;
	size_t cap = 0;
	ssize_t got;
	int fd = -1, rc = -1, found = 0, logged = 0;

	if ((tmp = malloc(strlen(file) + 16)) == NULL)
		goto out;
	sprintf(tmp, "%s.tmpXXXXXX", file);
	/* mkstemp creates the file 0600: the hashes are never readable by
	 * others, not even for a moment. */
	if ((fd = mkstemp(tmp)) < 0 || fchmod(fd, 0600) != 0 ||
	    (out = fdopen(fd, "w")) == NULL)
		goto out;
	fd = -1;
	if ((in = passwd_open(file)) == NULL && errno != ENOENT) {
		log_error("cannot read %s: %s", file, passwd_strerror(errno));
		logged = 1;
		goto out;
	}
	if (in != NULL && passwd_keep_owner(file, in, out) != 0) {
		logged = 1;
		goto out;
	}
	if (in == NULL && passwd_dir_owner(file, out) != 0) {
		logged = 1;
		goto out;
	}
	while (in != NULL && (got = getline(&line, &cap, in)) > 0) {
		char *copy = strdup(line), *u, *h, *r;
		int same;

		if (copy == NULL)
			goto out;
		same =
		    passwd_split(copy, &u, &h, &r) == 0 && strcmp(u, user) == 0;
		free(copy);
		if (!same) {
			fwrite(line, 1, (size_t)got, out);
			if (line[got - 1] != '\n')
				fputc('\n', out);
		} else if (!found++ && entry != NULL) /* in its place */
			fprintf(out, "%s\n", entry);
	}
	if (in != NULL && ferror(in))
		goto out;
	if (!found && entry == NULL) {
		rc = 1; /* nothing to drop: the file stays as it is */
		goto out;
	}
	if (!found)
		fprintf(out, "%s\n", entry);
	if (ferror(out) || fflush(out) != 0 || fsync(fileno(out)) != 0)
		goto out;
	if (fclose(out) != 0) {
		out = NULL;
		goto out;
	}
	out = NULL;
	if (rename(tmp, file) != 0)
		goto out;
	/* Written: a failure now only leaves it less durable. */
	if (store_sync_dir(file) != 0)
		log_warn("%s is written, but its directory could not be "
		         "flushed (%s): a crash now may bring back the file "
		         "before",
		    file, strerror(errno));
	free(tmp);
	tmp = NULL;
	rc = 0;
out:
	if (rc < 0 && !logged)
		log_error("cannot write %s: %s", file, strerror(errno));
	if (in != NULL)
		fclose(in);
	if (out != NULL)
		fclose(out);
	if (fd >= 0)
		close(fd);
	if (tmp != NULL) {
		unlink(tmp);
		free(tmp);
	}
	if (line != NULL)
		OPENSSL_cleanse(line, cap);
	free(line);
	return rc;
}

/* How long a writer waits for another's lock before it gives up. */
#define PASSWD_LOCK_WAIT_MS 10000

/*
 * FILE.lock taken (an open descriptor, or -1, logged): two writers would
 * each rewrite the file they read, the last rename dropping the other's
 * change (an account set, or one deleted coming back). Readers need none
 * (a rename replaces the file whole). An empty regular file, readable by
 * all so that the service's user may lock it as root's; anything else
 * there (a FIFO planted to hang us) is refused, and a lock held past
 * PASSWD_LOCK_WAIT_MS is said, not waited on for ever.
 */
static int
passwd_lock(const char *file)
{
	char *path = malloc(strlen(file) + 6);
	int64_t until = clock_monotonic_ms() + PASSWD_LOCK_WAIT_MS;
	struct stat st;
	int fd = -1;

	if (path == NULL)
		return -1;
	sprintf(path, "%s.lock", file);
	/* Made here, it is made 0644 whatever the umask; one found is
	 * left as it is (a hard link planted to another file, unlinked
	 * again before fstat, must not have its mode changed). */
	if ((fd = open(path,
	         O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644)) >=
	    0)
		(void)fchmod(fd, 0644);
	else if (errno == EEXIST)
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0 || fstat(fd, &st) != 0) {
		log_error("cannot lock %s: %s", path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode) || st.st_nlink != 1) {
		log_error("cannot lock %s: not a regular file of one link "
		          "(remove it)",
		    path);
		goto fail;
	}
	while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		struct timespec ts = {0, 50 * 1000 * 1000};

		if (errno != EWOULDBLOCK && errno != EINTR) {
			log_error("cannot lock %s: %s", path, strerror(errno));
			goto fail;
		}
		if (clock_monotonic_ms() >= until) {
			log_error("cannot lock %s: another process holds it "
			          "(a scepctl passwd still running?)",
			    path);
			goto fail;
		}
		nanosleep(&ts, NULL);
	}
	free(path);
	return fd;
fail:
	if (fd >= 0)
		close(fd);
	free(path);
	return -1;
}

int
passwd_set_file(const char *file, const char *user, const char *password,
    const char *rights)
{
	char hash[256], entry[PASSWD_USER_MAX + 256 + 128 + 3];
	char *kept_hash = NULL, *kept = NULL;
	int rc = -1, lock;

	if (!passwd_field_ok(user, 0) || user[0] == '#' ||
	    strlen(user) > PASSWD_USER_MAX ||
	    (rights != NULL &&
	        (!passwd_field_ok(rights, 1) || strlen(rights) >= 128))) {
		log_error("a user name must be 1 to %d bytes and not start "
		          "with '#'; neither it nor the rights may hold ':' "
		          "or a line break",
		    PASSWD_USER_MAX);
		return -1;
	}
	if ((lock = passwd_lock(file)) < 0)
		return -1;
	/* A new password alone keeps the account's rights (an admin
	 * changing its password stayed no admin). */
	if (rights == NULL && access(file, F_OK) == 0 &&
	    passwd_find(file, user, &kept_hash, &kept) < 0)
		goto out;
	if (rights == NULL)
		rights = kept != NULL ? kept : PASSWD_RIGHTS_DEFAULT;
	if (passwd_hash(password, hash, sizeof(hash)) == 0) {
		snprintf(entry, sizeof(entry), "%s:%s:%s", user, hash, rights);
		rc = passwd_rewrite(file, user, entry);
	}
	OPENSSL_cleanse(hash, sizeof(hash));
	OPENSSL_cleanse(entry, sizeof(entry));
out:
	free(kept_hash);
	free(kept);
	close(lock);
	return rc;
}

int
passwd_delete_file(const char *file, const char *user)
{
	int lock = passwd_lock(file), rc;

	if (lock < 0)
		return -1;
	rc = passwd_rewrite(file, user, NULL);
	close(lock);
	return rc;
}

int
passwd_list_file(const char *file,
    void (*each)(void *ctx, const char *user, const char *rights), void *ctx)
{
	FILE *f;
	char *line = NULL;
	size_t cap = 0;
	int n = 0;

	if ((f = passwd_open(file)) == NULL) {
		log_error("cannot read %s: %s", file, passwd_strerror(errno));
		return -1;
	}
	while (getline(&line, &cap, f) >= 0) {
		char *u, *h, *r;

		if (passwd_split(line, &u, &h, &r) != 0)
			continue;
		each(ctx, u, r);
		n++;
	}
	if (ferror(f))
		n = -1;
	fclose(f);
	if (line != NULL)
		OPENSSL_cleanse(line, cap);
	free(line);
	return n;
}
