/*
 * `scepd --service-users`: a first start whose services each run as a
 * user of their own (scripts/users.sh makes them), as deploy/'s systemd
 * units do. One user for all four would let a service taken over (the
 * frontend faces the network) speak to the CA's socket as the RA. Here
 * each server's sockets are in a directory of their own under run/, the
 * server's, mode 0750 with its group (the services make it when they
 * start: lib/sandbox.c), and only its callers are in that group: the RA
 * in scepd-ca's and scepd-challenge's, the frontend in scepd-ra's and
 * scepd-challenge's. The frontend reaches no CA.
 */
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "scepd_init.h"

static const char *const service_names[] = {
    "frontend", "ra", "challenge", "ca"};
#define SERVICES (sizeof(service_names) / sizeof(service_names[0]))

/* Whether others may pass through directory `path` on the way to `dir`:
 * 0, else -1 (printed). */
static int
passable(const char *path, const char *dir)
{
	struct stat st;

	if (stat(path, &st) != 0) {
		fprintf(stderr, "scepd: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (!(st.st_mode & S_IXOTH)) {
		fprintf(stderr,
		    "scepd: --service-users: %s (mode %04o) does not let the "
		    "services' users through to %s; give a data directory "
		    "whose parents do (e.g. --data-dir /var/lib/scepd), or "
		    "chmod o+x %s\n",
		    path, (unsigned)(st.st_mode & 07777), dir, path);
		return -1;
	}
	return 0;
}

/*
 * Every directory above `dir` must let the services' users through
 * (search permission for others): their sockets are beneath it, and the
 * frontend reads admin/ at every login. /root (0700) does not.
 */
static int
ancestors_passable(const char *dir)
{
	char abs[PATH_MAX], parent[PATH_MAX + 4];
	char *slash;

	/* An existing DIR (empty, or a symbolic link to one) by its real
	 * place; a DIR to be made by its parent's. */
	if (realpath(dir, parent) == NULL)
		snprintf(parent, sizeof(parent), "%s", dir);
	while (strlen(parent) > 1 && parent[strlen(parent) - 1] == '/')
		parent[strlen(parent) - 1] = '\0';
	if ((slash = strrchr(parent, '/')) == NULL)
		snprintf(parent, sizeof(parent), ".");
	else if (slash == parent)
		parent[1] = '\0';
	else
		parent[slash - parent] = '\0';
	if (realpath(parent, abs) == NULL) {
		fprintf(stderr, "scepd: %s: %s\n", parent, strerror(errno));
		return -1;
	}
	if (passable("/", dir) != 0)
		return -1;
	/* "/a/b": "/a", then "/a/b". */
	for (char *p = abs + 1; abs[1] != '\0'; p++) {
		char c = *p;
		int rc;

		if (c != '/' && c != '\0')
			continue;
		*p = '\0';
		rc = passable(abs, dir);
		*p = c;
		if (rc != 0)
			return -1;
		if (c == '\0')
			break;
	}
	return 0;
}

int
init_users_check(const char *dir, struct init_users *u)
{
	int errors = 0;

	/* The services start as root to read their keys, then become
	 * their users. */
	if (geteuid() != 0) {
		fprintf(stderr,
		    "scepd: --service-users: run scepd as root: "
		    "each service becomes its user after start\n");
		return -1;
	}
	for (size_t i = 0; i < SERVICES; i++) {
		char name[32];
		struct passwd *pw;

		snprintf(name, sizeof(name), "scepd-%s", service_names[i]);
		if ((pw = getpwnam(name)) == NULL) {
			fprintf(stderr,
			    "scepd: --service-users: no user %s (as root, "
			    "scripts/users.sh makes the four)\n",
			    name);
			errors++;
		} else if (strcmp(service_names[i], "frontend") == 0) {
			u->frontend_uid = pw->pw_uid;
			u->frontend_gid = pw->pw_gid;
		}
	}
	if (errors)
		return -1;
	return ancestors_passable(dir);
}

/* `text` with every `from` replaced by `to`; NULL when out of memory. */
static char *
replace_all(const char *text, const char *from, const char *to)
{
	size_t count = 0, fl = strlen(from), tl = strlen(to);
	const char *p;
	char *out, *o;

	for (p = text; (p = strstr(p, from)) != NULL; p += fl)
		count++;
	if ((out = malloc(strlen(text) + count * tl + 1)) == NULL)
		return NULL;
	for (o = out, p = text;;) {
		const char *at = strstr(p, from);

		if (at == NULL) {
			strcpy(o, p);
			return out;
		}
		memcpy(o, p, (size_t)(at - p));
		o += at - p;
		memcpy(o, to, tl);
		o += tl;
		p = at + fl;
	}
}

/* The lines --service-users sets, each in its section. */
static const struct {
	const char *section, *line, *set;
} users_lines[] = {
    {"frontend", ";User =", "User = scepd-frontend"},
    {"ra", ";User =", "User = scepd-ra"},
    {"ra", ";CallerUsers =", "CallerUsers = frontend:scepd-frontend"},
    {"challenge", ";User =", "User = scepd-challenge"},
    {"challenge",
        ";CallerUsers =", "CallerUsers = frontend:scepd-frontend ra:scepd-ra"},
    {"ca", ";User =", "User = scepd-ca"},
    {"ca", ";CallerUsers =", "CallerUsers = ra:scepd-ra"},
};
#define USERS_LINES (sizeof(users_lines) / sizeof(users_lines[0]))

char *
init_users_config(const char *text)
{
	static const char *const servers[] = {"ra", "challenge", "ca"};
	char *in = strdup(text), *next, *out, *o, section[64] = "";
	size_t set = 0;

	/* ipc://run/ca.sock becomes ipc://run/ca/ca.sock. */
	for (size_t i = 0; in != NULL && i < 3; i++) {
		char from[64], to[64];

		snprintf(from, sizeof(from), "ipc://run/%s.sock", servers[i]);
		snprintf(to, sizeof(to), "ipc://run/%s/%s.sock", servers[i],
		    servers[i]);
		next = replace_all(in, from, to);
		free(in);
		in = next;
	}
	/* Each line set is at most 64 bytes longer than the one it takes. */
	if (in == NULL ||
	    (out = malloc(strlen(in) + USERS_LINES * 64 + 1)) == NULL) {
		free(in);
		return NULL;
	}
	o = out;
	for (char *line = in; *line != '\0';) {
		size_t len = strcspn(line, "\n");
		const char *put = NULL;

		if (line[0] == '[' && len < sizeof(section) &&
		    line[len - 1] == ']')
			snprintf(section, sizeof(section), "%.*s", (int)len - 2,
			    line + 1);
		for (size_t i = 0; i < USERS_LINES; i++)
			if (strcmp(section, users_lines[i].section) == 0 &&
			    strlen(users_lines[i].line) == len &&
			    strncmp(line, users_lines[i].line, len) == 0)
				put = users_lines[i].set;
		if (put != NULL) {
			o += sprintf(o, "%s", put);
			set++;
		} else {
			memcpy(o, line, len);
			o += len;
		}
		line += len;
		if (*line == '\n')
			*o++ = *line++;
	}
	*o = '\0';
	free(in);
	if (set != USERS_LINES) {
		fprintf(stderr,
		    "scepd: --service-users: the example configuration has "
		    "%zu of the %zu lines to set (';User =', ';CallerUsers "
		    "=' in the services' sections)\n",
		    set, USERS_LINES);
		free(out);
		return NULL;
	}
	return out;
}

struct users_seen {
	int has_user[SERVICES];
	int has_callers[SERVICES];
};

static int
users_seen_line(
    void *arg, const char *section, const char *key, const char *value)
{
	struct users_seen *seen = arg;

	for (size_t i = 0; i < SERVICES; i++) {
		if (strcmp(section, service_names[i]) != 0 || value[0] == '\0')
			continue;
		if (strcmp(key, "User") == 0)
			seen->has_user[i] = 1;
		if (strcmp(key, "CallerUsers") == 0)
			seen->has_callers[i] = 1;
	}
	return 1;
}

int
init_users_configured(const char *conf)
{
	struct users_seen seen;
	int missing = 0;

	memset(&seen, 0, sizeof(seen));
	if (ini_parse(conf, users_seen_line, &seen) < 0) {
		fprintf(stderr, "scepd: %s: cannot read it\n", conf);
		return -1;
	}
	for (size_t i = 0; i < SERVICES; i++) {
		if (!seen.has_user[i]) {
			fprintf(stderr,
			    "scepd: --service-users: %s was made without it: "
			    "[%s] sets no User, and the service would run as "
			    "root\n",
			    conf, service_names[i]);
			missing++;
		}
		/* Every server but the frontend names its callers. */
		if (i > 0 && !seen.has_callers[i]) {
			fprintf(stderr,
			    "scepd: --service-users: %s: [%s] sets no "
			    "CallerUsers: a service reaching its socket could "
			    "speak as another\n",
			    conf, service_names[i]);
			missing++;
		}
	}
	if (missing > 0)
		fprintf(stderr,
		    "scepd: set User and CallerUsers in each section and "
		    "the sockets' directories as the README's \"One machine, "
		    "a user per service\" says, or start without "
		    "--service-users\n");
	return missing > 0 ? -1 : 0;
}

int
init_users_apply(const char *build, const struct init_users *u)
{
	char path[4200];

	/* DIR and run/ let the users through, no more: their sockets'
	 * directories are made beneath run/ by each service. */
	snprintf(path, sizeof(path), "%s/run", build);
	if (chmod(build, 0711) != 0 || chmod(path, 0711) != 0) {
		fprintf(stderr, "scepd: %s: %s\n", path, strerror(errno));
		return -1;
	}
	/* The frontend reads admin/admin.passwd at every login (scepctl
	 * passwd keeps the file's owner). */
	snprintf(path, sizeof(path), "%s/admin", build);
	if (lchown(path, u->frontend_uid, u->frontend_gid) != 0) {
		fprintf(stderr, "scepd: %s: %s\n", path, strerror(errno));
		return -1;
	}
	snprintf(path, sizeof(path), "%s/admin/admin.passwd", build);
	if (lchown(path, u->frontend_uid, u->frontend_gid) != 0) {
		fprintf(stderr, "scepd: %s: %s\n", path, strerror(errno));
		return -1;
	}
	return 0;
}
