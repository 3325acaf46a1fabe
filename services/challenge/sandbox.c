/*
 * scepd-challenge's sandbox. With the built-in validators alone it needs
 * what the CA needs: its ZeroMQ socket, its LMDB through what is already
 * open, stderr; file opens get EACCES, and exec, fork, ptrace, new sockets
 * and connect kill it. Landlock leaves it only its ipc:// socket's
 * directory.
 *
 * A validator plugin (webhook) talks to the network at every check: with
 * one loaded the service keeps TCP sockets and connect, name resolution
 * and the system's trust store (read-only: /etc/hosts, /etc/resolv.conf,
 * /etc/ssl/certs, the NSS modules and libraries; see sandbox_paths_resolver),
 * and says so at start. Its own files (CAFile, client key) are read at
 * start and need nothing.
 */
#include <string.h>

#include "challenge.h"
#include "log.h"

static struct sandbox *challenge_sandbox;
static struct sandbox_policy challenge_policy;
static char challenge_dirs[1024];

static const struct sandbox_syscall *const challenge_syscalls[] = {
    sandbox_syscalls_common, NULL};
static const struct sandbox_syscall *const challenge_syscalls_plugins[] = {
    sandbox_syscalls_common, sandbox_syscalls_client, sandbox_syscalls_resolver,
    NULL};

int
challenge_sandbox_enter(const struct challenge *c, const char *config_file)
{
	const char *plugin = NULL;

	if ((challenge_sandbox = sandbox_new(&c->settings.sandbox, config_file,
	         "challenge", "scepd-challenge")) == NULL)
		return -1;
	for (size_t i = 0; i < c->nvalidators; i++)
		if (c->validators[i].dl != NULL)
			plugin = c->validators[i].name;
	memset(&challenge_policy, 0, sizeof(challenge_policy));
	challenge_policy.syscalls =
	    plugin != NULL ? challenge_syscalls_plugins : challenge_syscalls;
	if (sandbox_policy_add_ipc_dirs(&challenge_policy, c->settings.listen,
	        challenge_dirs, sizeof(challenge_dirs)) != 0 ||
	    (plugin != NULL &&
	        sandbox_policy_add_resolver(&challenge_policy) != 0)) {
		log_error("sandbox: too many paths");
		return -1;
	}
	if (plugin != NULL)
		log_info("sandbox: validator plugin %s loaded: network, name "
		         "resolution and the system trust store stay allowed",
		    plugin);
	return sandbox_enter(challenge_sandbox, &challenge_policy);
}

int
challenge_sandbox_ready(void *service)
{
	(void)service;
	return sandbox_lock(challenge_sandbox, &challenge_policy);
}

void
challenge_sandbox_free(void)
{
	sandbox_free(challenge_sandbox);
	challenge_sandbox = NULL;
}
