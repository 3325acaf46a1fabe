/*
 * getpid(), cached. libzmq asks for the pid on each of its signals (a
 * check for a fork) and OpenSSL on each random number; since glibc 2.25
 * every call is a system call: about 76 per enrollment across the four
 * services, each dear on a virtual machine (tests/bench/profile.sh). The
 * executable's definition takes precedence over libc's for every library
 * that calls it. glibc's own calls (fork, posix_spawn) do not come here;
 * a child of fork() starts with no cache (pthread_atfork), as a process
 * that execs does. The services cannot fork at all (their sandboxes);
 * only _Fork() or a raw clone() would leave a child the parent's pid,
 * and with it OpenSSL's random stream (test_pid shows what is at stake).
 */
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

static pid_t pid_cached; /* 0: not known in this process yet */

static void
pid_forget(void)
{
	__atomic_store_n(&pid_cached, 0, __ATOMIC_RELAXED);
}

__attribute__((constructor)) static void
pid_watch_forks(void)
{
	(void)pthread_atfork(NULL, NULL, pid_forget);
}

pid_t
getpid(void)
{
	pid_t pid = __atomic_load_n(&pid_cached, __ATOMIC_RELAXED);

	if (pid == 0) {
		pid = (pid_t)syscall(SYS_getpid);
		__atomic_store_n(&pid_cached, pid, __ATOMIC_RELAXED);
	}
	return pid;
}
