/*
 * scepd-ca's sandbox, the tightest of the four. Once started the CA needs
 * its one ZeroMQ socket (accept, receive, send), its LMDB through the
 * descriptor and mapping already open, and stderr. Nothing else: a file
 * open gets EACCES (libraries try some opportunistically); exec, new
 * sockets, connect, fork and ptrace kill it. Landlock leaves it only its
 * ipc:// socket's directory (to bind there) and, over TCP, its own port.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ca.h"
#include "log.h"

/* No table of its own: sandbox_syscalls_common is all it needs. */
static const struct sandbox_syscall *const ca_syscalls[] = {
    sandbox_syscalls_common, NULL};

/*
 * With a signer whose token module reads files after start. Such modules
 * also log their errors to syslog (SoftHSM2 does), which needs a new
 * socket: it gets EACCES (the line is lost, the CA answers the request
 * as failed) rather than killing the CA in the middle of a signature.
 */
static const struct sandbox_syscall ca_syscalls_token_logging[] = {
    SANDBOX_EACCES("socket"),
    SANDBOX_SYSCALLS_END,
};
static const struct sandbox_syscall *const ca_syscalls_signer[] = {
    sandbox_syscalls_common, sandbox_syscalls_token_files,
    ca_syscalls_token_logging, NULL};
/* A signer's module that reads no files after start (a hardware token's)
 * may log all the same: its socket gets EACCES too. */
static const struct sandbox_syscall *const ca_syscalls_signer_no_files[] = {
    sandbox_syscalls_common, ca_syscalls_token_logging, NULL};

/* The port of a tcp:// endpoint, or 0. */
static int
ca_tcp_port(const char *endpoint)
{
	const char *colon;

	if (strncmp(endpoint, "tcp://", 6) != 0 ||
	    (colon = strrchr(endpoint, ':')) == NULL)
		return 0;
	return atoi(colon + 1);
}

int
ca_sandbox_enter(struct ca *ca)
{
	struct sandbox_policy *p = &ca->sandbox_policy;
	int own, previous;

	memset(p, 0, sizeof(*p));
	p->syscalls = ca_syscalls;
	if (sandbox_policy_add_ipc_dirs(p, ca->settings.listen,
	        ca->sandbox_dirs, sizeof(ca->sandbox_dirs)) != 0) {
		log_error("sandbox: Listen %s: too long", ca->settings.listen);
		return -1;
	}
	p->restrict_tcp = 1;
	p->tcp_bind_port = ca_tcp_port(ca->settings.listen);
	/* The CA's key and the previous CA's (PreviousCASigner) may each
	 * be in a token. */
	if ((own = signer_sandbox_allow(&ca->signer, p)) < 0 ||
	    (previous = signer_sandbox_allow(&ca->previous_signer, p)) < 0)
		return -1;
	if (own + previous > 0)
		p->syscalls = ca_syscalls_signer;
	else if (ca->signer.p != NULL || ca->previous_signer.p != NULL)
		p->syscalls = ca_syscalls_signer_no_files;
	return sandbox_enter(ca->sandbox, p);
}

int
ca_sandbox_ready(void *service)
{
	struct ca *ca = service;

	return sandbox_lock(ca->sandbox, &ca->sandbox_policy);
}

#ifdef SCEPD_TEST_HOOKS
/* What "leak" loses, so that LeakSanitizer has something to report. */
static void *volatile ca_probe_leaked;

/*
 * Test builds only: tries what it is told and answers the errno, unless
 * the sandbox kills the process first (which is what the test wants to
 * see for socket and exec). "leak" loses 4242 bytes: in a sanitizer
 * build, proof that LeakSanitizer still works inside the sandbox.
 */
void
ca_handle_sandbox_probe(void *worker, const Scep__V1__Request *req,
    Scep__V1__Reply *reply, struct rpc_arena *arena)
{
	Scep__V1__SandboxProbeReply *out;
	const char *what = req->sandbox_probe->what;
	int fd, e = 0;

	(void)worker;
	out = rpc_alloc(arena, sizeof(*out));
	scep__v1__sandbox_probe_reply__init(out);
	if (what == NULL)
		what = "";
	log_warn("test hook: sandbox probe '%s'", what);
	if (strcmp(what, "open") == 0) {
		if ((fd = open("/etc/passwd", O_RDONLY | O_CLOEXEC)) < 0)
			e = errno;
		else
			close(fd);
	} else if (strcmp(what, "socket") == 0) {
		if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
			e = errno;
		else
			close(fd);
	} else if (strcmp(what, "setown") == 0) {
		/* Signals to a process on I/O: its own here (getppid is no
		 * system call the CA makes: the probe would die of that). */
		if (fcntl(2, F_SETOWN, (int)getpid()) < 0)
			e = errno;
	} else if (strcmp(what, "exec") == 0) {
		execl("/bin/true", "true", (char *)NULL);
		e = errno;
	} else if (strcmp(what, "leak") == 0) {
		ca_probe_leaked = malloc(4242);
		ca_probe_leaked = NULL;
	} else {
		reply->status = SCEP__V1__STATUS__STATUS_BAD_REQUEST;
		reply->error = "what: open, socket, setown, exec or leak";
		return;
	}
	log_warn("test hook: sandbox probe '%s': %s", what,
	    e ? strerror(e) : "allowed");
	out->has_errno_value = 1;
	out->errno_value = e;
	out->error = rpc_strdup(arena, e ? strerror(e) : "allowed");
	reply->body_case = SCEP__V1__REPLY__BODY_SANDBOX_PROBE;
	reply->sandbox_probe = out;
}
#endif
