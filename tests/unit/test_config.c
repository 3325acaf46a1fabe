/* lib/config.c: tables, defaults, bounds, unknown keys, path resolution. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"

struct settings {
	char *listen;
	char *db;
	char *name;
	long validity;
	int allow;
};

#define S(f) offsetof(struct settings, f)
static const struct config_key table[] = {
    {"Listen", CONFIG_ENDPOINT, 0, 0, NULL, S(listen), NULL},
    {"Database", CONFIG_PATH, 0, 0, "db/x", S(db), NULL},
    {"Name", CONFIG_STRING, 0, 0, "", S(name), NULL},
    {"PasswordValidity", CONFIG_INT, 1, 525600, "60", S(validity), NULL},
    {"AllowDES", CONFIG_BOOL, 0, 1, "0", S(allow), NULL},
    CONFIG_END,
};

static void
test_defaults_and_resolution(void **state)
{
	struct settings s = {0};

	(void)state;
	assert_int_equal(config_load_string("[svc]\nListen = ipc://run/a.sock "
	                                    "tcp://127.0.0.1:5000\n",
	                     "/etc/scepd", "svc", table, &s),
	    0);
	assert_string_equal(
	    s.listen, "ipc:///etc/scepd/run/a.sock tcp://127.0.0.1:5000");
	assert_string_equal(s.db, "/etc/scepd/db/x");
	assert_int_equal(s.validity, 60);
	assert_int_equal(s.allow, 0);
	config_free(table, &s);
	assert_null(s.listen);

	/* Twelve short relative endpoints (several RAs on one host) each
	 * gain a long directory: there was room for eight of it. */
	{
		char conf[256] = "[svc]\nListen =", want[4096] = "", one[256];
		char dir[201] = "/";

		memset(dir + 1, 'd', sizeof(dir) - 2);
		dir[sizeof(dir) - 1] = '\0';
		for (int i = 0; i < 12; i++) {
			snprintf(one, sizeof(one), " ipc://r%d", i);
			strcat(conf, one);
			snprintf(one, sizeof(one), "%sipc://%s/r%d",
			    i ? " " : "", dir, i);
			strcat(want, one);
		}
		strcat(conf, "\n");
		assert_int_equal(
		    config_load_string(conf, dir, "svc", table, &s), 0);
		assert_string_equal(s.listen, want);
		config_free(table, &s);
	}
}

static void
test_values_and_other_sections(void **state)
{
	struct settings s = {0};
	const char *text = "[other]\nUnknown = 1\n"
	                   "[svc]\nlisten = ipc:///abs.sock\n"
	                   "Database = /var/db\nPasswordValidity = 120\n"
	                   "AllowDES = yes\nName = Fabrikam Issuing CA1\n";

	(void)state;
	assert_int_equal(config_load_string(text, "/x", "svc", table, &s), 0);
	assert_string_equal(s.listen, "ipc:///abs.sock");
	assert_string_equal(s.db, "/var/db");
	assert_int_equal(s.validity, 120);
	assert_int_equal(s.allow, 1);
	assert_string_equal(s.name, "Fabrikam Issuing CA1");
	config_free(table, &s);
}

/* Every problem is an error: unknown key, bad number, out of range, bad
 * boolean, missing required key, a key set twice. */
static void
test_errors(void **state)
{
	static const char *bad[] = {
	    "[svc]\nListen = ipc://a\nPasswordMinutes = 5\n",
	    "[svc]\nListen = ipc://a\nPasswordValidity = ten\n",
	    "[svc]\nListen = ipc://a\nPasswordValidity = 0\n",
	    "[svc]\nListen = ipc://a\nPasswordValidity = 999999\n",
	    "[svc]\nListen = ipc://a\nAllowDES = maybe\n",
	    "[svc]\nPasswordValidity = 5\n",
	    "[svc]\nListen = ipc://a\nListen = ipc://b\n",
	    "[svc]\nListen = \n",
	    "[svc\nListen = ipc://a\n",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct settings s = {0};

		assert_int_equal(
		    config_load_string(bad[i], "/x", "svc", table, &s), -1);
		/* Nothing is left allocated after a failed load. */
		assert_null(s.listen);
		assert_null(s.db);
	}
}

/* A fresh directory `dir` (a mkdtemp template) and `path`, its
 * scepd.conf. */
static void
conf_dir(char *dir, char *path, size_t pathlen)
{
	assert_non_null(mkdtemp(dir));
	snprintf(path, pathlen, "%s/scepd.conf", dir);
}

/* Writes (`mode` "w") or appends ("a") `text` to `path`. */
static void
conf_put(const char *path, const char *mode, const char *text)
{
	FILE *f = fopen(path, mode);

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* libinih cuts section names at 49 characters without a word:
 * [template.<long name>] would be another template. Refused, whichever
 * section it is, in a table load and in a [prefix.*] load. */
static void
test_names_cut_by_the_reader(void **state)
{
	char dir[] = "/tmp/scepd-config-XXXXXX", path[256], name[80];
	struct settings s = {0};
	struct config_pairs pairs;
	FILE *f;

	(void)state;
	memset(name, 'T', 60);
	name[60] = '\0';
	conf_dir(dir, path, sizeof(path));
	assert_non_null(f = fopen(path, "w"));
	fprintf(f,
	    "[svc]\nListen = ipc://run/s.sock\n[template.%s]\nKeyUsage = "
	    "digitalSignature\n",
	    name);
	fclose(f);
	assert_int_equal(config_load(path, "svc", table, &s), -1);
	assert_null(s.listen);
	assert_int_equal(config_load_pairs(path, "template.", &pairs), -1);
	/* 48 characters are kept whole: accepted. */
	assert_non_null(f = fopen(path, "w"));
	fprintf(f,
	    "[svc]\nListen = ipc://run/s.sock\n[template.%.39s]\nKeyUsage "
	    "= digitalSignature\n",
	    name);
	fclose(f);
	assert_int_equal(config_load(path, "svc", table, &s), 0);
	config_free(table, &s);
	assert_int_equal(config_load_pairs(path, "template.", &pairs), 0);
	assert_int_equal(pairs.n, 1);
	assert_int_equal(strlen(pairs.pair[0].section), 48);
	config_pairs_free(&pairs);
	unlink(path);
	rmdir(dir);
}

/* libinih reads 199 characters of a line and the rest as a line of its
 * own: a rest starting with '[' moved every later key into another
 * section without a word. Refused; 199 characters (CRLF aside) are read. */
static void
test_long_lines(void **state)
{
	char dir[] = "/tmp/scepd-config-XXXXXX", path[256], name[256];
	struct settings s = {0};
	FILE *f;
	size_t n;

	(void)state;
	conf_dir(dir, path, sizeof(path));
	/* "Name = " and 192 more: 199 characters, CRLF after it. */
	n = 199 - strlen("Name = ");
	memset(name, 'n', n);
	name[n] = '\0';
	assert_non_null(f = fopen(path, "w"));
	fprintf(f, "[svc]\r\nName = %s\r\nListen = ipc://run/s.sock\r\n", name);
	fclose(f);
	assert_int_equal(config_load(path, "svc", table, &s), 0);
	assert_string_equal(s.name, name);
	config_free(table, &s);
	/* One more, a '[' where the reader cuts: refused. */
	name[n - 1] = 'x';
	name[n] = '[';
	name[n + 1] = '\0';
	assert_non_null(f = fopen(path, "w"));
	fprintf(f,
	    "[svc]\nListen = ipc://run/s.sock\nName = %sx]\nPasswordValidity "
	    "= 0\n",
	    name);
	fclose(f);
	assert_int_equal(config_load(path, "svc", table, &s), -1);
	unlink(path);
	rmdir(dir);
}

/* A key set twice in a [prefix.*] section (a policy, a validator, a
 * signer, [challenge.paths]) is refused as in a main section: the first
 * won, unseen. The same key in two such sections is two settings. */
static void
test_pairs_set_twice(void **state)
{
	char dir[] = "/tmp/scepd-config-XXXXXX", path[256];
	struct config_pairs pairs;

	(void)state;
	conf_dir(dir, path, sizeof(path));
	conf_put(path, "w",
	    "[policy.a]\nRenewWithinDays = 5\n[policy.b]\n"
	    "RenewWithinDays = 6\n");
	assert_int_equal(config_load_pairs(path, "policy.", &pairs), 0);
	assert_int_equal(pairs.n, 2);
	config_pairs_free(&pairs);
	conf_put(path, "a", "[policy.a]\nrenewwithindays = not-a-number\n");
	assert_int_equal(config_load_pairs(path, "policy.", &pairs), -1);
	/* [challenge.paths]: one path, as the service matches it, with a
	 * trailing '/' or in other letters (the first won, unseen). */
	conf_put(path, "w", "[challenge.paths]\n/scep = otp\n/SCEP/ = mdm\n");
	assert_int_equal(
	    config_load_pairs(path, CONFIG_SECTION_PATHS, &pairs), -1);
	conf_put(path, "w", "[challenge.paths]\n/scep = otp\n/scep2 = mdm\n");
	assert_int_equal(
	    config_load_pairs(path, CONFIG_SECTION_PATHS, &pairs), 0);
	assert_int_equal(pairs.n, 2);
	config_pairs_free(&pairs);
	unlink(path);
	rmdir(dir);
}

static void
test_file(void **state)
{
	char dir[] = "/tmp/scepd-config-XXXXXX", path[256];
	struct settings s = {0};

	(void)state;
	conf_dir(dir, path, sizeof(path));
	conf_put(path, "w", "; comment\n[svc]\nListen = ipc://run/s.sock\n");
	assert_int_equal(config_load(path, "svc", table, &s), 0);
	assert_string_equal(s.db + strlen(dir), "/db/x");
	assert_memory_equal(s.listen, "ipc://", 6);
	assert_memory_equal(s.listen + 6, dir, strlen(dir));
	config_free(table, &s);

	/* A configuration that is a symbolic link to a file elsewhere (a
	 * checkout, a ConfigMap's ..data/): its relative paths are beside
	 * the link, not the target. */
	{
		char other[] = "/tmp/scepd-config-XXXXXX", target[256];
		char link[300];
		struct config_pairs pairs;

		assert_non_null(mkdtemp(other));
		snprintf(target, sizeof(target), "%s/real.conf", other);
		conf_put(target, "w",
		    "[svc]\nListen = ipc://run/s.sock\n[policy.p]\nA = 1\n");
		snprintf(link, sizeof(link), "%s/linked.conf", dir);
		assert_int_equal(symlink(target, link), 0);
		assert_int_equal(config_load(link, "svc", table, &s), 0);
		assert_string_equal(s.db + strlen(dir), "/db/x");
		assert_memory_equal(s.db, dir, strlen(dir));
		config_free(table, &s);
		assert_int_equal(config_load_pairs(link, "policy.", &pairs), 0);
		assert_string_equal(pairs.basedir, dir);
		config_pairs_free(&pairs);
		unlink(link);
		unlink(target);
		rmdir(other);
	}
	unlink(path);
	assert_int_equal(config_load(path, "svc", table, &s), -1);
	rmdir(dir);
}

/* Sections with keys that no service reads are counted (and named on
 * stderr); those the services read, in any case, are not; a prefix alone
 * ([template.]) names no template. */
static void
test_unread_sections(void **state)
{
	char dir[] = "/tmp/scepd-config-XXXXXX", path[256];

	(void)state;
	conf_dir(dir, path, sizeof(path));
	conf_put(path, "w",
	    "[scepd]\nA = 1\n[Frontend]\nA = 1\n[ra]\nA = 1\n"
	    "[challenge]\nA = 1\n[challenge.paths]\n/x = otp\n[ca]\nA = 1\n"
	    "[template.Devices]\nA = 1\n[policy.p]\nA = 1\n"
	    "[validator.mdm]\nA = 1\n[signer.hsm]\nA = 1\n"
	    "[empty.misspelled]\n");
	assert_int_equal(config_unread_sections(path), 0);
	conf_put(path, "a",
	    "[chalenge.paths]\n/y = otp\n[templates.Devices]\nA = 1\n"
	    "B = 2\n[template.]\nA = 1\n[ra]\nB = 1\n");
	assert_int_equal(config_unread_sections(path), 3);
	unlink(path);
	assert_int_equal(config_unread_sections(path), -1);
	rmdir(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults_and_resolution),
	    cmocka_unit_test(test_values_and_other_sections),
	    cmocka_unit_test(test_errors),
	    cmocka_unit_test(test_file),
	    cmocka_unit_test(test_unread_sections),
	    cmocka_unit_test(test_names_cut_by_the_reader),
	    cmocka_unit_test(test_long_lines),
	    cmocka_unit_test(test_pairs_set_twice),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
