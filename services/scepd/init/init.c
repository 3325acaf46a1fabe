/*
 * First start: a data directory with a demo CA (RSA 3072, 10 years), two
 * RA certificates named <hostname>-MSCEP-RA with separate keys (NDES's
 * signature and exchange certificates), the configuration, and an admin
 * account whose password is printed once and left in admin.credentials.
 */
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "passwd.h"
#include "pki.h"
#include "scepd_init.h"

#define CA_DAYS 3650
#define RA_DAYS 730

/* What directory `dir` holds that is nobody's content: a file system's
 * own lost+found at the root of a freshly made volume (ext4's), which a
 * data directory on a volume of its own always has, while empty (an
 * fsck may have put a whole tree in it). */
static int
dir_entry_nothing(const char *dir, const char *name)
{
	char path[4200];
	DIR *d;
	struct dirent *e;
	int empty = 1;

	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return 1;
	if (strcmp(name, "lost+found") != 0)
		return 0;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((d = opendir(path)) == NULL)
		return 0;
	while (empty && (e = readdir(d)) != NULL)
		empty =
		    strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0;
	closedir(d);
	return empty;
}

/* 0: missing or empty; 1: has entries; -1: not a directory or unreadable. */
static int
dir_state(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int state = 0;

	if (d == NULL)
		return errno == ENOENT ? 0 : -1;
	while ((e = readdir(d)) != NULL)
		if (!dir_entry_nothing(dir, e->d_name)) {
			state = 1;
			break;
		}
	closedir(d);
	return state;
}

static int
add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
	if ((ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value)) == NULL)
		return -1;
	ok = X509_add_ext(cert, ext, -1);
	X509_EXTENSION_free(ext);
	return ok ? 0 : -1;
}

/* A certificate for `key` named `cn`, signed by issuer/issuer_key (or
 * self-signed when issuer is NULL), with the extensions in `exts`. */
static X509 *
make_cert(EVP_PKEY *key, const char *o, const char *cn, X509 *issuer,
    EVP_PKEY *issuer_key, int days, const int *nids, const char **values)
{
	X509 *cert = X509_new();
	X509_NAME *name = X509_NAME_new();
	unsigned char serial[16];
	BIGNUM *bn = NULL;

	if (cert == NULL || name == NULL || RAND_bytes(serial, 16) != 1)
		goto fail;
	serial[0] &= 0x7f; /* positive */
	serial[0] |= 0x40; /* and 16 bytes long */
	if ((bn = BN_bin2bn(serial, 16, NULL)) == NULL ||
	    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) == NULL)
		goto fail;
	if (!X509_set_version(cert, 2) ||
	    (o != NULL &&
	        !X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
	            (const unsigned char *)o, -1, -1, 0)) ||
	    !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
	        (const unsigned char *)cn, -1, -1, 0) ||
	    !X509_set_subject_name(cert, name) ||
	    !X509_set_issuer_name(
	        cert, issuer ? X509_get_subject_name(issuer) : name) ||
	    !X509_set_pubkey(cert, key) ||
	    X509_gmtime_adj(X509_getm_notBefore(cert), -300) == NULL ||
	    X509_time_adj_ex(X509_getm_notAfter(cert), days, 0, NULL) == NULL)
		goto fail;
	for (int i = 0; nids[i] != NID_undef; i++)
		if (add_ext(cert, issuer ? issuer : cert, nids[i], values[i]) !=
		    0)
			goto fail;
	if (X509_sign(cert, issuer_key, EVP_sha256()) <= 0)
		goto fail;
	BN_free(bn);
	X509_NAME_free(name);
	return cert;
fail:
	BN_free(bn);
	X509_NAME_free(name);
	X509_free(cert);
	return NULL;
}

static int
write_text(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	size_t len = strlen(text);
	int ok;

	if (fd < 0)
		return -1;
	ok = write(fd, text, len) == (ssize_t)len;
	return (close(fd) == 0 && ok) ? 0 : -1;
}

/* The example configuration with [frontend] Listen set to `listen`,
 * and with --service-users each service's User. */
static char *
config_text(const char *listen, int service_users)
{
	const char *key = "\nListen = 127.0.0.1:8080\n";
	const char *at = strstr(scepd_conf_example, key);
	size_t len = strlen(scepd_conf_example) + strlen(listen) + 64;
	char *out = malloc(len), *users;

	if (out == NULL)
		return NULL;
	if (at == NULL)
		snprintf(out, len, "%s", scepd_conf_example);
	else
		snprintf(out, len, "%.*s\nListen = %s\n%s",
		    (int)(at - scepd_conf_example), scepd_conf_example, listen,
		    at + strlen(key));
	if (!service_users)
		return out;
	users = init_users_config(out);
	free(out);
	return users;
}

static int
remove_entry(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return remove(path);
}

/* A staging directory of ours, gone with all it holds. */
static void
remove_tree(const char *dir)
{
	(void)nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int
make_dirs(const char *dir)
{
	static const char *const subdirs[] = {
	    "", "/ca", "/ra", "/secrets", "/db", "/run", "/admin"};
	char path[4096];

	for (size_t i = 0; i < sizeof(subdirs) / sizeof(subdirs[0]); i++) {
		snprintf(path, sizeof(path), "%s%s", dir, subdirs[i]);
		if (mkdir(path, 0700) != 0 && errno != EEXIST) {
			fprintf(
			    stderr, "scepd: %s: %s\n", path, strerror(errno));
			return -1;
		}
	}
	return 0;
}

/*
 * Whether DIR may be made beside itself and renamed into place: not a
 * mount point (a volume, a tmpfs: rename onto it fails with EBUSY) and not
 * "." or "..". Else it is made in place.
 */
static int
may_stage(const char *dir)
{
	char name[4096], parent[4200];
	const char *base;
	size_t len = strlen(dir);
	struct stat st, pst;

	while (len > 1 && dir[len - 1] == '/')
		len--;
	if (len == 0 || len >= sizeof(name))
		return 0;
	memcpy(name, dir, len);
	name[len] = '\0';
	base = strrchr(name, '/') != NULL ? strrchr(name, '/') + 1 : name;
	if (base[0] == '\0' || strcmp(base, ".") == 0 ||
	    strcmp(base, "..") == 0)
		return 0;
	if (stat(name, &st) != 0)
		return errno == ENOENT; /* made by the rename */
	snprintf(parent, sizeof(parent), "%s/..", name);
	return stat(parent, &pst) == 0 && pst.st_dev == st.st_dev &&
	    pst.st_ino != st.st_ino;
}

static int init_once(const char *dir, const char *listen, int stage_allowed,
    int service_users, int *retry_in_place);

/*
 * What was written on the disk before it is named DIR or its mark of an
 * unfinished start removed: ext4 writes a file's blocks late, and a power
 * cut after the rename but before them could leave a DIR that looks whole
 * with an empty scepd.conf, or a directory without the entries of its
 * keys (those were flushed one by one, their directories not), for a CA
 * that may have signed meanwhile. syncfs(2): every file of the tree at
 * once.
 */
static int
flush_tree(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc;

	if (fd < 0)
		return -1;
	rc = syncfs(fd);
	close(fd);
	return rc;
}

/* The entries of directory `dir` (a removal's), or with `above` those
 * of the directory holding it (a rename's), on the disk. */
static int
flush_dir(const char *dir, int above)
{
	char path[4200];
	size_t len = strlen(dir);
	int fd, rc;

	while (len > 1 && dir[len - 1] == '/')
		len--;
	snprintf(
	    path, sizeof(path), "%.*s%s", (int)len, dir, above ? "/.." : "");
	if ((fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

/* In each staging directory from its making until just before its rename:
 * only a directory holding it is taken for a start's leftover (not an
 * operator's DIR.init.backup, which may hold a copy of the CA key). */
#define INIT_STAGE_MARK ".scepd-init-stage"

/*
 * A staging directory DIR.init.XXXXXX, marked (INIT_STAGE_MARK) and locked
 * for as long as this start builds in it (a start killed, or the machine
 * stopped, leaves it unlocked, a demo CA key in it that nothing uses):
 * its descriptor, or -1 (then built in place). The mark is written once
 * the lock is held, so another start never takes it for a leftover in
 * between; a stage gone meanwhile all the same is made again.
 * Where directories cannot be locked (NFS: ENOLCK, EBADF), used
 * unlocked, as before such stages were removed: another start cannot
 * lock it either, and leaves it alone.
 */
static int
stage_make(const char *dir, char *stage, size_t size)
{
	size_t len = strlen(dir);
	struct stat st, again;
	char mark[4200];
	int fd, locked;

	while (len > 1 && dir[len - 1] == '/')
		len--;
	for (int tries = 0; tries < 3; tries++) {
		if ((size_t)snprintf(stage, size, "%.*s.init.XXXXXX", (int)len,
		        dir) >= size ||
		    mkdtemp(stage) == NULL)
			return -1;
		fd = open(
		    stage, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		locked = fd >= 0 && flock(fd, LOCK_EX) == 0;
		if (fd >= 0 && (locked || errno != EINTR) &&
		    fstat(fd, &st) == 0 && st.st_nlink > 0 &&
		    stat(stage, &again) == 0 && again.st_ino == st.st_ino &&
		    again.st_dev == st.st_dev) {
			snprintf(
			    mark, sizeof(mark), "%s/" INIT_STAGE_MARK, stage);
			if (write_text(mark, "", 0600) == 0)
				return fd;
		}
		if (fd >= 0)
			close(fd);
		remove_tree(stage); /* ours, or already gone */
	}
	return -1;
}

/* Staging directories beside DIR, marked, that no start holds: removed,
 * said. */
static void
stage_leftovers_remove(const char *dir)
{
	char name[4096], path[4400], mark[4500], *base, *slash;
	const char *parent = ".";
	size_t len = strlen(dir), blen;
	struct dirent *e;
	DIR *d;
	int fd;

	while (len > 1 && dir[len - 1] == '/')
		len--;
	if (len >= sizeof(name))
		return;
	memcpy(name, dir, len);
	name[len] = '\0';
	if ((slash = strrchr(name, '/')) != NULL) {
		*slash = '\0';
		parent = slash == name ? "/" : name;
		base = slash + 1;
	} else
		base = name;
	blen = strlen(base);
	if ((d = opendir(parent)) == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		if (strncmp(e->d_name, base, blen) != 0 ||
		    strncmp(e->d_name + blen, ".init.", 6) != 0 ||
		    strlen(e->d_name + blen + 6) != 6)
			continue;
		snprintf(path, sizeof(path), "%s/%s", parent, e->d_name);
		snprintf(mark, sizeof(mark), "%s/" INIT_STAGE_MARK, path);
		fd =
		    open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			continue;
		if (flock(fd, LOCK_EX | LOCK_NB) == 0 &&
		    access(mark, F_OK) == 0) {
			remove_tree(path);
			if (access(path, F_OK) != 0) {
				printf("scepd: removed %s, left by a first "
				       "start that was interrupted\n",
				    path);
				fflush(stdout);
			}
		}
		close(fd);
	}
	closedir(d);
}

/*
 * A first start made in place (a mount point, ".") writes this first and
 * removes it last: one interrupted (Ctrl-C, docker stop, a reboot) left
 * DIR holding some of its files, which every later start refused as "not
 * empty". What an init makes, and only that, beside this mark is its own
 * unfinished work: removed, and made again.
 */
#define INIT_UNFINISHED ".scepd-init-unfinished"

static int
init_unfinished_clear(const char *dir)
{
	static const char *const ours[] = {INIT_UNFINISHED, "ca", "ra",
	    "secrets", "db", "run", "admin", "admin.credentials", NULL};
	char path[4200];
	DIR *d;
	struct dirent *e;
	struct stat st;
	int foreign = 0;

	snprintf(path, sizeof(path), "%s/" INIT_UNFINISHED, dir);
	if (access(path, F_OK) != 0)
		return 0;
	/* Finished after all (the mark outlived its start's last step): a
	 * later start without scepd.conf (deleted, lost) would take the
	 * whole directory for unfinished work and remove it, keys and
	 * ledger too. */
	snprintf(path, sizeof(path), "%s/scepd.conf", dir);
	if (stat(path, &st) == 0 && st.st_size > 0) {
		snprintf(path, sizeof(path), "%s/" INIT_UNFINISHED, dir);
		unlink(path);
		return 0;
	}
	/* Databases exist only once services ran: never a first start's. */
	for (size_t i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/db/%s/data.mdb", dir,
		    i == 0 ? "ca" : "challenge");
		if (access(path, F_OK) == 0)
			return 0;
	}
	if ((d = opendir(dir)) == NULL)
		return 0;
	while ((e = readdir(d)) != NULL && !foreign) {
		size_t i = 0;

		if (dir_entry_nothing(dir, e->d_name))
			continue;
		while (ours[i] != NULL && strcmp(ours[i], e->d_name) != 0)
			i++;
		foreign = ours[i] == NULL;
	}
	closedir(d);
	if (foreign)
		return 0;
	printf("scepd: %s holds an interrupted first start: made again\n", dir);
	fflush(stdout);
	for (size_t i = 1; ours[i] != NULL; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, ours[i]);
		remove_tree(path);
	}
	snprintf(path, sizeof(path), "%s/" INIT_UNFINISHED, dir);
	unlink(path);
	return 1;
}

/*
 * DIR's lock (flock, as scepd takes it for as long as it serves), for a
 * DIR that exists and is empty: two first starts made in place (a mount
 * point) would write the same files, so one waits for the other, then
 * finds its whole directory. `locked_fd`: scepd's descriptor of DIR,
 * locked already (>= 0), handed down. -1 when DIR cannot be locked
 * (printed); *fd -1 when no lock is needed.
 */
static int
init_lock(const char *dir, int locked_fd, int *fd, int *waited)
{
	struct stat a, b;

	*fd = -1;
	*waited = 0;
	if (locked_fd >= 0) {
		/* Its own lock: the same open file description. */
		if (fstat(locked_fd, &a) != 0 || stat(dir, &b) != 0 ||
		    a.st_dev != b.st_dev || a.st_ino != b.st_ino ||
		    flock(locked_fd, LOCK_EX | LOCK_NB) != 0) {
			fprintf(stderr,
			    "scepd: --locked-fd %d is not %s's lock\n",
			    locked_fd, dir);
			return -1;
		}
		return 0;
	}
	if (dir_state(dir) != 0 ||
	    (*fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return 0; /* missing (made beside), or not ours to make */
	if (flock(*fd, LOCK_EX | LOCK_NB) == 0)
		return 0;
	if (errno == EWOULDBLOCK) {
		printf("scepd: another first start holds %s: waiting for it\n",
		    dir);
		fflush(stdout);
		*waited = 1;
		if (flock(*fd, LOCK_EX) == 0)
			return 0;
	}
	fprintf(stderr, "scepd: %s: cannot lock: %s\n", dir, strerror(errno));
	close(*fd);
	*fd = -1;
	return -1;
}

int
scepd_init(
    const char *dir, const char *listen, int locked_fd, int service_users)
{
	int retry = 0, rc, lock, waited;
	char conf[4200];

	if (init_lock(dir, locked_fd, &lock, &waited) != 0)
		return -1;
	snprintf(conf, sizeof(conf), "%s/scepd.conf", dir);
	if (waited && access(conf, R_OK) == 0) {
		printf("scepd: %s was initialised by another scepd meanwhile: "
		       "using it\n",
		    dir);
		fflush(stdout);
		rc = 0;
		goto out;
	}
	rc = init_once(dir, listen, may_stage(dir), service_users, &retry);
	/* A rename the file system refused (a bind mount looks like any
	 * directory): made again where it is to be. */
	if (retry)
		rc = init_once(dir, listen, 0, service_users, &retry);
out:
	/* Made before (or meanwhile by another start): said, not ignored,
	 * when it would run the services as root. */
	if (rc == 0 && service_users && init_users_configured(conf) != 0)
		rc = -1;
	if (lock >= 0)
		close(lock);
	return rc;
}

static int
init_once(const char *dir, const char *listen, int stage_allowed,
    int service_users, int *retry_in_place)
{
	static const int ca_nids[] = {NID_basic_constraints, NID_key_usage,
	    NID_subject_key_identifier, NID_authority_key_identifier,
	    NID_undef};
	static const char *ca_values[] = {"critical,CA:TRUE",
	    "critical,keyCertSign,cRLSign", "hash", "keyid:always"};
	/* NDES's RA certificates carry the Certificate Request Agent EKU. */
	static const int ra_nids[] = {NID_basic_constraints, NID_key_usage,
	    NID_ext_key_usage, NID_subject_key_identifier,
	    NID_authority_key_identifier, NID_undef};
	static const char *sign_values[] = {"CA:FALSE",
	    "critical,digitalSignature", "1.3.6.1.4.1.311.20.2.1", "hash",
	    "keyid:always"};
	static const char *enc_values[] = {"CA:FALSE",
	    "critical,keyEncipherment,dataEncipherment",
	    "1.3.6.1.4.1.311.20.2.1", "hash", "keyid:always"};
	EVP_PKEY *ca_key = NULL, *sign_key = NULL, *enc_key = NULL;
	X509 *ca = NULL, *sign = NULL, *enc = NULL;
	char host[256], ca_cn[320], ra_cn[320], path[4096], thumb[129];
	char password[32], *conf = NULL, creds[128];
	unsigned char raw[12];
	char stage[3900];
	const char *build = dir; /* where the files are made */
	struct init_users users;
	int state, stage_fd = -1, rc = -1;

	if (init_unfinished_clear(dir) < 0)
		return -1;
	state = dir_state(dir);
	if (state < 0) {
		fprintf(stderr, "scepd: %s: not a readable directory\n", dir);
		return -1;
	}
	snprintf(path, sizeof(path), "%s/scepd.conf", dir);
	if (state == 1) {
		if (access(path, R_OK) == 0)
			return 0;
		fprintf(stderr,
		    "scepd: %s is not empty and has no scepd.conf: not "
		    "touching it (give an empty or new directory, or "
		    "--config FILE)\n",
		    dir);
		return -1;
	}
	/* Before any key is made. */
	if (service_users && init_users_check(dir, &users) != 0)
		return -1;
	if (gethostname(host, sizeof(host)) != 0)
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	host[strcspn(host, ".")] = '\0'; /* NDES uses the short name */
	snprintf(ca_cn, sizeof(ca_cn), "scepd demo CA %s", host);
	snprintf(ra_cn, sizeof(ra_cn), "%s-MSCEP-RA", host);

	/* Built beside DIR and renamed into place when whole: a first start
	 * interrupted (Ctrl-C during the keys) leaves DIR as it was, and of
	 * two at once one wins whole. Where DIR's parent is not ours to
	 * write, in place. */
	if (stage_allowed) {
		stage_leftovers_remove(dir);
		if ((stage_fd = stage_make(dir, stage, sizeof(stage))) >= 0)
			build = stage;
	}
	printf("scepd: initialising %s (demo CA, RSA 3072; this takes a "
	       "moment)\n",
	    dir);
	fflush(stdout);
	if (build == dir) {
		snprintf(path, sizeof(path), "%s/" INIT_UNFINISHED, dir);
		if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
			fprintf(
			    stderr, "scepd: %s: %s\n", dir, strerror(errno));
			goto out;
		}
		if (write_text(path, "", 0600) != 0) {
			fprintf(stderr, "scepd: cannot write %s\n", path);
			goto out;
		}
	}
	if (make_dirs(build) != 0)
		goto out;
	if ((ca_key = EVP_RSA_gen(3072)) == NULL ||
	    (sign_key = EVP_RSA_gen(2048)) == NULL ||
	    (enc_key = EVP_RSA_gen(2048)) == NULL ||
	    (ca = make_cert(ca_key, "scepd", ca_cn, NULL, ca_key, CA_DAYS,
	         ca_nids, ca_values)) == NULL ||
	    (sign = make_cert(sign_key, NULL, ra_cn, ca, ca_key, RA_DAYS,
	         ra_nids, sign_values)) == NULL ||
	    (enc = make_cert(enc_key, NULL, ra_cn, ca, ca_key, RA_DAYS, ra_nids,
	         enc_values)) == NULL) {
		fprintf(stderr, "scepd: cannot make the demo certificates\n");
		goto out;
	}
#define WRITE(fn, name, obj) \
	do { \
		snprintf(path, sizeof(path), "%s/%s", build, name); \
		if (fn(path, obj) != 0) { \
			fprintf(stderr, "scepd: cannot write %s\n", path); \
			goto out; \
		} \
	} while (0)
	WRITE(pki_write_key, "ca/ca.key", ca_key);
	WRITE(pki_write_cert, "ca/ca.pem", ca);
	WRITE(pki_write_key, "ra/ra-sign.key", sign_key);
	WRITE(pki_write_cert, "ra/ra-sign.pem", sign);
	WRITE(pki_write_key, "ra/ra-enc.key", enc_key);
	WRITE(pki_write_cert, "ra/ra-enc.pem", enc);
#undef WRITE

	/* The admin account: a random password, shown once. */
	if (RAND_bytes(raw, sizeof(raw)) != 1 ||
	    EVP_EncodeBlock((unsigned char *)password, raw, sizeof(raw)) <= 0)
		goto out;
	for (char *p = password; *p; p++) /* base64url: no '+' or '/' */
		*p = *p == '+' ? '-' : (*p == '/' ? '_' : *p);
	/* In a directory of its own: the frontend's sandbox may read the
	 * file's directory, and must not read DIR, where the keys are. */
	snprintf(path, sizeof(path), "%s/admin/admin.passwd", build);
	if (passwd_set_file(path, "admin", password, "enroll,admin") != 0) {
		fprintf(stderr, "scepd: cannot write %s\n", path);
		goto out;
	}
	snprintf(creds, sizeof(creds), "admin:%s\n", password);
	snprintf(path, sizeof(path), "%s/admin.credentials", build);
	if (write_text(path, creds, 0600) != 0) {
		fprintf(stderr, "scepd: cannot write %s\n", path);
		goto out;
	}
	if (service_users && init_users_apply(build, &users) != 0)
		goto out;
	/* Last, so that a directory without it was not finished. */
	snprintf(path, sizeof(path), "%s/scepd.conf", build);
	if ((conf = config_text(listen, service_users)) == NULL ||
	    write_text(path, conf, 0600) != 0) {
		fprintf(stderr, "scepd: cannot write %s\n", path);
		goto out;
	}
	/* Not carried into DIR; the lock, held still, keeps other starts
	 * off the stage meanwhile. */
	if (build != dir) {
		snprintf(path, sizeof(path), "%s/" INIT_STAGE_MARK, build);
		unlink(path);
	}
	if (flush_tree(build) != 0) {
		fprintf(stderr, "scepd: cannot flush %s to the disk: %s\n",
		    build, strerror(errno));
		goto out;
	}
	if (build == dir) {
		snprintf(path, sizeof(path), "%s/" INIT_UNFINISHED, dir);
		unlink(path);
		(void)flush_dir(dir, 0);
	}
	/* Over a missing or empty DIR; another start's whole DIR stays. */
	if (build != dir && rename(build, dir) != 0) {
		int err = errno;

		/* A DIR holding only a volume's lost+found is empty to us,
		 * not to rename(2). */
		if ((err != ENOTEMPTY && err != EEXIST) ||
		    dir_state(dir) == 0) {
			printf("scepd: cannot rename %s to %s (%s): making it "
			       "in place\n",
			    build, dir, strerror(err));
			fflush(stdout);
			*retry_in_place = 1;
			goto out;
		}
		snprintf(path, sizeof(path), "%s/scepd.conf", dir);
		if (access(path, R_OK) != 0) {
			fprintf(stderr,
			    "scepd: %s was filled by something else while "
			    "initialising: not touching it\n",
			    dir);
			goto out;
		}
		printf("scepd: %s was initialised by another scepd "
		       "meanwhile: using it\n",
		    dir);
		fflush(stdout);
		rc = 0;
		goto out;
	}
	/* The rename on the disk too: a power cut now would otherwise
	 * bring back no DIR after the services began to sign. */
	if (build != dir && flush_dir(dir, 1) != 0)
		fprintf(stderr,
		    "scepd: cannot flush the directory above %s "
		    "to the disk: %s\n",
		    dir, strerror(errno));
	build = dir;
	pki_thumbprint(ca, EVP_sha256(), thumb, sizeof(thumb));
	printf("scepd: created in %s:\n"
	       "  ca/ca.pem, ca/ca.key          demo CA \"%s\" (RSA 3072, 10 "
	       "years)\n"
	       "  ra/ra-sign.pem, ra/ra-sign.key  RA signing certificate "
	       "\"%s\"\n"
	       "  ra/ra-enc.pem, ra/ra-enc.key    RA encryption certificate "
	       "\"%s\"\n"
	       "  scepd.conf                    the configuration\n"
	       "  admin/admin.passwd, admin.credentials the admin account\n"
	       "CA thumbprint (SHA-256): %s\n"
	       "SCEP URL:  http://%s/certsrv/mscep/mscep.dll\n"
	       "Admin URL: http://%s/certsrv/mscep_admin/\n"
	       "Admin credentials: admin:%s  (also in %s/admin.credentials, "
	       "mode 0600: read it, then delete it)\n"
	       "A challenge password for scripts: scepctl --data-dir %s "
	       "challenge\n%s",
	    dir, ca_cn, ra_cn, ra_cn, thumb, listen, listen, password, dir, dir,
	    service_users ? "Each service runs as a user of its own: "
	                    "scepd-frontend, scepd-ra, scepd-challenge, "
	                    "scepd-ca (--service-users)\n"
	                  : "");
	fflush(stdout);
	rc = 1;
out:
	if (build != dir)
		remove_tree(build); /* not finished, or another's won */
	if (stage_fd >= 0)
		close(stage_fd);
	OPENSSL_cleanse(password, sizeof(password));
	OPENSSL_cleanse(creds, sizeof(creds));
	free(conf);
	X509_free(ca);
	X509_free(sign);
	X509_free(enc);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(sign_key);
	EVP_PKEY_free(enc_key);
	return rc;
}
