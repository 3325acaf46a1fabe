/*
 * scepd-ra's sandbox. Once started the RA needs its ZeroMQ socket, its
 * clients towards the CA and the challenge service (ZeroMQ reconnects
 * them: Unix and TCP sockets, connect) and stderr; its keys are in memory.
 * No file opens (EACCES); exec, fork, ptrace and other sockets kill it.
 * Landlock leaves it only its ipc:// socket's directory, and a signer's
 * SandboxReadPaths for a token's module. A tcp:// endpoint
 * given by host name keeps name resolution (ZeroMQ resolves at every
 * reconnection): /etc/hosts, /etc/resolv.conf and the NSS modules.
 */
#include <string.h>

#include "log.h"
#include "ra.h"

static struct sandbox *ra_sandbox;
static struct sandbox_policy ra_policy;
static char ra_dirs[1024];
/* The CA's and the challenge service's sockets (ipc://), to be reached. */
static char ra_ca_peers[1024], ra_challenge_peers[1024];

static const struct sandbox_syscall *const ra_syscalls[] = {
    sandbox_syscalls_common, sandbox_syscalls_client, NULL};
static const struct sandbox_syscall *const ra_syscalls_resolver[] = {
    sandbox_syscalls_common, sandbox_syscalls_client, sandbox_syscalls_resolver,
    NULL};
/* A key in a token whose module reads files after start (resolver's
 * table allows opens already). */
static const struct sandbox_syscall *const ra_syscalls_signer[] = {
    sandbox_syscalls_common, sandbox_syscalls_client,
    sandbox_syscalls_token_files, NULL};

int
ra_sandbox_enter(const struct ra *ra, const char *config_file)
{
	const struct ra_settings *s = &ra->settings;
	int resolver = sandbox_endpoints_need_resolver(s->ca_endpoint) ||
	    sandbox_endpoints_need_resolver(s->challenge_endpoint);

	if ((ra_sandbox = sandbox_new(
	         &s->sandbox, config_file, "ra", "scepd-ra")) == NULL)
		return -1;
	memset(&ra_policy, 0, sizeof(ra_policy));
	ra_policy.syscalls = resolver ? ra_syscalls_resolver : ra_syscalls;
	if (sandbox_policy_add_ipc_dirs(
	        &ra_policy, s->listen, ra_dirs, sizeof(ra_dirs)) != 0 ||
	    sandbox_policy_add_ipc_peers(&ra_policy, s->ca_endpoint,
	        ra_ca_peers, sizeof(ra_ca_peers)) != 0 ||
	    sandbox_policy_add_ipc_peers(&ra_policy, s->challenge_endpoint,
	        ra_challenge_peers, sizeof(ra_challenge_peers)) != 0 ||
	    (resolver && sandbox_policy_add_resolver(&ra_policy) != 0)) {
		log_error("sandbox: too many paths");
		return -1;
	}
	if (resolver)
		log_info("sandbox: an endpoint is a host name: name "
		         "resolution stays allowed");
	const struct signer *signers[] = {
	    &ra->sign_signer, &ra->enc_signer, &ra->previous_enc_signer};

	for (size_t i = 0; i < sizeof(signers) / sizeof(signers[0]); i++) {
		int n = signer_sandbox_allow(signers[i], &ra_policy);

		if (n < 0)
			return -1;
		if (n > 0 && !resolver)
			ra_policy.syscalls = ra_syscalls_signer;
	}
	return sandbox_enter(ra_sandbox, &ra_policy);
}

int
ra_sandbox_ready(void *service)
{
	(void)service;
	return sandbox_lock(ra_sandbox, &ra_policy);
}

void
ra_sandbox_free(void)
{
	sandbox_free(ra_sandbox);
	ra_sandbox = NULL;
}
