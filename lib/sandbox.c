/*
 * The sandbox mechanism (see sandbox.h); the policies are the services'.
 * Landlock is called through its system calls: Debian 12's headers know
 * only its first two ABI versions, so the constants are ours.
 */
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <ftw.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include <seccomp.h>

#include "log.h"
#include "sandbox.h"

/* --- system calls -------------------------------------------------------- */

const struct sandbox_syscall sandbox_syscalls_common[] = {
    /* memory; no new executable mappings */
    SANDBOX_ALLOW("brk"),
    SANDBOX_ALLOW("munmap"),
    SANDBOX_ALLOW("mremap"),
    SANDBOX_ALLOW("madvise"),
    SANDBOX_ALLOW("mlock"), /* libsodium's keys (CurveZMQ) */
    SANDBOX_ALLOW("munlock"),
    SANDBOX_ALLOW_IF("mmap", 2, PROT_EXEC, 0),
    SANDBOX_ALLOW_IF("mprotect", 2, PROT_EXEC, 0),
    /* threads (clone only for threads; glibc falls back from clone3) */
    SANDBOX_ALLOW_IF("clone", 0, CLONE_THREAD, CLONE_THREAD),
    {"clone3", SANDBOX_ENOSYS, -1, 0, 0},
    SANDBOX_ALLOW("futex"),
    SANDBOX_ALLOW("set_robust_list"),
    SANDBOX_ALLOW("rseq"),
    SANDBOX_ALLOW("sched_yield"),
    SANDBOX_ALLOW("sched_getaffinity"),
    /* libzmq's threads, started by the first socket (lazily in the
     * frontend's workers), read and set their default scheduling */
    SANDBOX_ALLOW("sched_getparam"),
    SANDBOX_ALLOW("sched_getscheduler"),
    SANDBOX_ALLOW_IF("sched_setscheduler", 1, 0xffffffff, SCHED_OTHER),
    SANDBOX_ALLOW_IF("sched_setscheduler", 1, 0xffffffff & ~SCHED_RESET_ON_FORK,
        SANDBOX_OWN_POLICY),
    SANDBOX_ALLOW("gettid"),
    SANDBOX_ALLOW("getpid"),
    SANDBOX_ALLOW("getuid"),
    SANDBOX_ALLOW("geteuid"),
    SANDBOX_ALLOW("getgid"),
    SANDBOX_ALLOW("getegid"),
    /* glibc's qsort asks for the machine's RAM (sysconf, sysinfo) at its
     * first sort of 1 KiB or more: OpenSSL sorts a name's multi-valued
     * RDN and a CRL's entries with it. */
    SANDBOX_ALLOW("sysinfo"),
    SANDBOX_ALLOW_IF("prctl", 0, 0xffffffff, PR_SET_NAME),
    SANDBOX_ALLOW_IF("prctl", 0, 0xffffffff, PR_GET_NAME),
    SANDBOX_ALLOW("exit"),
    SANDBOX_ALLOW("exit_group"),
    /* signals: the stop signals, abort() */
    SANDBOX_ALLOW("rt_sigaction"),
    SANDBOX_ALLOW("rt_sigprocmask"),
    SANDBOX_ALLOW("rt_sigreturn"),
    SANDBOX_ALLOW("rt_sigtimedwait"),
    SANDBOX_ALLOW("sigaltstack"),
    SANDBOX_ALLOW("restart_syscall"),
    SANDBOX_ALLOW_IF("tgkill", 0, 0xffffffff, SANDBOX_OWN_PID),
    /* time */
    SANDBOX_ALLOW("clock_gettime"),
    SANDBOX_ALLOW("clock_getres"),
    SANDBOX_ALLOW("gettimeofday"),
    SANDBOX_ALLOW("time"),
    SANDBOX_ALLOW("nanosleep"),
    SANDBOX_ALLOW("clock_nanosleep"),
    SANDBOX_ALLOW("getrandom"),
    /* descriptors already open: LMDB, logs, ZeroMQ */
    SANDBOX_ALLOW("read"),
    SANDBOX_ALLOW("write"),
    SANDBOX_ALLOW("readv"),
    SANDBOX_ALLOW("writev"),
    SANDBOX_ALLOW("pread64"),
    SANDBOX_ALLOW("pwrite64"),
    SANDBOX_ALLOW("lseek"),
    SANDBOX_ALLOW("close"),
    SANDBOX_ALLOW("fstat"),
    SANDBOX_ALLOW("newfstatat"),
    /* fcntl: descriptor flags and record locks (F_DUPFD to F_SETLKW:
     * LMDB, libzmq, libmicrohttpd, curl), open file description locks,
     * F_DUPFD_CLOEXEC. Not F_SETOWN and F_SETSIG, which would have the
     * kernel signal another process of the same user, nor leases or
     * directory notifications. */
    SANDBOX_ALLOW_IF("fcntl", 1, 0xfffffff8, 0),
    SANDBOX_ALLOW_IF("fcntl", 1, 0xfffffffc, F_OFD_GETLK),
    SANDBOX_ALLOW_IF("fcntl", 1, 0xffffffff, F_DUPFD_CLOEXEC),
    SANDBOX_ALLOW("fsync"),
    SANDBOX_ALLOW("fdatasync"),
    SANDBOX_ALLOW("msync"),
    SANDBOX_ALLOW("poll"),
    SANDBOX_ALLOW("ppoll"),
    SANDBOX_ALLOW("epoll_create1"),
    SANDBOX_ALLOW("epoll_ctl"),
    SANDBOX_ALLOW("epoll_wait"),
    SANDBOX_ALLOW("epoll_pwait"),
    SANDBOX_ALLOW("eventfd2"),
    SANDBOX_ALLOW("accept4"),
    SANDBOX_ALLOW("accept"),
    SANDBOX_ALLOW("recvfrom"),
    SANDBOX_ALLOW("sendto"),
    SANDBOX_ALLOW("recvmsg"),
    SANDBOX_ALLOW("sendmsg"),
    SANDBOX_ALLOW("getsockopt"),
    SANDBOX_ALLOW("setsockopt"),
    SANDBOX_ALLOW("getsockname"),
    SANDBOX_ALLOW("getpeername"),
    SANDBOX_ALLOW("shutdown"),
    /* what libc and libraries try on paths: refused, not fatal */
    SANDBOX_EACCES("open"),
    SANDBOX_EACCES("openat"),
    SANDBOX_EACCES("openat2"),
    SANDBOX_EACCES("creat"),
    SANDBOX_EACCES("access"),
    SANDBOX_EACCES("faccessat"),
    SANDBOX_EACCES("faccessat2"),
    SANDBOX_EACCES("readlink"),
    SANDBOX_EACCES("readlinkat"),
    SANDBOX_EACCES("unlink"),
    SANDBOX_EACCES("unlinkat"),
    SANDBOX_EACCES("rename"),
    SANDBOX_EACCES("renameat"),
    SANDBOX_EACCES("renameat2"),
    SANDBOX_EACCES("mkdir"),
    SANDBOX_EACCES("mkdirat"),
    SANDBOX_EACCES("rmdir"),
    SANDBOX_EACCES("statfs"),
    SANDBOX_EACCES("getdents64"),
    SANDBOX_EACCES("ioctl"),
    SANDBOX_SYSCALLS_END,
};

const struct sandbox_syscall sandbox_syscalls_client[] = {
    SANDBOX_ALLOW_IF("socket", 0, 0xffffffff, AF_UNIX),
    SANDBOX_ALLOW_IF("socket", 0, 0xffffffff, AF_INET),
    SANDBOX_ALLOW_IF("socket", 0, 0xffffffff, AF_INET6),
    SANDBOX_ALLOW("connect"),
    SANDBOX_ALLOW("socketpair"),
    SANDBOX_SYSCALLS_END,
};

/* A token kept in files (SoftHSM2) lists its directory again when it
 * changes (another key imported): refused, every object seemed deleted,
 * the key in use too. Landlock keeps the reads to SandboxReadPaths. */
const struct sandbox_syscall sandbox_syscalls_token_files[] = {
    SANDBOX_OPEN_READ_ONLY("open", 1),
    SANDBOX_OPEN_READ_ONLY("openat", 2),
    SANDBOX_ALLOW("getdents64"),
    SANDBOX_ALLOW("fstatfs"),
    SANDBOX_SYSCALLS_END,
};

/* ioctl stays the common table's EACCES: allowed, a terminal's TIOCSTI
 * would type commands into the shell that started scepd. */
const struct sandbox_syscall sandbox_syscalls_resolver[] = {
    SANDBOX_OPEN_READ_ONLY("open", 1),
    SANDBOX_OPEN_READ_ONLY("openat", 2),
    SANDBOX_ALLOW("readlink"),
    SANDBOX_ALLOW("readlinkat"),
    SANDBOX_ALLOW("access"),
    SANDBOX_ALLOW("faccessat"),
    SANDBOX_ALLOW("faccessat2"),
    SANDBOX_ALLOW("statfs"),
    SANDBOX_ALLOW("fstatfs"),
    SANDBOX_ALLOW("getdents64"),
    SANDBOX_ALLOW("uname"),
    SANDBOX_ALLOW("sendmmsg"),
    SANDBOX_ALLOW("bind"),
    /* NSS modules are loaded on first use: executable mappings too
     * (the loader maps each segment with its final protection), never
     * writable and executable at once, and no mprotect to PROT_EXEC
     * (the common table's rule): an executable mapping holds what a
     * file held or zeros. A table's rules for a call replace an earlier
     * table's: the common mmap rule is repeated. */
    SANDBOX_ALLOW_IF("mmap", 2, PROT_EXEC, 0),
    SANDBOX_ALLOW_IF("mmap", 2, PROT_WRITE | PROT_EXEC, PROT_EXEC),
    SANDBOX_ALLOW_IF("socket", 0, 0xffffffff, AF_UNIX),
    SANDBOX_ALLOW_IF("socket", 0, 0xffffffff, AF_INET),
    SANDBOX_ALLOW_IF("socket", 0, 0xffffffff, AF_INET6),
    SANDBOX_ALLOW_IF("socket", 0, 0xffffffff, AF_NETLINK),
    SANDBOX_ALLOW("connect"),
    SANDBOX_ALLOW("socketpair"),
    SANDBOX_ALLOW("pipe2"),
    SANDBOX_SYSCALLS_END,
};

#ifdef SCEPD_SANITIZER_BUILD
/*
 * Sanitizer builds only (SCEPD_SANITIZE): LeakSanitizer checks at exit
 * from a tracer it clones (not a thread), which makes the process
 * dumpable again, ptrace-attaches every thread and lists them in
 * /proc/self/task; reports read /proc/self/maps. Landlock still limits
 * opens to /proc there (sandbox_enter).
 */
static const struct sandbox_syscall sandbox_syscalls_sanitizer[] = {
    SANDBOX_ALLOW("clone"),
    SANDBOX_ALLOW("prctl"),
    SANDBOX_ALLOW("ptrace"),
    SANDBOX_ALLOW("wait4"),
    SANDBOX_ALLOW("waitid"),
    SANDBOX_ALLOW("open"),
    SANDBOX_ALLOW("openat"),
    SANDBOX_ALLOW("getdents"),
    SANDBOX_ALLOW("getdents64"),
    SANDBOX_ALLOW("readlink"),
    SANDBOX_ALLOW("readlinkat"),
    /* The report's symbolizer looks for llvm-symbolizer on PATH. */
    SANDBOX_ALLOW("stat"),
    SANDBOX_ALLOW("lstat"),
    SANDBOX_ALLOW("newfstatat"),
    SANDBOX_ALLOW("statx"),
    SANDBOX_ALLOW("access"),
    SANDBOX_ALLOW("faccessat"),
    SANDBOX_ALLOW("faccessat2"),
    SANDBOX_ALLOW("getppid"),
    SANDBOX_ALLOW("kill"),
    SANDBOX_ALLOW("pipe2"),
    SANDBOX_ALLOW("sched_getparam"),
    SANDBOX_ALLOW("getrlimit"),
    SANDBOX_ALLOW("prlimit64"),
    SANDBOX_SYSCALLS_END,
};
#endif

/* --- Landlock paths ---------------------------------------------------- */

const struct sandbox_path sandbox_paths_resolver[] = {
    {"/etc/hosts", SANDBOX_FS_READ | SANDBOX_FS_REPLACED},
    {"/etc/resolv.conf", SANDBOX_FS_READ | SANDBOX_FS_REPLACED},
    {"/etc/nsswitch.conf", SANDBOX_FS_READ | SANDBOX_FS_REPLACED},
    {"/etc/host.conf", SANDBOX_FS_READ | SANDBOX_FS_REPLACED},
    {"/etc/gai.conf", SANDBOX_FS_READ | SANDBOX_FS_REPLACED},
    {"/etc/services", SANDBOX_FS_READ | SANDBOX_FS_REPLACED},
    /* Not all of /etc/ssl: Debian keeps TLS and CA keys in private/. */
    {"/etc/ssl/certs", SANDBOX_FS_READ},
    {"/etc/ssl/openssl.cnf", SANDBOX_FS_READ},
    {"/etc/ld.so.cache", SANDBOX_FS_READ},
    {"/run/systemd/resolve", SANDBOX_FS_READ},
    {"/usr/lib/ssl", SANDBOX_FS_READ},
    {"/usr/share/ca-certificates", SANDBOX_FS_READ},
    {"/usr/local/share/ca-certificates", SANDBOX_FS_READ},
    {"/usr/lib", SANDBOX_FS_READ},
    {"/lib", SANDBOX_FS_READ},
    {NULL, 0},
};

int
sandbox_policy_add_path(
    struct sandbox_policy *p, const char *path, unsigned access)
{
	if (p->npaths >= SANDBOX_MAX_PATHS)
		return -1;
	p->paths[p->npaths].path = path;
	p->paths[p->npaths].access = access;
	p->npaths++;
	return 0;
}

int
sandbox_policy_add_resolver(struct sandbox_policy *p)
{
	for (const struct sandbox_path *r = sandbox_paths_resolver;
	     r->path != NULL; r++)
		if (sandbox_policy_add_path(p, r->path, r->access) != 0)
			return -1;
	return 0;
}

/* Each ipc:// endpoint's directory (`whole` 0) or socket (1), added with
 * `access`. */
static int
sandbox_policy_add_ipc(struct sandbox_policy *p, const char *endpoints,
    char *buf, size_t bufsize, int whole, unsigned access)
{
	const char *s = endpoints;
	size_t used = 0;

	while (*s != '\0') {
		size_t len = strcspn(s, " \t");
		const char *slash;

		if (len > 6 && strncmp(s, "ipc://", 6) == 0 &&
		    (slash = memrchr(s + 6, '/', len - 6)) != NULL) {
			size_t n = whole ? len - 6 : (size_t)(slash - (s + 6));

			if (n == 0)
				n = 1; /* ipc:///x.sock */
			if (used + n + 1 > bufsize)
				return -1;
			memcpy(buf + used, s + 6, n);
			buf[used + n] = '\0';
			if (sandbox_policy_add_path(p, buf + used, access) != 0)
				return -1;
			used += n + 1;
		}
		s += len;
		s += strspn(s, " \t");
	}
	return 0;
}

int
sandbox_policy_add_ipc_dirs(
    struct sandbox_policy *p, const char *endpoints, char *buf, size_t bufsize)
{
	return sandbox_policy_add_ipc(
	    p, endpoints, buf, bufsize, 0, SANDBOX_FS_SOCKETS);
}

int
sandbox_policy_add_ipc_peers(
    struct sandbox_policy *p, const char *endpoints, char *buf, size_t bufsize)
{
	return sandbox_policy_add_ipc(
	    p, endpoints, buf, bufsize, 1, SANDBOX_FS_REACH);
}

int
sandbox_endpoints_need_resolver(const char *endpoints)
{
	const char *s = endpoints;

	while (*s != '\0') {
		size_t len = strcspn(s, " \t");

		if (len > 6 && strncmp(s, "tcp://", 6) == 0) {
			const char *host = s + 6, *end = s + len;
			const char *colon = host;
			const char *semi;

			/* tcp://[source;]host:port: the host is what follows
			 * the last ';' up to the last ':'. */
			if ((semi = memrchr(host, ';', end - host)) != NULL)
				host = semi + 1;
			colon = memrchr(host, ':', end - host);
			if (colon == NULL)
				colon = end;
			if (host < colon && host[0] != '[' &&
			    strspn(host, "0123456789.*") <
			        (size_t)(colon - host))
				return 1;
		}
		s += len;
		s += strspn(s, " \t");
	}
	return 0;
}

/* --- the sandbox --------------------------------------------------------- */

#define SANDBOX_MAX_GROUPS 32

struct sandbox {
	int log_only;
	int has_user;
	char *user;
	uid_t uid;
	gid_t gid;
	/* The user's groups in the group database, its own first. */
	gid_t groups[SANDBOX_MAX_GROUPS];
	int ngroups;
};

struct sandbox *
sandbox_new(const struct sandbox_settings *s, const char *file,
    const char *section, const char *service)
{
	struct sandbox *sb = calloc(1, sizeof(*sb));
	int errors = 0;

	if (sb == NULL || (sb->user = strdup(s->user)) == NULL) {
		fprintf(stderr, "%s: out of memory\n", service);
		sandbox_free(sb);
		return NULL;
	}
	if (strcmp(s->mode, "enforce") == 0)
		sb->log_only = 0;
	else if (strcmp(s->mode, "log") == 0)
		sb->log_only = 1;
	else {
		fprintf(stderr,
		    "%s: [%s] Sandbox: '%s' is not enforce or log\n", file,
		    section, s->mode);
		errors++;
	}
	if (s->user[0] != '\0') {
		struct passwd *pw;

		errno = 0;
		if ((pw = getpwnam(s->user)) == NULL) {
			fprintf(stderr, "%s: [%s] User: no user '%s'%s%s\n",
			    file, section, s->user, errno ? ": " : "",
			    errno ? strerror(errno) : "");
			errors++;
		} else if (pw->pw_uid == 0 || pw->pw_gid == 0) {
			fprintf(stderr,
			    "%s: [%s] User: '%s' is root (uid or gid 0); "
			    "name an unprivileged user\n",
			    file, section, s->user);
			errors++;
		} else {
			sb->has_user = 1;
			sb->uid = pw->pw_uid;
			sb->gid = pw->pw_gid;
			/* As initgroups(3) and systemd's User= do: the groups
			 * are how a service reaches the sockets of those it
			 * calls (scripts/users.sh). */
			sb->ngroups = SANDBOX_MAX_GROUPS;
			if (getgrouplist(s->user, pw->pw_gid, sb->groups,
			        &sb->ngroups) < 0) {
				fprintf(stderr,
				    "%s: [%s] User: '%s' is in more than %d "
				    "groups\n",
				    file, section, s->user, SANDBOX_MAX_GROUPS);
				errors++;
				/* It says how many there are: none here. */
				sb->ngroups = 0;
			}
			for (int i = 0; i < sb->ngroups; i++)
				if (sb->groups[i] == 0) {
					fprintf(stderr,
					    "%s: [%s] User: '%s' is in group "
					    "root (gid 0); name an "
					    "unprivileged user\n",
					    file, section, s->user);
					errors++;
					break;
				}
		}
	}
	if (errors) {
		sandbox_free(sb);
		return NULL;
	}
	return sb;
}

void
sandbox_free(struct sandbox *sb)
{
	if (sb == NULL)
		return;
	free(sb->user);
	free(sb);
}

int
sandbox_logging(const struct sandbox *sb)
{
	return sb->log_only;
}

/*
 * Started as root with User set: that user, its groups, and no way back
 * (a saved set-user-ID of 0 would be one).
 */
static int
sandbox_drop_user(struct sandbox *sb)
{
	uid_t r, e, s;
	gid_t rg, eg, sg;
	char groups[SANDBOX_MAX_GROUPS * 12 + 16];
	int death_signal = 0;
	pid_t parent = getppid();

	if (geteuid() != 0) {
		if (sb->has_user && geteuid() != sb->uid)
			log_warn("sandbox: User = %s not applied: not started "
			         "as root (running as uid %d)",
			    sb->user, (int)geteuid());
		return 0;
	}
	if (!sb->has_user) {
		log_warn("sandbox: running as root: set User in the "
		         "configuration to run as an unprivileged user");
		return 0;
	}
	(void)prctl(PR_GET_PDEATHSIG, &death_signal);
	/* The sockets it makes from now: its group's members connect (a
	 * connect needs write permission), others never. */
	umask(0007);
	if (setgroups((size_t)sb->ngroups, sb->groups) != 0 ||
	    setresgid(sb->gid, sb->gid, sb->gid) != 0 ||
	    setresuid(sb->uid, sb->uid, sb->uid) != 0) {
		log_error("sandbox: cannot become user %s: %s", sb->user,
		    strerror(errno));
		return -1;
	}
	if (setuid(0) != -1 || seteuid(0) != -1 || setgid(0) != -1 ||
	    setegid(0) != -1) {
		log_error("sandbox: user %s could become root again", sb->user);
		return -1;
	}
	if (getresuid(&r, &e, &s) != 0 || getresgid(&rg, &eg, &sg) != 0 ||
	    r != sb->uid || e != sb->uid || s != sb->uid || rg != sb->gid ||
	    eg != sb->gid || sg != sb->gid) {
		log_error("sandbox: user %s not fully applied", sb->user);
		return -1;
	}
	/* The kernel clears the parent-death signal (the launcher's, so
	 * that services die with it) on a change of user: set again, and
	 * if the parent died meanwhile, go now. */
	if (death_signal != 0 &&
	    (prctl(PR_SET_PDEATHSIG, death_signal) != 0 ||
	        getppid() != parent)) {
		log_error("sandbox: the launcher is gone");
		return -1;
	}
	groups[0] = '\0';
	for (int i = 0; i < sb->ngroups; i++)
		if (sb->groups[i] != sb->gid) {
			size_t n = strlen(groups);

			snprintf(groups + n, sizeof(groups) - n, "%s%d",
			    n ? "," : ", groups ", (int)sb->groups[i]);
		}
	log_info("sandbox: running as user %s (uid %d, gid %d%s)", sb->user,
	    (int)sb->uid, (int)sb->gid, groups);
	return 0;
}

/*
 * After the change of user, by the kernel's own check (access, as the
 * user now): each directory the service makes its sockets in is within
 * its reach. Else the first directory on the way it cannot pass is
 * named, with the mend (a DIR restored 0700), rather than bind failing
 * at every restart.
 */
static int
sandbox_socket_dirs_reachable(
    const struct sandbox *sb, const struct sandbox_policy *policy)
{
	for (size_t i = 0; i < policy->npaths; i++) {
		const char *dir = policy->paths[i].path;
		char path[PATH_MAX];
		struct stat st;

		if (!(policy->paths[i].access & SANDBOX_FS_SOCKETS) ||
		    !sb->has_user || access(dir, X_OK) == 0 ||
		    snprintf(path, sizeof(path), "%s", dir) >=
		        (int)sizeof(path))
			continue;
		/* "/a/b": "/", "/a", then "/a/b" itself. */
		for (char *p = path;; p++) {
			char c = *p;
			const char *at = p == path ? "/" : path;

			if (c != '/' && c != '\0')
				continue;
			*p = '\0';
			if (access(at, X_OK) != 0 && stat(at, &st) == 0) {
				log_error(
				    "sandbox: User %s cannot pass through %s "
				    "(mode %04o, owner %d:%d) to its sockets "
				    "in %s: chmod o+x %s",
				    sb->user, at,
				    (unsigned)(st.st_mode & 07777),
				    (int)st.st_uid, (int)st.st_gid, dir, at);
				return -1;
			}
			*p = c;
			if (c == '\0')
				break; /* gone meanwhile: bind says so */
		}
	}
	return 0;
}

/*
 * Started as root with User set: each directory the service binds its
 * ipc:// sockets in that does not exist yet is made, the user's, mode
 * 0750 with its group. The user can then make its sockets there, the
 * group's members (the services that call this one: scripts/users.sh)
 * can reach them, and no one else can, not even another service of the
 * one-machine layout. One that exists must be the user's or root's, and
 * no one else's to write: another service's user could otherwise have
 * made it before, put a socket of its own there, or had the sockets
 * made there take its group (setgid). That the user reaches it is
 * checked after the change of user (sandbox_socket_dirs_reachable).
 */
static int
sandbox_make_socket_dirs(
    const struct sandbox *sb, const struct sandbox_policy *policy)
{
	if (geteuid() != 0 || !sb->has_user)
		return 0;
	for (size_t i = 0; i < policy->npaths; i++) {
		const char *path = policy->paths[i].path;
		struct stat st;
		int fd, e = 0, made = 1;

		if (!(policy->paths[i].access & SANDBOX_FS_SOCKETS))
			continue;
		if (mkdir(path, 0700) != 0) {
			if (errno != EEXIST) {
				log_error("sandbox: %s (for User %s's "
				          "sockets): %s",
				    path, sb->user, strerror(errno));
				return -1;
			}
			made = 0;
		}
		/* Through a descriptor: a name replaced meanwhile, or a
		 * symbolic link, is not followed. */
		fd =
		    open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0 || fstat(fd, &st) != 0)
			e = errno;
		else if (made && st.st_uid != 0)
			e = EEXIST; /* not the one made */
		else if (made &&
		    (fchown(fd, sb->uid, sb->gid) != 0 ||
		        fchmod(fd, 0750) != 0))
			e = errno;
		if (fd >= 0)
			close(fd);
		if (e != 0) {
			log_error("sandbox: %s (for User %s's sockets): %s%s",
			    path, sb->user, strerror(e),
			    e == ELOOP || e == ENOTDIR
			        ? " (a symbolic link or not a directory: "
			          "remove it, the service makes it)"
			        : "");
			return -1;
		}
		if (!made &&
		    ((st.st_uid != sb->uid && st.st_uid != 0) ||
		        (st.st_mode & 022) != 0 ||
		        ((st.st_mode & S_ISGID) && st.st_gid != sb->gid))) {
			log_error("sandbox: %s (for User %s's sockets) is "
			          "owner %d:%d, mode %04o: another user could "
			          "put a socket of its own there or have ours "
			          "take its group; make it %s's, mode 0750, or "
			          "remove it (the service makes it)",
			    path, sb->user, (int)st.st_uid, (int)st.st_gid,
			    (unsigned)(st.st_mode & 07777), sb->user);
			return -1;
		}
		if (made)
			log_info("sandbox: made %s, user %s's, mode 0750 "
			         "(group %d)",
			    path, sb->user, (int)sb->gid);
	}
	return 0;
}

/* Landlock's constants, up to ABI 6 (Linux 6.12). */
#define LL_CREATE_RULESET_VERSION (1U << 0)
#define LL_RULE_PATH_BENEATH 1
#define LL_RULE_NET_PORT 2
#define LL_FS_EXECUTE (1ULL << 0)
#define LL_FS_WRITE_FILE (1ULL << 1)
#define LL_FS_READ_FILE (1ULL << 2)
#define LL_FS_READ_DIR (1ULL << 3)
#define LL_FS_REMOVE_FILE (1ULL << 5)
#define LL_FS_MAKE_SOCK (1ULL << 9)
#define LL_FS_ABI1 ((1ULL << 13) - 1) /* EXECUTE .. MAKE_SYM */
#define LL_FS_REFER (1ULL << 13) /* ABI 2 */
#define LL_FS_TRUNCATE (1ULL << 14) /* ABI 3 */
#define LL_FS_IOCTL_DEV (1ULL << 15) /* ABI 5 */
#define LL_FS_FILE \
	(LL_FS_EXECUTE | LL_FS_WRITE_FILE | LL_FS_READ_FILE | LL_FS_TRUNCATE | \
	    LL_FS_IOCTL_DEV)
#define LL_NET_BIND_TCP (1ULL << 0) /* ABI 4 */
#define LL_NET_CONNECT_TCP (1ULL << 1)
#define LL_SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0) /* ABI 6 */
#define LL_SCOPE_SIGNAL (1ULL << 1)

struct ll_ruleset_attr {
	uint64_t handled_access_fs;
	uint64_t handled_access_net;
	uint64_t scoped;
};

struct ll_path_beneath_attr {
	uint64_t allowed_access;
	int32_t parent_fd;
} __attribute__((packed));

struct ll_net_port_attr {
	uint64_t allowed_access;
	uint64_t port;
};

/* Adds the rule for one path; 0 also when the path does not exist. */
static int
sandbox_landlock_path(int ruleset, uint64_t handled,
    const struct sandbox_path *p, char *shown, size_t shownlen)
{
	struct ll_path_beneath_attr attr;
	struct stat st;
	size_t n = strlen(shown);
	int fd;

	if (!(p->access & (SANDBOX_FS_READ | SANDBOX_FS_SOCKETS)))
		return 0; /* only checked (SANDBOX_FS_OWN) */
	if ((fd = open(p->path, O_PATH | O_CLOEXEC)) < 0) {
		if (errno == ENOENT)
			return 0;
		log_error(
		    "sandbox: Landlock: %s: %s", p->path, strerror(errno));
		return -1;
	}
	memset(&attr, 0, sizeof(attr));
	if (p->access & SANDBOX_FS_READ)
		attr.allowed_access |= LL_FS_READ_FILE | LL_FS_READ_DIR;
	if (p->access & SANDBOX_FS_SOCKETS)
		attr.allowed_access |= LL_FS_MAKE_SOCK | LL_FS_REMOVE_FILE;
	if (fstat(fd, &st) == 0 && !S_ISDIR(st.st_mode))
		attr.allowed_access &= LL_FS_FILE;
	attr.allowed_access &= handled;
	attr.parent_fd = fd;
	if (attr.allowed_access != 0 &&
	    syscall(SYS_landlock_add_rule, ruleset, LL_RULE_PATH_BENEATH, &attr,
	        0) != 0) {
		log_error(
		    "sandbox: Landlock: %s: %s", p->path, strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	if (n + 1 < shownlen)
		snprintf(shown + n, shownlen - n, "%s%s (%s%s%s)",
		    n ? ", " : "", p->path,
		    (p->access & SANDBOX_FS_READ) ? "read" : "",
		    (p->access & SANDBOX_FS_READ) &&
		            (p->access & SANDBOX_FS_SOCKETS)
		        ? ", "
		        : "",
		    (p->access & SANDBOX_FS_SOCKETS) ? "sockets" : "");
	return 0;
}

/*
 * The directories whose files replace those of SANDBOX_FS_REPLACED paths
 * (`dirs`, `n` of them, each added once): a rule covers the file found
 * at start, and /etc/hosts edited with sed -i or an editor that writes a
 * new file, or a resolv.conf that resolvconf or NetworkManager rewrites
 * behind its link, was then unreadable: names stopped resolving, the
 * service's calls (and a webhook's) timing out with no word of why. A
 * link's target's directory always; the file's own directory (/etc) only
 * under User, where file permissions guard the rest of it
 * (/etc/shadow, /etc/ssl/private); as root a replaced file in /etc needs
 * the service restarted (README "Sandbox").
 */
static void
sandbox_replaced_dirs(const struct sandbox *sb,
    const struct sandbox_policy *policy, char dirs[][PATH_MAX], size_t *n,
    size_t max)
{
	char target[PATH_MAX], *slash;
	struct stat st;

	for (size_t i = 0; i < policy->npaths && *n + 2 <= max; i++) {
		const char *path = policy->paths[i].path;
		const char *found[2] = {NULL, NULL};
		char own[PATH_MAX];

		if (!(policy->paths[i].access & SANDBOX_FS_REPLACED))
			continue;
		if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode) &&
		    realpath(path, target) != NULL &&
		    (slash = strrchr(target, '/')) != NULL && slash != target) {
			*slash = '\0';
			found[0] = target;
		}
		snprintf(own, sizeof(own), "%s", path);
		if (sb->has_user && (slash = strrchr(own, '/')) != NULL &&
		    slash != own) {
			*slash = '\0';
			found[1] = own;
		}
		for (size_t f = 0; f < 2; f++) {
			size_t k = 0;

			if (found[f] == NULL)
				continue;
			while (k < *n && strcmp(dirs[k], found[f]) != 0)
				k++;
			if (k == *n)
				snprintf(
				    dirs[(*n)++], PATH_MAX, "%s", found[f]);
		}
	}
}

#ifdef SCEPD_SANITIZER_BUILD
/*
 * Sanitizer builds: LeakSanitizer's thread list and maps in /proc, and
 * what its symbolizer reads for a report (the executable's directory,
 * the libraries), read-only. The rest of the file system stays closed.
 */
static int
sandbox_landlock_sanitizer(
    int ruleset, uint64_t handled, char *shown, size_t shownlen)
{
	static const char *option_vars[] = {
	    "LSAN_OPTIONS", "ASAN_OPTIONS", "UBSAN_OPTIONS"};
	static char exe[4096], suppressions[3][4096];
	struct sandbox_path paths[] = {{"/proc", SANDBOX_FS_READ},
	    {"/usr/lib", SANDBOX_FS_READ}, {"/lib", SANDBOX_FS_READ},
	    {NULL, SANDBOX_FS_READ}, {NULL, SANDBOX_FS_READ},
	    {NULL, SANDBOX_FS_READ}, {NULL, SANDBOX_FS_READ}};
	ssize_t n;
	char *slash;

	if ((n = readlink("/proc/self/exe", exe, sizeof(exe) - 1)) > 0) {
		exe[n] = '\0';
		if ((slash = strrchr(exe, '/')) != NULL && slash != exe) {
			*slash = '\0';
			paths[3].path = exe;
		}
	}
	/*
	 * LeakSanitizer reads its suppressions file only when it reports,
	 * at exit, long after the sandbox closed the file system.
	 */
	for (size_t v = 0; v < 3; v++) {
		const char *options = getenv(option_vars[v]), *at;
		size_t len;

		/* The option itself, not print_suppressions= */
		for (at = options; at != NULL; at++) {
			if ((at = strstr(at, "suppressions=")) == NULL)
				break;
			if (at == options || at[-1] == ':' || at[-1] == ' ')
				break;
		}
		if (at == NULL)
			continue;
		at += strlen("suppressions=");
		len = strcspn(at, ": ");
		if (len == 0 || len >= sizeof(suppressions[v]))
			continue;
		memcpy(suppressions[v], at, len);
		suppressions[v][len] = '\0';
		paths[4 + v].path = suppressions[v];
	}
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
		if (paths[i].path != NULL &&
		    sandbox_landlock_path(
		        ruleset, handled, &paths[i], shown, shownlen) != 0)
			return -1;
	return 0;
}
#endif

/* Landlock where the kernel has it; not having it is logged, not fatal. */
static int
sandbox_landlock(struct sandbox *sb, const struct sandbox_policy *policy)
{
	struct ll_ruleset_attr attr;
	static char replaced[8][PATH_MAX];
	size_t nreplaced = 0;
	char shown[1024] = "";
	int abi, ruleset = -1, rc = -1;

	abi = (int)syscall(
	    SYS_landlock_create_ruleset, NULL, 0, LL_CREATE_RULESET_VERSION);
	if (abi < 0) {
		log_warn("sandbox: Landlock is not available (%s): files are "
		         "limited by the seccomp filter only",
		    strerror(errno));
		return 0;
	}
	memset(&attr, 0, sizeof(attr));
	attr.handled_access_fs = LL_FS_ABI1;
	if (abi >= 2)
		attr.handled_access_fs |= LL_FS_REFER;
	if (abi >= 3)
		attr.handled_access_fs |= LL_FS_TRUNCATE;
	if (abi >= 5)
		attr.handled_access_fs |= LL_FS_IOCTL_DEV;
	if (abi >= 4 && policy->restrict_tcp)
		attr.handled_access_net = LL_NET_BIND_TCP | LL_NET_CONNECT_TCP;
	if (abi >= 6)
		attr.scoped = LL_SCOPE_ABSTRACT_UNIX_SOCKET | LL_SCOPE_SIGNAL;
	if ((ruleset = (int)syscall(
	         SYS_landlock_create_ruleset, &attr, sizeof(attr), 0)) < 0) {
		log_error("sandbox: Landlock ruleset: %s", strerror(errno));
		goto out;
	}
	for (size_t i = 0; i < policy->npaths; i++)
		if (sandbox_landlock_path(ruleset, attr.handled_access_fs,
		        &policy->paths[i], shown, sizeof(shown)) != 0)
			goto out;
	sandbox_replaced_dirs(sb, policy, replaced, &nreplaced,
	    sizeof(replaced) / sizeof(replaced[0]));
	for (size_t i = 0; i < nreplaced; i++) {
		struct sandbox_path dir = {replaced[i], SANDBOX_FS_READ};

		if (sandbox_landlock_path(ruleset, attr.handled_access_fs, &dir,
		        shown, sizeof(shown)) != 0)
			goto out;
	}
#ifdef SCEPD_SANITIZER_BUILD
	if (sandbox_landlock_sanitizer(
	        ruleset, attr.handled_access_fs, shown, sizeof(shown)) != 0)
		goto out;
#endif
	if (attr.handled_access_net != 0 && policy->tcp_bind_port > 0) {
		struct ll_net_port_attr net = {
		    LL_NET_BIND_TCP, (uint64_t)policy->tcp_bind_port};

		if (syscall(SYS_landlock_add_rule, ruleset, LL_RULE_NET_PORT,
		        &net, 0) != 0) {
			log_error("sandbox: Landlock: TCP port %d: %s",
			    policy->tcp_bind_port, strerror(errno));
			goto out;
		}
	}
	if (syscall(SYS_landlock_restrict_self, ruleset, 0) != 0) {
		log_error("sandbox: Landlock: %s", strerror(errno));
		goto out;
	}
	log_info("sandbox: Landlock ABI %d: %s%s%s", abi,
	    shown[0] ? "files only beneath " : "no file access", shown,
	    attr.handled_access_net == 0    ? ""
	        : policy->tcp_bind_port > 0 ? "; TCP: bind its port only"
	                                    : "; TCP: none");
	rc = 0;
out:
	if (ruleset >= 0)
		close(ruleset);
	return rc;
}

int
sandbox_no_dumps(void)
{
	struct rlimit none = {0, 0};

	return setrlimit(RLIMIT_CORE, &none) == 0 &&
	        prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0
	    ? 0
	    : -1;
}

/* How many entries beneath an own path are looked at, and how deep. */
#define SANDBOX_OWN_ENTRIES 1024
#define SANDBOX_OWN_DEPTH 3

/* nftw's callback has no argument of its own; sandbox_enter runs before
 * any thread of the service. */
static int sandbox_own_seen, sandbox_own_errno;
static char sandbox_own_unreadable[PATH_MAX];

static int
sandbox_own_entry(
    const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	int want = type == FTW_D || type == FTW_DNR ? R_OK | X_OK : R_OK;

	(void)st;
	if (++sandbox_own_seen > SANDBOX_OWN_ENTRIES)
		return FTW_STOP;
	/* A link is read through (access follows it); one to nothing is
	 * the module's business. */
	if (type != FTW_SLN && access(path, want) != 0) {
		sandbox_own_errno = errno;
		snprintf(sandbox_own_unreadable, sizeof(sandbox_own_unreadable),
		    "%s", path);
		return FTW_STOP;
	}
	if (type == FTW_D && ftw->level >= SANDBOX_OWN_DEPTH)
		return FTW_SKIP_SUBTREE;
	return FTW_CONTINUE;
}

/*
 * After the change of user: the service's own files it reads after
 * start (the frontend's AdminPasswordFile, a token's files) are readable
 * by its user, else it stops now with the mend, rather than fail at
 * every admin login or every signature. Root's files of mode 0600 left
 * by a first start as root, a SoftHSM2 token made as root. A path that
 * does not exist is skipped, as Landlock skips it; one the user cannot
 * reach is not.
 */
static int
sandbox_own_readable(
    const struct sandbox *sb, const struct sandbox_policy *policy)
{
	const char *user = sb->has_user ? sb->user : "this user";

	for (size_t i = 0; i < policy->npaths; i++) {
		const struct sandbox_path *p = &policy->paths[i];
		char real[PATH_MAX];
		int rc;

		if (!(p->access & SANDBOX_FS_OWN))
			continue;
		/* By what a link names: nftw does not follow the first. */
		if (realpath(p->path, real) == NULL) {
			if (errno == ENOENT)
				continue;
			sandbox_own_errno = errno;
			snprintf(sandbox_own_unreadable,
			    sizeof(sandbox_own_unreadable), "%s", p->path);
		} else {
			sandbox_own_seen = sandbox_own_errno = 0;
			rc = nftw(real, sandbox_own_entry, 8,
			    FTW_PHYS | FTW_ACTIONRETVAL);
			if (rc == -1 && sandbox_own_errno == 0) {
				log_error(
				    "sandbox: %s: %s", real, strerror(errno));
				return -1;
			}
			if (sandbox_own_seen > SANDBOX_OWN_ENTRIES)
				log_info("sandbox: %s: the first %d entries "
				         "beneath it checked readable by %s",
				    p->path, SANDBOX_OWN_ENTRIES, user);
		}
		if (sandbox_own_errno == 0)
			continue;
		log_error("sandbox: %s cannot read %s, which it reads after "
		          "start (%s): give it to that user (chown -R %s %s) "
		          "or to a group of the user's",
		    user, sandbox_own_unreadable, strerror(sandbox_own_errno),
		    sb->has_user ? sb->user : "USER", p->path);
		return -1;
	}
	return 0;
}

/*
 * After the change of user: the sockets of the services it calls are
 * within its reach (the directory searchable, the socket writable: a
 * connect needs both). Else its calls would only time out, libzmq
 * retrying the refused connect in silence: a user left out of the
 * group of a service it calls (scripts/users.sh) stops it now, saying
 * so. A directory not made yet (that service not started) is passed.
 */
static int
sandbox_peers_reachable(
    const struct sandbox *sb, const struct sandbox_policy *policy)
{
	for (size_t i = 0; i < policy->npaths; i++) {
		const char *sock = policy->paths[i].path;
		char dir[PATH_MAX];
		struct stat st;
		const char *slash = strrchr(sock, '/');
		int e = 0;

		if (!(policy->paths[i].access & SANDBOX_FS_REACH) ||
		    slash == NULL)
			continue;
		snprintf(dir, sizeof(dir), "%.*s",
		    (int)(slash == sock ? 1 : slash - sock), sock);
		if (access(dir, X_OK) != 0)
			e = errno == ENOENT ? 0 : errno;
		else if (lstat(sock, &st) == 0 && access(sock, W_OK) != 0)
			e = errno;
		if (e == 0)
			continue;
		log_error("sandbox: %s cannot reach %s, the socket of a "
		          "service it calls (%s): put it in that service's "
		          "group (scripts/users.sh does for the one-machine "
		          "users)",
		    sb->has_user ? sb->user : "this user", sock, strerror(e));
		return -1;
	}
	return 0;
}

int
sandbox_enter(struct sandbox *sb, const struct sandbox_policy *policy)
{
	if (sandbox_make_socket_dirs(sb, policy) != 0 ||
	    sandbox_drop_user(sb) != 0 ||
	    sandbox_socket_dirs_reachable(sb, policy) != 0 ||
	    sandbox_own_readable(sb, policy) != 0 ||
	    sandbox_peers_reachable(sb, policy) != 0)
		return -1;
	/* Again: a user dropped may have made the process dumpable. */
	if (sandbox_no_dumps() != 0) {
		log_error("sandbox: no core files: %s", strerror(errno));
		return -1;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
		log_error("sandbox: PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
		return -1;
	}
	if (sb->log_only) {
		log_warn("sandbox: Sandbox = log: Landlock is not applied and "
		         "the seccomp filter will only log what it would "
		         "refuse (audit records in dmesg)");
		return 0;
	}
	return sandbox_landlock(sb, policy);
}

/* The process's scheduling policy, SCHED_RESET_ON_FORK aside. */
static uint64_t
sandbox_own_policy(void)
{
	int policy = sched_getscheduler(0);

	return policy < 0 ? SCHED_OTHER
	                  : (uint64_t)(policy & ~SCHED_RESET_ON_FORK);
}

static uint32_t
sandbox_seccomp_action(const struct sandbox *sb, enum sandbox_action a)
{
	switch (a) {
	case SANDBOX_ALLOW:
		return SCMP_ACT_ALLOW;
	case SANDBOX_ENOSYS:
		return SCMP_ACT_ERRNO(ENOSYS);
	case SANDBOX_EACCES:
		return sb->log_only ? SCMP_ACT_LOG : SCMP_ACT_ERRNO(EACCES);
	case SANDBOX_KILL:
		break;
	}
	return sb->log_only ? SCMP_ACT_LOG : SCMP_ACT_KILL_PROCESS;
}

/* Whether a later table than `table` names the same system call. */
static int
sandbox_overridden(
    const struct sandbox_syscall *const *tables, size_t table, int nr)
{
	for (size_t t = table + 1; tables[t] != NULL; t++)
		for (const struct sandbox_syscall *r = tables[t];
		     r->name != NULL; r++)
			if (seccomp_syscall_resolve_name(r->name) == nr)
				return 1;
	return 0;
}

int
sandbox_lock(struct sandbox *sb, const struct sandbox_policy *policy)
{
	const struct sandbox_syscall *tables[16];
	scmp_filter_ctx ctx = NULL;
	size_t n = 0, allowed = 0;
	int e, rc = -1;

	for (size_t i = 0; policy->syscalls[i] != NULL; i++) {
		if (n + 2 >= sizeof(tables) / sizeof(tables[0])) {
			log_error("sandbox: too many system call tables");
			return -1;
		}
		tables[n++] = policy->syscalls[i];
	}
#ifdef SCEPD_SANITIZER_BUILD
	tables[n++] = sandbox_syscalls_sanitizer;
#endif
	tables[n] = NULL;
	if ((ctx = seccomp_init(sandbox_seccomp_action(sb, SANDBOX_KILL))) ==
	    NULL) {
		/* In log mode nothing is refused either way: a kernel (or
		 * valgrind) without seccomp only means nothing is logged. */
		if (sb->log_only) {
			log_warn("sandbox: Sandbox = log: seccomp is not "
			         "available here: no system call is logged");
			return 0;
		}
		log_error("sandbox: seccomp_init failed");
		return -1;
	}
	/* Every thread (libzmq's, the workers) gets the filter. */
	if ((e = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1)) != 0) {
		log_error("sandbox: seccomp thread sync: %s", strerror(-e));
		goto out;
	}
	for (size_t t = 0; tables[t] != NULL; t++)
		for (const struct sandbox_syscall *r = tables[t];
		     r->name != NULL; r++) {
			int nr = seccomp_syscall_resolve_name(r->name);
			uint32_t action = sandbox_seccomp_action(sb, r->action);
			uint64_t value;

			/* libseccomp refuses rules that say the default. */
			if (nr == __NR_SCMP_ERROR ||
			    sandbox_overridden(tables, t, nr) ||
			    action == sandbox_seccomp_action(sb, SANDBOX_KILL))
				continue;
			value = r->value == SANDBOX_OWN_PID ? (uint64_t)getpid()
			    : r->value == SANDBOX_OWN_POLICY
			    ? sandbox_own_policy()
			    : r->value;
			if (r->arg < 0)
				e = seccomp_rule_add(ctx, action, nr, 0);
			else if (r->mask == ~0ULL)
				e = seccomp_rule_add(ctx, action, nr, 1,
				    SCMP_CMP((unsigned)r->arg, SCMP_CMP_EQ,
				        value, 0));
			else
				e = seccomp_rule_add(ctx, action, nr, 1,
				    SCMP_CMP((unsigned)r->arg,
				        SCMP_CMP_MASKED_EQ, r->mask, value));
			if (e != 0) {
				log_error("sandbox: seccomp rule for %s: %s",
				    r->name, strerror(-e));
				goto out;
			}
			if (r->action == SANDBOX_ALLOW)
				allowed++;
		}
	if ((e = seccomp_load(ctx)) != 0) {
		log_error("sandbox: cannot load the seccomp filter: %s",
		    strerror(-e));
		goto out;
	}
	if (sb->log_only)
		log_warn("sandbox: seccomp filter loaded in log mode: system "
		         "calls it would refuse are only logged");
	else
		log_info("sandbox: seccomp filter loaded (%zu rules allow); "
		         "file opens get EACCES, any other system call kills "
		         "the process",
		    allowed);
	rc = 0;
out:
	seccomp_release(ctx);
	return rc;
}
