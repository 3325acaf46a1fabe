/*
 * scepctl passwd [--rights LIST] USER: sets USER's password for the admin
 * page (/certsrv/mscep_admin/) in the file the frontend reads ([frontend]
 * AdminPasswordFile of DIR/scepd.conf), and USER's rights:
 * "enroll" (get challenge passwords, NDES's enroll permission; the
 * default), "mdm" (the MDM API), "admin" (server settings such as the
 * single password). The password is one line on stdin, so that it never
 * shows in the process list or shell history. --list shows the accounts
 * and their rights (never a hash); --delete USER removes one.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "config.h"
#include "passwd.h"
#include "scepctl.h"

#define SCEPCTL_PASSWORD_MAX 1024

static void
scepctl_passwd_usage(FILE *f)
{
	fprintf(f,
	    "usage: scepctl [--data-dir DIR] passwd [--rights LIST] USER "
	    "< password\n"
	    "       scepctl [--data-dir DIR] passwd --list | --delete USER\n"
	    "  Sets USER's admin-page password (first line of stdin) in\n"
	    "  [frontend] AdminPasswordFile of DIR/scepd.conf (default\n"
	    "  DIR/admin.passwd). LIST (comma separated; default: the\n"
	    "  account's rights as they are, enroll for a new one):\n"
	    "    enroll  get enrollment passwords (the admin page)\n"
	    "    mdm     issue passwords through api/challenges\n"
	    "    admin   set the single password (api/single-password)\n"
	    "  --list prints each account and its rights; --delete USER\n"
	    "  removes one (the admin page refuses it at once).\n");
}

static void
scepctl_passwd_print(void *ctx, const char *user, const char *rights)
{
	(void)ctx;
	printf("%s  %s\n", user, rights[0] != '\0' ? rights : "-");
}

/* Each right of the comma-separated list is one we know. */
static int
scepctl_rights_ok(const char *rights)
{
	static const char *const known[] = {"enroll", "mdm", "admin", NULL};
	const char *p = rights;

	if (*p == '\0')
		return 0;
	while (*p != '\0') {
		size_t len = strcspn(p, ","), i;

		for (i = 0; known[i] != NULL; i++)
			if (strlen(known[i]) == len &&
			    strncmp(known[i], p, len) == 0)
				break;
		if (known[i] == NULL)
			return 0;
		p += len;
		if (*p == ',')
			p++;
	}
	return 1;
}

/* Letters, digits and . _ - @ only: the file is "user:hash:rights". */
static int
scepctl_user_ok(const char *user)
{
	size_t len = strlen(user);

	if (len == 0 || len > PASSWD_USER_MAX)
		return 0;
	return strspn(user,
	           "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	           "0123456789._-@") == len;
}

/*
 * The accounts file the frontend reads: [frontend] AdminPasswordFile of
 * DIR/scepd.conf, a relative path taken from the file's directory as the
 * frontend takes it (its default: admin.passwd). DIR/admin.passwd when DIR
 * has no scepd.conf (a directory of secrets, deploy/make-secrets.sh).
 * The caller frees it; NULL with the reason on stderr.
 */
static char *
scepctl_passwd_path(const struct scepctl *ctl)
{
	struct config_pairs conf;
	const char *value;
	char *file = NULL;

	if (access(ctl->conf, F_OK) != 0 && errno == ENOENT)
		return config_resolve_path(ctl->data_dir, "admin.passwd");
	if (config_load_pairs(ctl->conf, "frontend", &conf) != 0) {
		fprintf(stderr,
		    "scepctl: cannot tell which file the admin accounts are "
		    "in ([frontend] AdminPasswordFile of %s)\n",
		    ctl->conf);
		return NULL;
	}
	value = config_pairs_get(&conf, "frontend", "AdminPasswordFile");
	if (value == NULL)
		value = "admin.passwd";
	if (value[0] == '\0')
		fprintf(stderr,
		    "scepctl: %s: [frontend] AdminPasswordFile is empty: "
		    "the admin page has no accounts file\n",
		    ctl->conf);
	else if ((file = config_resolve_path(conf.basedir, value)) == NULL)
		fprintf(stderr, "scepctl: out of memory\n");
	config_pairs_free(&conf);
	return file;
}

/* The first line of stdin, without echo when it is a terminal. */
static int
scepctl_read_password(const char *user, char *buf, size_t len)
{
	struct termios old, quiet;
	int tty = isatty(STDIN_FILENO), restore = 0, rc = -1;

	if (tty) {
		fprintf(stderr, "New password for %s: ", user);
		if (tcgetattr(STDIN_FILENO, &old) == 0) {
			quiet = old;
			quiet.c_lflag &= ~(tcflag_t)ECHO;
			restore =
			    tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) == 0;
		}
	}
	if (fgets(buf, (int)len, stdin) == NULL) {
		fprintf(stderr, "scepctl: no password on stdin\n");
		goto out;
	}
	if (strchr(buf, '\n') == NULL && !feof(stdin)) {
		fprintf(stderr, "scepctl: password longer than %zu bytes\n",
		    len - 2);
		goto out;
	}
	buf[strcspn(buf, "\r\n")] = '\0';
	rc = 0;
out:
	if (restore)
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
	if (tty)
		fputc('\n', stderr);
	return rc;
}

int
scepctl_passwd(const struct scepctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"help", no_argument, NULL, 'h'},
	    {"rights", required_argument, NULL, 'r'},
	    {"list", no_argument, NULL, 'l'},
	    {"delete", no_argument, NULL, 'd'},
	    {NULL, 0, NULL, 0},
	};
	int list = 0, delete = 0, e;
	char password[SCEPCTL_PASSWORD_MAX + 2], *file = NULL;
	const char *user, *rights = NULL; /* an account's own, or enroll */
	int c, rc = 1;

	memset(password, 0, sizeof(password));
	/* 0, not 1: glibc then forgets the "+" of main's option string. */
	optind = 0;
	while ((c = getopt_long(argc, argv, "hr:", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			scepctl_passwd_usage(stdout);
			return 0;
		case 'l':
			list = 1;
			break;
		case 'd':
			delete = 1;
			break;
		case 'r':
			rights = optarg;
			if (!scepctl_rights_ok(rights)) {
				fprintf(stderr,
				    "scepctl: --rights %s: use enroll, mdm "
				    "and admin, comma separated\n",
				    rights);
				return 2;
			}
			break;
		default:
			scepctl_passwd_usage(stderr);
			return 2;
		}
	}
	if (list + delete > 1 || optind + (list ? 0 : 1) != argc) {
		scepctl_passwd_usage(stderr);
		return 2;
	}
	if ((file = scepctl_passwd_path(ctl)) == NULL)
		return 1;
	if (list) {
		e = passwd_list_file(file, scepctl_passwd_print, NULL);
		if (e < 0)
			fprintf(stderr, "scepctl: cannot read %s\n", file);
		else
			fprintf(
			    stderr, "scepctl: %d account(s) in %s\n", e, file);
		free(file);
		return e < 0 || fflush(stdout) != 0 ? 1 : 0;
	}
	user = argv[optind];
	if (delete) {
		e = passwd_delete_file(file, user);
		if (e == 0)
			fprintf(stderr, "scepctl: account %s removed from %s\n",
			    user, file);
		else if (e == 1)
			fprintf(stderr, "scepctl: no account %s in %s\n", user,
			    file);
		else
			fprintf(stderr, "scepctl: cannot write %s\n", file);
		free(file);
		return e == 0 ? 0 : 1;
	}
	if (!scepctl_user_ok(user)) {
		fprintf(stderr,
		    "scepctl: user name '%s': use 1 to %d letters, digits, "
		    "'.', '_', '-' or '@'\n",
		    user, PASSWD_USER_MAX);
		free(file);
		return 2;
	}
	if (scepctl_read_password(user, password, sizeof(password)) != 0)
		goto out;
	if (password[0] == '\0') {
		fprintf(stderr, "scepctl: the password is empty\n");
		goto out;
	}
	if (passwd_set_file(file, user, password, rights) != 0) {
		fprintf(stderr, "scepctl: cannot write %s\n", file);
		goto out;
	}
	fprintf(stderr, "scepctl: password of %s (rights %s) set in %s\n", user,
	    rights != NULL ? rights
	                   : "as they were, or enroll for a new account",
	    file);
	rc = 0;
out:
	OPENSSL_cleanse(password, sizeof(password));
	free(file);
	return rc;
}
