/*
 * scepctl keygen NAME: a CurveZMQ key pair for a service or for scepctl
 * itself, for tcp:// between hosts. Writes DIR/keys/NAME.key (the secret
 * key, mode 0600) and DIR/keys/NAME.pub, each one line of Z85, and prints
 * the public key. Neither is ever overwritten: a NAME.pub alone may be
 * another host's key copied here (the RA's on the CA host), which the
 * service checks its callers against. The services name them in
 * CurveSecretKeyFile, CurvePublicKeyFile, CurveClients and *ServerKey.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <zmq.h>

#include "scepctl.h"

static void
scepctl_keygen_usage(FILE *f)
{
	fprintf(f,
	    "usage: scepctl [--data-dir DIR] keygen [NAME]\n"
	    "  Makes a CurveZMQ key pair: DIR/keys/NAME.key (secret, mode\n"
	    "  0600) and DIR/keys/NAME.pub, and prints the public key.\n"
	    "  NAME: letters, digits, '_', '.', '-' (e.g. ca, ra, frontend,\n"
	    "  challenge, scepctl); without NAME scepctl, the key this tool\n"
	    "  connects with. An existing NAME.key or NAME.pub is never\n"
	    "  replaced.\n");
}

/* Writes `text` to `path`, a new file of `mode` (fails if it exists). 0,
 * or -1 with the reason on stderr. */
static int
scepctl_write_file(const char *path, const char *text, mode_t mode)
{
	size_t len = strlen(text), done = 0;
	int fd, flags = O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW;

	if ((fd = open(path, flags, mode)) < 0) {
		fprintf(stderr, "scepctl: %s: %s%s\n", path, strerror(errno),
		    errno == EEXIST ? " (remove it first to make a new pair)"
		                    : "");
		return -1;
	}
	/* The umask may have taken bits away, never added: set exactly. */
	if (fchmod(fd, mode) != 0)
		goto fail;
	while (done < len) {
		ssize_t n = write(fd, text + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			goto fail;
		done += (size_t)n;
	}
	if (fsync(fd) != 0 || close(fd) != 0) {
		fd = -1;
		goto fail;
	}
	return 0;
fail:
	fprintf(stderr, "scepctl: %s: %s\n", path, strerror(errno));
	if (fd >= 0)
		close(fd);
	unlink(path);
	return -1;
}

int
scepctl_keygen(const struct scepctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	char pub[41], sec[41], line[64];
	char *dir = NULL, *key_path = NULL, *pub_path = NULL;
	const char *name;
	struct stat st;
	size_t len;
	int c, rc = 1;

	/* 0, not 1: glibc then forgets the "+" of main's option string. */
	optind = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			scepctl_keygen_usage(stdout);
			return 0;
		default:
			scepctl_keygen_usage(stderr);
			return 2;
		}
	}
	if (optind + 1 < argc) {
		scepctl_keygen_usage(stderr);
		return 2;
	}
	name = optind < argc ? argv[optind] : "scepctl";
	len = strlen(name);
	if (len == 0 || len > 31 || name[0] == '.' ||
	    strspn(name,
	        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	        "0123456789_.-") != len) {
		fprintf(stderr,
		    "scepctl: keygen: '%s' is not a NAME (letters, digits, "
		    "'_', '.', '-'; at most 31)\n",
		    name);
		return 2;
	}
	if (!zmq_has("curve")) {
		fprintf(stderr,
		    "scepctl: this libzmq was built without CurveZMQ\n");
		return 1;
	}
	len = strlen(ctl->data_dir) + sizeof("/keys/") + strlen(name) + 8;
	if ((dir = malloc(len)) == NULL || (key_path = malloc(len)) == NULL ||
	    (pub_path = malloc(len)) == NULL)
		goto out;
	snprintf(dir, len, "%s/keys", ctl->data_dir);
	snprintf(key_path, len, "%s/%s.key", dir, name);
	snprintf(pub_path, len, "%s/%s.pub", dir, name);
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		fprintf(stderr, "scepctl: %s: %s\n", dir, strerror(errno));
		goto out;
	}
	/* Both checked before either is made, so that a refusal leaves
	 * nothing behind; O_EXCL below still refuses one made meanwhile. */
	if (lstat(key_path, &st) == 0 || lstat(pub_path, &st) == 0) {
		fprintf(stderr,
		    "scepctl: %s exists: not replaced (remove it first to "
		    "make a new pair)\n",
		    lstat(key_path, &st) == 0 ? key_path : pub_path);
		goto out;
	}
	if (zmq_curve_keypair(pub, sec) != 0) {
		fprintf(stderr, "scepctl: cannot make a key pair: %s\n",
		    zmq_strerror(errno));
		goto out;
	}
	snprintf(line, sizeof(line), "%s\n", sec);
	if (scepctl_write_file(key_path, line, 0600) != 0)
		goto out;
	snprintf(line, sizeof(line), "%s\n", pub);
	if (scepctl_write_file(pub_path, line, 0644) != 0) {
		unlink(key_path);
		goto out;
	}
	fprintf(stderr, "scepctl: wrote %s (secret, mode 0600) and %s\n",
	    key_path, pub_path);
	printf("%s\n", pub);
	rc = 0;
out:
	OPENSSL_cleanse(sec, sizeof(sec));
	OPENSSL_cleanse(line, sizeof(line));
	free(dir);
	free(key_path);
	free(pub_path);
	return rc;
}
