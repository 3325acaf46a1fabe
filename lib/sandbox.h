/*
 * Privilege separation after start-up (OpenSSH privsep, OpenBSD
 * acme-client): a service gives up what it no longer needs once it has
 * opened its keys, databases and plugins. The mechanism is here; each
 * service's policy is data in its own sandbox.c.
 *
 * Two calls, because Landlock binds only the calling thread and the
 * threads it creates afterwards, while seccomp is synchronised to every
 * thread and must come last:
 *
 *   sandbox_enter()  after everything is open, before the first thread or
 *                    ZeroMQ socket: drop to `User` when started as root
 *                    (and check root cannot be regained), RLIMIT_CORE 0,
 *                    PR_SET_DUMPABLE 0, PR_SET_NO_NEW_PRIVS 1, Landlock
 *                    where the kernel has it (the ABI used is logged);
 *   sandbox_lock()   once the service's threads run, before it serves
 *                    (rpc_server_config.ready): the seccomp allowlist,
 *                    with thread sync, on every thread.
 *
 * `Sandbox = log` is for diagnosis: the seccomp filter then only logs
 * (SCMP_ACT_LOG: audit records of type SECCOMP in dmesg or the journal)
 * what it would refuse, and Landlock is not applied; this is said at
 * start. `enforce`, the default, refuses.
 */
#ifndef SCEPD_SANDBOX_H
#define SCEPD_SANDBOX_H

#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* The configuration keys every service has (Sandbox, User). */
struct sandbox_settings {
	char *mode; /* "enforce" or "log" */
	char *user; /* "" : stay who we were started as */
};

/* clang-format off */
/* Two entries of a service's config_key table. */
#define SANDBOX_CONFIG_KEYS(type, field)                                   \
	{"Sandbox", CONFIG_STRING, 0, 0, "enforce",                        \
	    offsetof(type, field.mode),                                    \
	    "enforce, or log: only log what the sandbox would refuse"},    \
	    {"User", CONFIG_STRING, 0, 0, "", offsetof(type, field.user),  \
	        "when started as root, run as this user after start-up"}
/* clang-format on */

/* What a system call gets when it is not allowed. */
enum sandbox_action {
	SANDBOX_ALLOW,
	SANDBOX_EACCES, /* what libc tries opportunistically: open, ... */
	SANDBOX_ENOSYS, /* clone3: glibc falls back to clone */
	SANDBOX_KILL, /* the whole process, by SIGSYS */
};

/*
 * One rule: system call `name` (as libseccomp names it; names the
 * architecture lacks are skipped) gets `action`, only when `arg` >= 0 and
 * (argument `arg` & `mask`) == `value` if a condition is given. Anything
 * no rule allows kills the process.
 */
struct sandbox_syscall {
	const char *name;
	enum sandbox_action action;
	int arg; /* -1: whatever the arguments */
	uint64_t mask;
	uint64_t value;
};

/* A rule's `value` standing for the process's own pid, known when the
 * filter is made (tgkill: signals to its own threads only). */
#define SANDBOX_OWN_PID UINT64_MAX
/* ... and for the scheduling policy the process runs under, without
 * SCHED_RESET_ON_FORK (chrt -b, CPUSchedulingPolicy=): libzmq's threads
 * set it again on themselves as they start. */
#define SANDBOX_OWN_POLICY (UINT64_MAX - 1)

/* clang-format off */
#define SANDBOX_ALLOW(n) {n, SANDBOX_ALLOW, -1, 0, 0}
#define SANDBOX_ALLOW_IF(n, a, m, v) {n, SANDBOX_ALLOW, a, m, v}
#define SANDBOX_EACCES(n) {n, SANDBOX_EACCES, -1, 0, 0}
#define SANDBOX_EACCES_IF(n, a, m, v) {n, SANDBOX_EACCES, a, m, v}
#define SANDBOX_SYSCALLS_END {NULL, SANDBOX_KILL, -1, 0, 0}
/* clang-format on */

/*
 * open or openat (`n`, its flags argument `a`) to read only: an open that
 * would write, create, truncate or append gets EACCES from the filter
 * itself, Landlock or not (a kernel, or a container's seccomp profile,
 * without it). O_TMPFILE without O_DIRECTORY's bit, which reading a
 * directory sets. One condition a rule, so one rule a flag.
 */
#define SANDBOX_O_TMPFILE_BIT ((uint64_t)(O_TMPFILE & ~O_DIRECTORY))
#define SANDBOX_O_WRITING \
	((uint64_t)(O_WRONLY | O_RDWR | O_CREAT | O_TRUNC | O_APPEND) | \
	    SANDBOX_O_TMPFILE_BIT)
/* clang-format off */
#define SANDBOX_OPEN_READ_ONLY(n, a) \
	SANDBOX_ALLOW_IF(n, a, SANDBOX_O_WRITING, 0), \
	SANDBOX_EACCES_IF(n, a, O_WRONLY, O_WRONLY), \
	SANDBOX_EACCES_IF(n, a, O_RDWR, O_RDWR), \
	SANDBOX_EACCES_IF(n, a, O_CREAT, O_CREAT), \
	SANDBOX_EACCES_IF(n, a, O_TRUNC, O_TRUNC), \
	SANDBOX_EACCES_IF(n, a, O_APPEND, O_APPEND), \
	SANDBOX_EACCES_IF(n, a, SANDBOX_O_TMPFILE_BIT, SANDBOX_O_TMPFILE_BIT)
/* clang-format on */

/* What every service needs after start-up: memory, threads and their
 * synchronisation, ZeroMQ's sockets already open (poll, accept, send,
 * receive), time, randomness, logging to stderr, a clean exit. File
 * opens and other path calls get EACCES. mmap and mprotect only without
 * PROT_EXEC: no new code once started. */
extern const struct sandbox_syscall sandbox_syscalls_common[];
/* A client of other services (ZeroMQ reconnects: Unix and TCP sockets). */
extern const struct sandbox_syscall sandbox_syscalls_client[];
/* Name resolution and TLS trust stores at run time (getaddrinfo, NSS
 * modules, libcurl): file opens, datagram sockets, executable mappings.
 * Their files are the Landlock paths of sandbox_paths_resolver. */
extern const struct sandbox_syscall sandbox_syscalls_resolver[];
/* A signer's token module that reads files after start (SoftHSM2 reads
 * its token's `generation` file before each operation): opens, which
 * Landlock limits to the signer's SandboxReadPaths, read-only. Nothing
 * else: a module that logs to syslog would be killed. */
extern const struct sandbox_syscall sandbox_syscalls_token_files[];

/* Landlock: what may still be done beneath a path. */
enum {
	SANDBOX_FS_READ = 1 << 0, /* read files (and list directories) */
	SANDBOX_FS_SOCKETS = 1 << 1, /* create and remove Unix sockets in a
	                                directory (a service's ipc:// one) */
	/* With READ: the service's own files, which its User must be able
	 * to read (checked at sandbox_enter, after the change of user). */
	SANDBOX_FS_OWN = 1 << 2,
	/* The ipc:// socket of a service this one calls: its User must
	 * reach it (checked at sandbox_enter); no Landlock rule. */
	SANDBOX_FS_REACH = 1 << 3,
	/* With READ: a file that tools replace rather than rewrite (an
	 * editor, sed -i, resolvconf), which a rule on the file found at
	 * start no longer covers: also the directory of its symbolic link's
	 * target (/run/resolvconf), and under User its own directory. */
	SANDBOX_FS_REPLACED = 1 << 4,
};

struct sandbox_path {
	const char *path; /* absolute; a missing path is skipped */
	unsigned access; /* SANDBOX_FS_* */
};

/* /etc/hosts, /etc/resolv.conf, ..., /etc/ssl/certs, the system libraries. */
extern const struct sandbox_path sandbox_paths_resolver[];

/*
 * A service's policy. `syscalls`: tables, NULL-terminated, each ending
 * with SANDBOX_SYSCALLS_END; a table that names a system call replaces
 * what earlier tables said of it. `paths`: the Landlock rules (with none,
 * no file may be opened or created anywhere). `restrict_tcp`: with
 * Landlock's network rights (ABI 4), TCP connect nowhere and bind only
 * `tcp_bind_port` (0: none).
 */
#define SANDBOX_MAX_PATHS 32
struct sandbox_policy {
	const struct sandbox_syscall *const *syscalls;
	struct sandbox_path paths[SANDBOX_MAX_PATHS];
	size_t npaths;
	int restrict_tcp;
	int tcp_bind_port;
};

/* Adds a Landlock rule; -1 when the table is full. */
int sandbox_policy_add_path(
    struct sandbox_policy *p, const char *path, unsigned access);
/* Adds sandbox_paths_resolver. */
int sandbox_policy_add_resolver(struct sandbox_policy *p);
/* The directory of every ipc:// endpoint in `endpoints` (space separated)
 * as SANDBOX_FS_SOCKETS: a server binds there after sandbox_enter(). The
 * strings are copied into `buf` (bufsize bytes). */
int sandbox_policy_add_ipc_dirs(
    struct sandbox_policy *p, const char *endpoints, char *buf, size_t bufsize);
/* The socket of every ipc:// endpoint in `endpoints` this service
 * connects to, as SANDBOX_FS_REACH (copied into `buf` as above). */
int sandbox_policy_add_ipc_peers(
    struct sandbox_policy *p, const char *endpoints, char *buf, size_t bufsize);
/* 1 when one of `endpoints` is tcp:// to a host name (not an address):
 * ZeroMQ resolves it again at every reconnection. */
int sandbox_endpoints_need_resolver(const char *endpoints);

struct sandbox;

/*
 * Checks [section] Sandbox and User of `file` (the user must exist and
 * not be root). NULL after printing every problem to stderr as
 * config_load() does. `service` names the process in those.
 */
struct sandbox *sandbox_new(const struct sandbox_settings *s, const char *file,
    const char *section, const char *service);
void sandbox_free(struct sandbox *sb);
/* 1 in Sandbox = log. */
int sandbox_logging(const struct sandbox *sb);

/* The first step (see above). 0, or -1 after logging why: the service
 * must then exit 1. */
/* No core file, no ptrace by the process's user (RLIMIT_CORE 0,
 * PR_SET_DUMPABLE 0): 0, or -1 with errno. sandbox_enter does it too. */
int sandbox_no_dumps(void);
int sandbox_enter(struct sandbox *sb, const struct sandbox_policy *policy);
/* The last step (see above). 0, or -1 after logging why. */
int sandbox_lock(struct sandbox *sb, const struct sandbox_policy *policy);

#endif
