/*
 * lib/sandbox.c: the helpers the services build their policies with, the
 * checks of Sandbox and User, and the mechanism itself in forked children:
 * a file open refused with EACCES, a socket, exec or fork killing the
 * process by SIGSYS, threads still allowed, a thread started before the
 * filter filtered too (thread sync), and log mode letting everything
 * through.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <pwd.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <seccomp.h>

#include "sandbox.h"

static void
test_need_resolver(void **state)
{
	(void)state;
	assert_int_equal(
	    sandbox_endpoints_need_resolver("ipc://run/ca.sock"), 0);
	assert_int_equal(
	    sandbox_endpoints_need_resolver("tcp://10.0.0.30:5001"), 0);
	assert_int_equal(sandbox_endpoints_need_resolver("tcp://*:5001"), 0);
	assert_int_equal(
	    sandbox_endpoints_need_resolver("tcp://[::1]:5001"), 0);
	assert_int_equal(sandbox_endpoints_need_resolver("tcp://ca:5001"), 1);
	assert_int_equal(sandbox_endpoints_need_resolver(
	                     "tcp://10.0.0.1:1 tcp://ra.example.com:5002"),
	    1);
	assert_int_equal(
	    sandbox_endpoints_need_resolver("tcp://10.0.0.2;10.0.0.1:1"), 0);
	assert_int_equal(sandbox_endpoints_need_resolver(""), 0);
}

static void
test_ipc_dirs(void **state)
{
	struct sandbox_policy p;
	char buf[64];

	(void)state;
	memset(&p, 0, sizeof(p));
	assert_int_equal(sandbox_policy_add_ipc_dirs(&p,
	                     "ipc:///a/run/ca.sock tcp://x:1 ipc:///top.sock",
	                     buf, sizeof(buf)),
	    0);
	assert_int_equal(p.npaths, 2);
	assert_string_equal(p.paths[0].path, "/a/run");
	assert_int_equal(p.paths[0].access, SANDBOX_FS_SOCKETS);
	assert_string_equal(p.paths[1].path, "/");
	/* Too small a buffer is an error, not a truncated path. */
	memset(&p, 0, sizeof(p));
	assert_int_equal(sandbox_policy_add_ipc_dirs(
	                     &p, "ipc:///a/very/long/directory/x.sock", buf, 8),
	    -1);
}

static void
test_settings(void **state)
{
	struct sandbox_settings s = {"maybe", ""};
	struct sandbox *sb;

	(void)state;
	assert_null(sandbox_new(&s, "f.conf", "ca", "test"));
	s.mode = "enforce";
	s.user = "root";
	assert_null(sandbox_new(&s, "f.conf", "ca", "test"));
	s.user = "no-such-user-of-scepd";
	assert_null(sandbox_new(&s, "f.conf", "ca", "test"));
	s.user = "";
	assert_non_null(sb = sandbox_new(&s, "f.conf", "ca", "test"));
	assert_int_equal(sandbox_logging(sb), 0);
	sandbox_free(sb);
	s.mode = "log";
	assert_non_null(sb = sandbox_new(&s, "f.conf", "ca", "test"));
	assert_int_equal(sandbox_logging(sb), 1);
	sandbox_free(sb);
	if (getpwnam("nobody") != NULL) {
		s.user = "nobody";
		assert_non_null(sb = sandbox_new(&s, "f.conf", "ca", "test"));
		sandbox_free(sb);
	}
}

/* --- the mechanism, in children -------------------------------------- */

static int pipe_fds[2];

static void *
thread_socket(void *arg)
{
	char c;

	(void)arg;
	if (read(pipe_fds[0], &c, 1) == 1)
		(void)socket(AF_INET, SOCK_STREAM, 0);
	return NULL;
}

static void *
thread_nothing(void *arg)
{
	return arg;
}

enum what {
	OPEN,
	OPEN_ALLOWED,
	SOCKET,
	EXEC,
	FORK,
	THREAD,
	OLD_THREAD,
	ANON_MEMORY, /* memory as malloc and threads take it */
	SORT, /* glibc's first qsort of 1 KiB asks sysinfo for the RAM */
	MAP_WX_ANON, /* writable code: shellcode's way */
	MAP_WX_FILE, /* the same over a file */
	MPROTECT_EXEC,
	MAP_EXEC_FILE, /* a library's segment, as the loader maps it */
	SIGNAL_SELF, /* raise(): tgkill to its own thread */
	SIGNAL_OTHER, /* tgkill to another process */
	READ_TRUST_STORE, /* the resolver's paths: certificates, not keys */
	WRITE_WITHOUT_LANDLOCK, /* the filter alone keeps opens read-only */
};
static char scratch_dir[64]; /* WRITE_WITHOUT_LANDLOCK's files */
static int no_landlock(void);
static int with_resolver_paths; /* in_sandbox_with adds them */
static int exec_file_fd = -1; /* opened before the filter */
static void *rw_page; /* mapped before the filter */
static pid_t parent_pid; /* the test's, for SIGNAL_OTHER */

static int
cmp_long(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;

	return (x > y) - (x < y);
}

static int
child_main(enum what what)
{
	pthread_t t;
	pid_t pid;
	int fd;

	switch (what) {
	case OPEN:
		fd = open("/etc/passwd", O_RDONLY | O_CLOEXEC);
		return fd < 0 && errno == EACCES ? 0 : 1;
	case OPEN_ALLOWED:
		if ((fd = open("/etc/passwd", O_RDONLY | O_CLOEXEC)) < 0)
			return 1;
		close(fd);
		if ((fd = socket(AF_INET, SOCK_STREAM, 0)) < 0)
			return 2;
		close(fd);
		return 0;
	case SOCKET:
		(void)socket(AF_INET, SOCK_STREAM, 0);
		return 1;
	case EXEC:
		execl("/bin/true", "true", (char *)NULL);
		return 1;
	case FORK:
		if ((pid = fork()) == 0)
			_exit(0);
		return 1;
	case THREAD:
		if (pthread_create(&t, NULL, thread_nothing, NULL) != 0)
			return 1;
		pthread_join(t, NULL);
		return 0;
	case OLD_THREAD:
		/* Started before the filter (below): filtered all the same. */
		if (write(pipe_fds[1], "x", 1) != 1)
			return 1;
		sleep(5);
		return 1;
	case ANON_MEMORY: {
		void *m = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		return m == MAP_FAILED;
	}
	case SORT: {
		long v[512];

		for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
			v[i] = (long)(i * 7919 % 512);
		qsort(v, sizeof(v) / sizeof(v[0]), sizeof(v[0]), cmp_long);
		return v[0] != 0 || v[511] != 511;
	}
	case MAP_WX_ANON:
		(void)mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		return 1;
	case MAP_WX_FILE:
		(void)mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
		    MAP_PRIVATE, exec_file_fd, 0);
		return 1;
	case MPROTECT_EXEC:
		(void)mprotect(rw_page, 4096, PROT_READ | PROT_EXEC);
		return 1;
	case SIGNAL_SELF:
		signal(SIGUSR1, SIG_IGN);
		return raise(SIGUSR1) != 0;
	case SIGNAL_OTHER:
		(void)syscall(SYS_tgkill, parent_pid, parent_pid, 0);
		return 1;
	case MAP_EXEC_FILE:
		return mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE,
		           exec_file_fd, 0) == MAP_FAILED;
	case READ_TRUST_STORE:
		if ((fd = open("/etc/ssl/certs", O_RDONLY | O_DIRECTORY)) < 0)
			return 1;
		close(fd);
		if ((fd = open("/etc/hosts", O_RDONLY)) < 0)
			return 2;
		close(fd);
		/* Debian keeps TLS (and often CA) keys here. */
		fd = open("/etc/ssl/private", O_RDONLY | O_DIRECTORY);
		if (fd >= 0 || errno != EACCES)
			return 3;
		fd = open("/usr/lib/ssl/private", O_RDONLY | O_DIRECTORY);
		return fd < 0 && errno == EACCES ? 0 : 4;
	case WRITE_WITHOUT_LANDLOCK: {
		char path[128];
		int tty;

		snprintf(path, sizeof(path), "%s/existing", scratch_dir);
		if ((fd = open(path, O_RDONLY)) < 0)
			return 1; /* no Landlock: readable anywhere */
		close(fd);
		if (open(path, O_RDWR) >= 0 || errno != EACCES)
			return 2;
		if (open(path, O_WRONLY | O_TRUNC) >= 0 || errno != EACCES)
			return 3;
		if (open(path, O_RDONLY | O_APPEND) >= 0 || errno != EACCES)
			return 4;
		snprintf(path, sizeof(path), "%s/new", scratch_dir);
		if (open(path, O_WRONLY | O_CREAT, 0600) >= 0 ||
		    errno != EACCES)
			return 5;
		if (open(scratch_dir, O_WRONLY | O_TMPFILE, 0600) >= 0 ||
		    errno != EACCES)
			return 6;
		if ((fd = open(scratch_dir, O_RDONLY | O_DIRECTORY)) < 0)
			return 7;
		close(fd);
		/* No ioctl: TIOCSTI would type into the shell's terminal. */
		tty = open("/dev/null", O_RDONLY);
		if (tty < 0 || ioctl(tty, FIONREAD, &fd) == 0 ||
		    errno != EACCES)
			return 8;
		return 0;
	}
	}
	return 1;
}

/* The wait status of a child that sandboxed itself with `tables`, no
 * Landlock paths, in `mode`, then did `what`. */
static int
in_sandbox_with(const struct sandbox_syscall *const *tables, const char *mode,
    enum what what)
{
	struct sandbox_settings s = {(char *)mode, ""};
	struct sandbox_policy p;
	struct sandbox *sb;
	pthread_t t;
	pid_t pid;
	int status = -1;

	assert_int_equal(pipe(pipe_fds), 0);
	parent_pid = getpid();
	fflush(NULL);
	if ((pid = fork()) == 0) {
		memset(&p, 0, sizeof(p));
		p.syscalls = tables;
		if (with_resolver_paths && sandbox_policy_add_resolver(&p) != 0)
			_exit(103);
		if (what == WRITE_WITHOUT_LANDLOCK && no_landlock() != 0)
			_exit(104);
		if ((sb = sandbox_new(&s, "test", "test", "test")) == NULL ||
		    sandbox_enter(sb, &p) != 0)
			_exit(100);
		if (what == OLD_THREAD &&
		    pthread_create(&t, NULL, thread_socket, NULL) != 0)
			_exit(101);
		if (sandbox_lock(sb, &p) != 0)
			_exit(102);
		_exit(child_main(what));
	}
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	close(pipe_fds[0]);
	close(pipe_fds[1]);
	return status;
}

/* The same with the common table alone. */
static int
in_sandbox(const char *mode, enum what what)
{
	static const struct sandbox_syscall *const tables[] = {
	    sandbox_syscalls_common, NULL};

	return in_sandbox_with(tables, mode, what);
}

/* As Docker's default seccomp profile and kernels before 5.13 leave a
 * process: no Landlock (sandbox_enter logs it and goes on). */
static int
no_landlock(void)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	int rc = -1;

	if (ctx != NULL &&
	    seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS),
	        SCMP_SYS(landlock_create_ruleset), 0) == 0 &&
	    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
	    seccomp_load(ctx) == 0)
		rc = 0;
	seccomp_release(ctx);
	return rc;
}

static int
landlock_available(void)
{
	return syscall(SYS_landlock_create_ruleset, NULL, 0, 1) > 0;
}

static void
assert_killed(int status)
{
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGSYS);
}

static void
test_enforce(void **state)
{
	int status;

	(void)state;
	/* Sanitizer builds allow opens (LeakSanitizer reads /proc) and
	 * leave refusing /etc/passwd to Landlock. */
#ifdef SCEPD_SANITIZER_BUILD
	if (landlock_available())
#endif
	{
		status = in_sandbox("enforce", OPEN);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	assert_killed(in_sandbox("enforce", SOCKET));
	assert_killed(in_sandbox("enforce", EXEC));
#ifndef SCEPD_SANITIZER_BUILD
	/* Sanitizer builds allow clone: LeakSanitizer's tracer. */
	assert_killed(in_sandbox("enforce", FORK));
#endif
	status = in_sandbox("enforce", THREAD);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_killed(in_sandbox("enforce", OLD_THREAD));
	/* OpenSSL sorts a name's multi-valued RDN and a CRL's entries with
	 * qsort: a request with 43 values in one RDN killed the RA. */
	status = in_sandbox("enforce", SORT);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	/* Signals to its own threads only. */
	status = in_sandbox("enforce", SIGNAL_SELF);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_killed(in_sandbox("enforce", SIGNAL_OTHER));
	(void)landlock_available;
}

/* The RA's and frontend's tables when their endpoints are host names:
 * NSS may load a module, but no code is made in memory. */
static void
test_resolver_no_new_code(void **state)
{
	static const struct sandbox_syscall *const tables[] = {
	    sandbox_syscalls_common, sandbox_syscalls_client,
	    sandbox_syscalls_resolver, NULL};
	int status;

	(void)state;
	exec_file_fd = open("/bin/true", O_RDONLY | O_CLOEXEC);
	assert_true(exec_file_fd >= 0);
	rw_page = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(rw_page != MAP_FAILED);
	status = in_sandbox_with(tables, "enforce", ANON_MEMORY);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_killed(in_sandbox_with(tables, "enforce", MAP_WX_ANON));
	assert_killed(in_sandbox_with(tables, "enforce", MAP_WX_FILE));
	assert_killed(in_sandbox_with(tables, "enforce", MPROTECT_EXEC));
	status = in_sandbox_with(tables, "enforce", MAP_EXEC_FILE);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	/* The common table alone maps no file executable either. */
	assert_killed(in_sandbox("enforce", MAP_EXEC_FILE));
	close(exec_file_fd);
	exec_file_fd = -1;
	munmap(rw_page, 4096);
}

/* The resolver's files (a webhook's trust store, a host name's lookup)
 * are readable, the keys beside them in /etc/ssl are not. */
static void
test_resolver_paths_hold_no_keys(void **state)
{
	static const struct sandbox_syscall *const tables[] = {
	    sandbox_syscalls_common, sandbox_syscalls_client,
	    sandbox_syscalls_resolver, NULL};
	struct stat st;
	int status;

	(void)state;
	if (!landlock_available() || stat("/etc/ssl/private", &st) != 0 ||
	    stat("/etc/ssl/certs", &st) != 0)
		skip(); /* no Landlock, or no keys' directory to keep out */
	with_resolver_paths = 1;
	status = in_sandbox_with(tables, "enforce", READ_TRUST_STORE);
	with_resolver_paths = 0;
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void
test_log(void **state)
{
	int status;

	(void)state;
	status = in_sandbox("log", OPEN_ALLOWED);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* Where Landlock is missing, the resolver's opens (and the frontend's,
 * and a token module's) still only read, and no ioctl is made. */
static void
test_opens_read_only_without_landlock(void **state)
{
	static const struct sandbox_syscall *const tables[] = {
	    sandbox_syscalls_common, sandbox_syscalls_client,
	    sandbox_syscalls_resolver, NULL};
	char path[128];
	int status, fd;

	(void)state;
#ifdef SCEPD_SANITIZER_BUILD
	/* Its table lets LeakSanitizer open whatever it wants, last. */
	skip();
#endif
	snprintf(scratch_dir, sizeof(scratch_dir), "/tmp/scepd-sandbox.XXXXXX");
	assert_non_null(mkdtemp(scratch_dir));
	snprintf(path, sizeof(path), "%s/existing", scratch_dir);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "x", 1), 1);
	close(fd);
	status = in_sandbox_with(tables, "enforce", WRITE_WITHOUT_LANDLOCK);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	unlink(path);
	snprintf(path, sizeof(path), "%s/new", scratch_dir);
	assert_int_equal(access(path, F_OK), -1); /* not made */
	assert_int_equal(rmdir(scratch_dir), 0); /* nor a temporary file */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_need_resolver),
	    cmocka_unit_test(test_ipc_dirs),
	    cmocka_unit_test(test_settings),
	    cmocka_unit_test(test_enforce),
	    cmocka_unit_test(test_resolver_no_new_code),
	    cmocka_unit_test(test_resolver_paths_hold_no_keys),
	    cmocka_unit_test(test_opens_read_only_without_landlock),
	    cmocka_unit_test(test_log),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
