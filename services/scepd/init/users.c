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
	const char *slash;

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

char *
init_users_config(const char *text)
{
	static const char *const servers[] = {"ra", "challenge", "ca"};
	char *out = strdup(text), *next, *line;
	size_t users = 0;

	/* ipc://run/ca.sock becomes ipc://run/ca/ca.sock. */
	for (size_t i = 0; out != NULL && i < 3; i++) {
		char from[64], to[64];

		snprintf(from, sizeof(from), "ipc://run/%s.sock", servers[i]);
		snprintf(to, sizeof(to), "ipc://run/%s/%s.sock", servers[i],
		    servers[i]);
		next = replace_all(out, from, to);
		free(out);
		out = next;
	}
	if (out == NULL)
		return NULL;
	/* ";User =" of each service's section becomes "User = scepd-NAME":
	 * the same length as the longest name's line or longer, so built
	 * anew. */
	while ((line = strstr(out, "\n;User =\n")) != NULL) {
		const char *head = line, *name = NULL;
		char user[64];
		size_t len;

		/* The section this line is in: the last "\n[" before it. */
		while (head > out && strncmp(head, "\n[", 2) != 0)
			head--;
		for (size_t i = 0; head > out && i < SERVICES; i++) {
			len = strlen(service_names[i]);
			if (strncmp(head + 2, service_names[i], len) == 0 &&
			    head[2 + len] == ']')
				name = service_names[i];
		}
		if (name == NULL)
			break; /* a section of no service: the example changed */
		snprintf(user, sizeof(user), "\nUser = scepd-%s\n", name);
		len = strlen(out) - strlen(";User =\n") + strlen(user) + 1;
		if ((next = malloc(len)) == NULL) {
			free(out);
			return NULL;
		}
		snprintf(next, len, "%.*s%s%s", (int)(line - out), out, user,
		    line + strlen("\n;User =\n"));
		free(out);
		out = next;
		users++;
	}
	if (users != SERVICES) {
		fprintf(stderr,
		    "scepd: --service-users: the example configuration has "
		    "%zu ';User =' lines in the services' sections, not %zu\n",
		    users, SERVICES);
		free(out);
		return NULL;
	}
	return out;
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
	if (chown(path, u->frontend_uid, u->frontend_gid) != 0) {
		fprintf(stderr, "scepd: %s: %s\n", path, strerror(errno));
		return -1;
	}
	snprintf(path, sizeof(path), "%s/admin/admin.passwd", build);
	if (chown(path, u->frontend_uid, u->frontend_gid) != 0) {
		fprintf(stderr, "scepd: %s: %s\n", path, strerror(errno));
		return -1;
	}
	return 0;
}
