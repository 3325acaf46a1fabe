/* lib/passwd.c: salted scrypt hashes and the admin account file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "passwd.h"

static void
test_hash_verify(void **state)
{
	char h1[256], h2[256];

	(void)state;
	assert_int_equal(passwd_hash("correct horse", h1, sizeof(h1)), 0);
	assert_int_equal(strncmp(h1, "$scrypt$", 8), 0);
	assert_int_equal(passwd_verify("correct horse", h1), 1);
	assert_int_equal(passwd_verify("correct horsE", h1), 0);
	assert_int_equal(passwd_verify("", h1), 0);
	assert_int_equal(passwd_verify("correct horse ", h1), 0);
	/* Salted: the same password never hashes the same twice. */
	assert_int_equal(passwd_hash("correct horse", h2, sizeof(h2)), 0);
	assert_string_not_equal(h1, h2);
	assert_int_equal(passwd_verify("correct horse", h2), 1);
	/* An empty password is a password like any other. */
	assert_int_equal(passwd_hash("", h2, sizeof(h2)), 0);
	assert_int_equal(passwd_verify("", h2), 1);
	assert_int_equal(passwd_verify("x", h2), 0);
	/* Too small a buffer fails rather than truncating. */
	assert_int_equal(passwd_hash("x", h2, 20), -1);
}

static void
test_malformed(void **state)
{
	static const char *const bad[] = {
	    "",
	    "plain",
	    "$scrypt$",
	    "$bcrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$"
	    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
	    /* N not a power of two, zero, huge; r and p out of range */
	    "$scrypt$1000$8$1$AAAAAAAAAAAAAAAAAAAAAA==$"
	    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
	    "$scrypt$0$8$1$AAAAAAAAAAAAAAAAAAAAAA==$"
	    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
	    "$scrypt$1073741824$8$1$AAAAAAAAAAAAAAAAAAAAAA==$"
	    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
	    "$scrypt$16384$0$1$AAAAAAAAAAAAAAAAAAAAAA==$"
	    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
	    "$scrypt$16384$8$99$AAAAAAAAAAAAAAAAAAAAAA==$"
	    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
	    "$scrypt$-16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$"
	    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
	    /* missing, short or non-base64 salt and key; extra field */
	    "$scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==",
	    "$scrypt$16384$8$1$AAAA$"
	    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
	    "$scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAA",
	    "$scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAA!!==$"
	    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
	    "$scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$"
	    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=$",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (passwd_verify("x", bad[i]) != -1)
			fail_msg("accepted malformed hash %zu: %s", i, bad[i]);
	}
}

static char *
tmpfile_path(void)
{
	char *dir = strdup("/tmp/test_passwd.XXXXXX"), *path;

	assert_non_null(dir);
	assert_non_null(mkdtemp(dir));
	path = malloc(strlen(dir) + 16);
	assert_non_null(path);
	sprintf(path, "%s/admin.passwd", dir);
	free(dir);
	return path;
}

static void
cleanup(char *path)
{
	unlink(path);
	*strrchr(path, '/') = '\0';
	rmdir(path);
	free(path);
}

struct listed {
	int n;
	char text[512];
};

static void
list_one(void *ctx, const char *user, const char *rights)
{
	struct listed *l = ctx;
	size_t len = strlen(l->text);

	snprintf(l->text + len, sizeof(l->text) - len, "%s=%s;", user, rights);
	l->n++;
}

static void
test_file(void **state)
{
	char *path = tmpfile_path(), rights[64];
	struct stat st;
	FILE *f;

	(void)state;
	/* No file: an error, not "no such user". */
	assert_int_equal(passwd_check_file(
	                     path, "admin", "pw", rights, sizeof(rights), NULL),
	    -1);
	assert_int_equal(passwd_set_file(path, "admin", "s3cret", "enroll"), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(passwd_set_file(path, "viewer", "look", ""), 0);
	strcpy(rights, "junk");
	assert_int_equal(passwd_check_file(path, "admin", "s3cret", rights,
	                     sizeof(rights), NULL),
	    1);
	assert_string_equal(rights, "enroll");
	assert_int_equal(passwd_check_file(path, "viewer", "look", rights,
	                     sizeof(rights), NULL),
	    1);
	assert_string_equal(rights, "");
	assert_int_equal(passwd_check_file(path, "admin", "look", rights,
	                     sizeof(rights), NULL),
	    0);
	assert_int_equal(passwd_check_file(path, "nobody", "look", rights,
	                     sizeof(rights), NULL),
	    0);
	assert_int_equal(passwd_check_file(path, "Admin", "s3cret", rights,
	                     sizeof(rights), NULL),
	    0);
	/* Replacing a password keeps the other accounts and the mode. */
	assert_int_equal(
	    passwd_set_file(path, "admin", "n3w", "enroll,audit"), 0);
	assert_int_equal(passwd_check_file(path, "admin", "s3cret", rights,
	                     sizeof(rights), NULL),
	    0);
	assert_int_equal(passwd_check_file(path, "admin", "n3w", rights,
	                     sizeof(rights), NULL),
	    1);
	assert_string_equal(rights, "enroll,audit");
	assert_int_equal(passwd_check_file(path, "viewer", "look", rights,
	                     sizeof(rights), NULL),
	    1);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	/* Names that would break the format are refused. */
	assert_int_equal(passwd_set_file(path, "a:b", "x", "enroll"), -1);
	assert_int_equal(passwd_set_file(path, "a\nb", "x", "enroll"), -1);
	assert_int_equal(passwd_set_file(path, "", "x", "enroll"), -1);
	assert_int_equal(passwd_set_file(path, "#x", "x", "enroll"), -1);
	assert_int_equal(passwd_set_file(path, "ok", "x", "en:roll"), -1);
	/* The challenge service keeps 63 bytes of a name. */
	{
		char name[PASSWD_USER_MAX + 2];

		memset(name, 'm', sizeof(name) - 1);
		name[sizeof(name) - 1] = '\0';
		assert_int_equal(passwd_set_file(path, name, "x", "mdm"), -1);
		name[PASSWD_USER_MAX] = '\0';
		assert_int_equal(passwd_set_file(path, name, "x", "mdm"), 0);
	}
	/* Comments, blank and broken lines, a malformed hash: no crash, no
	 * match, the good lines still work. Two lines for one user: the
	 * first counts. */
	f = fopen(path, "a");
	assert_non_null(f);
	fputs("# comment\n\nbroken line\nbad:$scrypt$1$1$1$x$y:enroll\n"
	      "viewer:$scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$"
	      "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=:enroll\n",
	    f);
	fclose(f);
	assert_int_equal(
	    passwd_check_file(path, "bad", "x", rights, sizeof(rights), NULL),
	    0);
	assert_int_equal(passwd_check_file(path, "broken line", "", rights,
	                     sizeof(rights), NULL),
	    0);
	assert_int_equal(passwd_check_file(path, "viewer", "look", rights,
	                     sizeof(rights), NULL),
	    1);
	assert_string_equal(rights, "");
	assert_int_equal(passwd_check_file(path, "admin", "n3w", rights,
	                     sizeof(rights), NULL),
	    1);
	/* Rewriting keeps the lines it does not understand. */
	assert_int_equal(passwd_set_file(path, "admin", "n4", "enroll"), 0);
	f = fopen(path, "r");
	assert_non_null(f);
	{
		char buf[4096];
		size_t n = fread(buf, 1, sizeof(buf) - 1, f);

		buf[n] = '\0';
		assert_non_null(strstr(buf, "# comment\n"));
		assert_non_null(strstr(buf, "broken line\n"));
	}
	fclose(f);
	/* Listing: names and rights, one call per account line. */
	{
		struct listed l = {0, ""};

		assert_int_equal(passwd_list_file(path, list_one, &l), 5);
		assert_string_equal(l.text,
		    "admin=enroll;viewer=;"
		    "mmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmm"
		    "mmmmmmmmmmmmmmmmmmmmmmmmm=mdm;bad=enroll;viewer=enroll;");
	}
	/* Deleting: every line of the user goes, the others stay. */
	assert_int_equal(passwd_delete_file(path, "viewer"), 0);
	assert_int_equal(passwd_check_file(path, "viewer", "look", rights,
	                     sizeof(rights), NULL),
	    0);
	assert_int_equal(passwd_check_file(
	                     path, "admin", "n4", rights, sizeof(rights), NULL),
	    1);
	assert_int_equal(passwd_delete_file(path, "viewer"), 1);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	cleanup(path);
}

/*
 * AdminPasswordFile as a symbolic link or a second hard link to another
 * file (one its directory's writer, the frontend's user, could plant) is
 * read by no one: `scepctl passwd` run as root copied the target beside
 * it with the target's owner, `--list` printed its lines.
 */
static void
test_link_refused(void **state)
{
	char *path = tmpfile_path(), *target, rights[64];
	struct listed l = {0};
	struct stat st;
	FILE *f;

	(void)state;
	target = malloc(strlen(path) + 16);
	assert_non_null(target);
	sprintf(target, "%s.target", path);
	assert_int_equal(
	    passwd_set_file(target, "root", "s3cret", "enroll"), 0);
	assert_non_null(f = fopen(target, "a"));
	fputs("secret line:of another file:x\n", f);
	fclose(f);
	assert_int_equal(symlink(target, path), 0);
	assert_int_equal(passwd_check_file(path, "root", "s3cret", rights,
	                     sizeof(rights), NULL),
	    -1);
	assert_int_equal(passwd_list_file(path, list_one, &l), -1);
	assert_int_equal(l.n, 0);
	assert_int_equal(passwd_set_file(path, "admin", "pw", "enroll"), -1);
	assert_int_equal(passwd_delete_file(path, "root"), -1);
	/* Left as it was: still the link, the target untouched. */
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	assert_int_equal(passwd_check_file(target, "root", "s3cret", rights,
	                     sizeof(rights), NULL),
	    1);
	/* A hard link: the same. */
	assert_int_equal(unlink(path), 0);
	assert_int_equal(link(target, path), 0);
	assert_int_equal(passwd_check_file(path, "root", "s3cret", rights,
	                     sizeof(rights), NULL),
	    -1);
	assert_int_equal(passwd_set_file(path, "admin", "pw", "enroll"), -1);
	assert_int_equal(unlink(target), 0);
	/* A FIFO: refused at once, not an open waiting for a writer. */
	assert_int_equal(unlink(path), 0);
	assert_int_equal(mkfifo(path, 0600), 0);
	assert_int_equal(passwd_file_usable(path), -1);
	assert_int_equal(passwd_check_file(path, "root", "s3cret", rights,
	                     sizeof(rights), NULL),
	    -1);
	assert_int_equal(passwd_set_file(path, "admin", "pw", "enroll"), -1);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(passwd_set_file(path, "root", "s3cret", "enroll"), 0);
	assert_int_equal(passwd_file_usable(path), 0);
	/* The file itself again: read. */
	assert_int_equal(passwd_check_file(path, "root", "s3cret", rights,
	                     sizeof(rights), NULL),
	    1);
	free(target);
	cleanup(path);
}

/*
 * Rewriting keeps the file's owner and mode: `scepctl passwd` run as root
 * on the file of the frontend's user must leave it readable by that user
 * (the admin page answered 500 after a rewrite made it root's). A process
 * that may not give the new file that owner leaves the old one alone.
 */
/* Credentials that matched are known without scrypt until the account's
 * hash changes; a wrong password, another user or a deleted account never
 * are. */
static void
test_seen(void **state)
{
	char *path = tmpfile_path(), rights[64];
	struct passwd_seen *seen = passwd_seen_new();

	(void)state;
	assert_non_null(seen);
	assert_int_equal(passwd_set_file(path, "mdm", "s3cret", "mdm"), 0);
	assert_int_equal(passwd_set_file(path, "other", "s3cret", "enroll"), 0);
	assert_int_equal(passwd_check_seen(seen, path, "mdm", "s3cret", rights,
	                     sizeof(rights)),
	    0);
	assert_int_equal(passwd_check_file(path, "mdm", "wrong", rights,
	                     sizeof(rights), seen),
	    0);
	assert_int_equal(passwd_check_seen(seen, path, "mdm", "wrong", rights,
	                     sizeof(rights)),
	    0);
	assert_int_equal(passwd_check_file(path, "mdm", "s3cret", rights,
	                     sizeof(rights), seen),
	    1);
	strcpy(rights, "junk");
	assert_int_equal(passwd_check_seen(seen, path, "mdm", "s3cret", rights,
	                     sizeof(rights)),
	    1);
	assert_string_equal(rights, "mdm");
	/* The same password for another account was not checked. */
	assert_int_equal(passwd_check_seen(seen, path, "other", "s3cret",
	                     rights, sizeof(rights)),
	    0);
	assert_int_equal(passwd_check_seen(seen, path, "mdm", "s3cret ", rights,
	                     sizeof(rights)),
	    0);
	assert_int_equal(passwd_set_file(path, "mdm", "s3cret", "enroll"), 0);
	/* The same password set again is a new salt, a new hash: checked. */
	assert_int_equal(passwd_check_seen(seen, path, "mdm", "s3cret", rights,
	                     sizeof(rights)),
	    0);
	/* Known, then deleted: not known. */
	assert_int_equal(passwd_check_file(path, "other", "s3cret", rights,
	                     sizeof(rights), seen),
	    1);
	assert_int_equal(passwd_check_seen(seen, path, "other", "s3cret",
	                     rights, sizeof(rights)),
	    1);
	assert_int_equal(passwd_delete_file(path, "other"), 0);
	assert_int_equal(passwd_check_seen(seen, path, "other", "s3cret",
	                     rights, sizeof(rights)),
	    0);
	unlink(path);
	assert_int_equal(passwd_check_seen(seen, path, "mdm", "s3cret", rights,
	                     sizeof(rights)),
	    -1);
	passwd_seen_free(seen);
	free(path);
}

static void
test_owner_kept(void **state)
{
	char *path, *dir, rights[64], buf[4096];
	struct stat st;
	pid_t pid;
	size_t n;
	FILE *f;
	int status;

	(void)state;
	if (geteuid() != 0)
		skip(); /* chown to another user needs root */
	path = tmpfile_path();
	assert_int_equal(passwd_set_file(path, "admin", "pw1", "enroll"), 0);
	assert_int_equal(chown(path, 4242, 4343), 0);
	assert_int_equal(chmod(path, 0640), 0);
	/* Added, replaced, deleted: each a new file renamed over the old. */
	assert_int_equal(passwd_set_file(path, "viewer", "pw2", ""), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_uid, 4242);
	assert_int_equal(st.st_gid, 4343);
	assert_int_equal(st.st_mode & 07777, 0640);
	assert_int_equal(passwd_set_file(path, "admin", "pw3", "enroll"), 0);
	assert_int_equal(passwd_delete_file(path, "viewer"), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_uid, 4242);
	assert_int_equal(st.st_gid, 4343);
	assert_int_equal(st.st_mode & 07777, 0640);
	assert_int_equal(passwd_check_file(path, "admin", "pw3", rights,
	                     sizeof(rights), NULL),
	    1);

	/* Another user who may write the directory and read the file, but
	 * not give a file uid 4242: refused, the file as it was. */
	dir = strdup(path);
	assert_non_null(dir);
	*strrchr(dir, '/') = '\0';
	assert_int_equal(chmod(dir, 0777), 0);
	assert_int_equal(chmod(path, 0644), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (setgid(65534) != 0 || setuid(65534) != 0)
			_exit(2);
		_exit(passwd_set_file(path, "intruder", "x", "enroll") == -1
		        ? 0
		        : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_uid, 4242);
	assert_int_equal(st.st_gid, 4343);
	assert_int_equal(st.st_mode & 07777, 0644);
	f = fopen(path, "r");
	assert_non_null(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	assert_null(strstr(buf, "intruder"));

	/* Its owner's and group's mode, never others': a file of 0644
	 * rewritten is 0640 (password hashes). */
	assert_int_equal(passwd_set_file(path, "admin", "pw4", "enroll"), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_uid, 4242);
	assert_int_equal(st.st_mode & 07777, 0640);
	free(dir);
	cleanup(path);
}

static void
rights_of(
    const char *path, const char *user, const char *password, const char *want)
{
	char rights[64] = "";

	assert_int_equal(passwd_check_file(path, user, password, rights,
	                     sizeof(rights), NULL),
	    1);
	assert_string_equal(rights, want);
}

/* A new password without rights keeps the account's (an admin changing
 * its password lost `admin`, an MDM account `mdm` and gained `enroll`);
 * a new account gets enroll. */
static void
test_rights_kept(void **state)
{
	char *path = tmpfile_path();

	(void)state;
	assert_int_equal(passwd_set_file(path, "fresh", "pw0", NULL), 0);
	rights_of(path, "fresh", "pw0", PASSWD_RIGHTS_DEFAULT);
	assert_int_equal(
	    passwd_set_file(path, "admin", "pw1", "enroll,admin"), 0);
	assert_int_equal(passwd_set_file(path, "mdm1", "pw2", "mdm"), 0);
	assert_int_equal(passwd_set_file(path, "admin", "pw3", NULL), 0);
	assert_int_equal(passwd_set_file(path, "mdm1", "pw4", NULL), 0);
	rights_of(path, "admin", "pw3", "enroll,admin");
	rights_of(path, "mdm1", "pw4", "mdm");
	/* Given, they are set. */
	assert_int_equal(passwd_set_file(path, "mdm1", "pw5", "enroll"), 0);
	rights_of(path, "mdm1", "pw5", "enroll");
	free(path);
}

/* A FIFO where the lock file goes (planted by the frontend's user, who
 * owns the directory): refused at once; blocking on it hung scepctl
 * passwd for ever (alarm: the test dies rather than hangs). */
static void
test_lock_not_a_file(void **state)
{
	char *path = tmpfile_path(), lock[300];

	(void)state;
	snprintf(lock, sizeof(lock), "%s.lock", path);
	assert_int_equal(mkfifo(lock, 0600), 0);
	alarm(20);
	assert_int_equal(passwd_set_file(path, "bob", "pw", "enroll"), -1);
	assert_int_equal(passwd_delete_file(path, "bob"), -1);
	alarm(0);
	assert_int_equal(unlink(lock), 0);
	assert_int_equal(passwd_set_file(path, "bob", "pw", "enroll"), 0);
	free(path);
}

/* Writers at once take turns: each account set by eight processes
 * together is in the file (the last rename dropped the others'). */
static void
test_writers_take_turns(void **state)
{
	char *path = tmpfile_path(), user[16], pw[16];
	pid_t pid[8];
	int status;

	(void)state;
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < 8; i++) {
			if ((pid[i] = fork()) == 0) {
				snprintf(
				    user, sizeof(user), "u%d-%d", round, i);
				_exit(passwd_set_file(
				          path, user, "pw", "mdm") == 0
				        ? 0
				        : 1);
			}
			assert_true(pid[i] > 0);
		}
		for (int i = 0; i < 8; i++) {
			assert_int_equal(waitpid(pid[i], &status, 0), pid[i]);
			assert_true(WIFEXITED(status));
			assert_int_equal(WEXITSTATUS(status), 0);
		}
		for (int i = 0; i < 8; i++) {
			snprintf(user, sizeof(user), "u%d-%d", round, i);
			snprintf(pw, sizeof(pw), "pw");
			rights_of(path, user, pw, "mdm");
		}
	}
	free(path);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hash_verify),
	    cmocka_unit_test(test_malformed),
	    cmocka_unit_test(test_file),
	    cmocka_unit_test(test_seen),
	    cmocka_unit_test(test_link_refused),
	    cmocka_unit_test(test_owner_kept),
	    cmocka_unit_test(test_rights_kept),
	    cmocka_unit_test(test_writers_take_turns),
	    cmocka_unit_test(test_lock_not_a_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
