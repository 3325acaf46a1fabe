/*
 * scepd-frontend's sandbox. Once started the frontend needs its listening
 * socket (accept) and libmicrohttpd's threads, its clients towards the RA
 * and the challenge service (ZeroMQ connects them: Unix and TCP sockets),
 * stderr, and one file: AdminPasswordFile, read at every admin login and
 * rewritten by `scepctl passwd` (a new file renamed over the old one), so
 * Landlock leaves it its directory, read-only. Other opens get EACCES;
 * exec, fork, ptrace and other sockets kill it. A tcp:// endpoint given
 * by host name keeps name resolution, as in the RA.
 */
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "frontend.h"
#include "log.h"

static struct sandbox *frontend_sandbox;
static struct sandbox_policy frontend_policy;
static char *frontend_admin_dir;
/* The RA's and the challenge service's sockets (ipc://), to be reached. */
static char frontend_ra_peers[1024], frontend_challenge_peers[1024];

/* AdminPasswordFile: opened again at every login, to read. */
static const struct sandbox_syscall frontend_open[] = {
    SANDBOX_OPEN_READ_ONLY("open", 1),
    SANDBOX_OPEN_READ_ONLY("openat", 2),
    SANDBOX_SYSCALLS_END,
};

static const struct sandbox_syscall *const frontend_syscalls[] = {
    sandbox_syscalls_common, sandbox_syscalls_client, frontend_open, NULL};
static const struct sandbox_syscall *const frontend_syscalls_resolver[] = {
    sandbox_syscalls_common, sandbox_syscalls_client, sandbox_syscalls_resolver,
    NULL};

/*
 * A frontend whose AdminPasswordFile's directory holds the configuration's
 * (scepd's one-machine layout before admin/) may read all beneath it: the
 * CA's and the RA's keys there too, the challenge service's key and the
 * databases, where this user may read them (not in deploy/'s layouts:
 * other users, other containers). The keys may be in a token, the
 * databases are not.
 */
static void
frontend_admin_dir_warn(
    const struct frontend_settings *s, const char *config_file)
{
	static const char *const keys[] = {"ca/ca.key", "ra/ra-sign.key",
	    "ra/ra-enc.key", "secrets/challenge.key", "db/challenge/data.mdb",
	    "db/ca/data.mdb"};
	char *copy = strdup(config_file), *conf_dir = NULL, *admin_dir = NULL;
	char key[4096];
	size_t n;

	if (copy == NULL || s->sandbox.user[0] != '\0' ||
	    (conf_dir = realpath(dirname(copy), NULL)) == NULL ||
	    (admin_dir = realpath(frontend_admin_dir, NULL)) == NULL)
		goto out;
	n = strlen(admin_dir);
	if (strncmp(conf_dir, admin_dir, n) != 0 ||
	    (conf_dir[n] != '\0' && conf_dir[n] != '/' &&
	        strcmp(admin_dir, "/") != 0))
		goto out;
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		snprintf(key, sizeof(key), "%s/%s", conf_dir, keys[i]);
		if (access(key, R_OK) == 0) {
			log_warn("sandbox: AdminPasswordFile %s is in %s, "
			         "so the frontend may read everything "
			         "beneath it, %s too: move it into a "
			         "directory of its own (scepd's first start "
			         "makes admin/admin.passwd)",
			    s->admin_password_file, admin_dir, key);
			break;
		}
	}
out:
	free(admin_dir);
	free(conf_dir);
	free(copy);
}

int
frontend_sandbox_enter(const struct frontend *fe, const char *config_file)
{
	const struct frontend_settings *s = &fe->settings;
	int resolver = sandbox_endpoints_need_resolver(s->ra_endpoint) ||
	    sandbox_endpoints_need_resolver(s->challenge_endpoint);
	char *copy;

	if ((frontend_sandbox = sandbox_new(&s->sandbox, config_file,
	         "frontend", "scepd-frontend")) == NULL)
		return -1;
	memset(&frontend_policy, 0, sizeof(frontend_policy));
	frontend_policy.syscalls =
	    resolver ? frontend_syscalls_resolver : frontend_syscalls;
	if (s->admin_path[0] != '\0' && s->admin_password_file[0] != '\0') {
		if ((copy = strdup(s->admin_password_file)) == NULL ||
		    (frontend_admin_dir = strdup(dirname(copy))) == NULL) {
			free(copy);
			log_error("sandbox: out of memory");
			return -1;
		}
		free(copy);
		sandbox_policy_add_path(
		    &frontend_policy, frontend_admin_dir, SANDBOX_FS_READ);
		/* Its user must read the file (not the rest of the
		 * directory: the keys, in a DIR made before admin/). */
		sandbox_policy_add_path(
		    &frontend_policy, s->admin_password_file, SANDBOX_FS_OWN);
		frontend_admin_dir_warn(s, config_file);
	}
	if (sandbox_policy_add_ipc_peers(&frontend_policy, s->ra_endpoint,
	        frontend_ra_peers, sizeof(frontend_ra_peers)) != 0 ||
	    sandbox_policy_add_ipc_peers(&frontend_policy,
	        s->challenge_endpoint, frontend_challenge_peers,
	        sizeof(frontend_challenge_peers)) != 0) {
		log_error("sandbox: too many paths");
		return -1;
	}
	if (resolver) {
		if (sandbox_policy_add_resolver(&frontend_policy) != 0) {
			log_error("sandbox: too many paths");
			return -1;
		}
		log_info("sandbox: an endpoint is a host name: name "
		         "resolution stays allowed");
	}
	return sandbox_enter(frontend_sandbox, &frontend_policy);
}

int
frontend_sandbox_lock(void)
{
	return sandbox_lock(frontend_sandbox, &frontend_policy);
}

void
frontend_sandbox_free(void)
{
	sandbox_free(frontend_sandbox);
	frontend_sandbox = NULL;
	free(frontend_admin_dir);
	frontend_admin_dir = NULL;
}
