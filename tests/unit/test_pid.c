/* lib/pid.c: getpid() cached for the libraries that ask it often. */
#include <dlfcn.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/rand.h>

static void *
pid_in_thread(void *arg)
{
	*(pid_t *)arg = getpid();
	return NULL;
}

/* The kernel's answer, in every thread, on every call. */
static void
test_the_kernels_pid(void **state)
{
	pthread_t t;
	pid_t in_thread = 0;

	(void)state;
	assert_int_equal(getpid(), (pid_t)syscall(SYS_getpid));
	assert_int_equal(getpid(), getpid());
	assert_int_equal(
	    pthread_create(&t, NULL, pid_in_thread, &in_thread), 0);
	pthread_join(t, NULL);
	assert_int_equal(in_thread, (pid_t)syscall(SYS_getpid));
}

/* The definition the libraries (libzmq, OpenSSL) bind to is this one. */
static void
test_libraries_get_it(void **state)
{
	(void)state;
	assert_ptr_equal(dlsym(RTLD_DEFAULT, "getpid"), (void *)getpid);
}

/* A forked child has its own pid, not its parent's cached one. */
static void
test_a_forked_child_has_its_own(void **state)
{
	pid_t parent = getpid(), child;
	int status = 0;

	(void)state;
	if ((child = fork()) == 0)
		_exit(
		    getpid() == (pid_t)syscall(SYS_getpid) && getpid() != parent
		        ? 0
		        : 1);
	assert_true(child > 0);
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(getpid(), parent);
}

/* OpenSSL tells a forked child by its pid and reseeds: the child's random
 * bytes are not its parent's. */
static void
test_a_forked_child_draws_other_random_bytes(void **state)
{
	unsigned char before[16], mine[32], childs[32];
	int fds[2], status = 0;
	pid_t child;

	(void)state;
	assert_int_equal(RAND_bytes(before, sizeof(before)), 1);
	assert_int_equal(pipe(fds), 0);
	if ((child = fork()) == 0) {
		unsigned char b[32];

		close(fds[0]);
		_exit(RAND_bytes(b, sizeof(b)) == 1 &&
		            write(fds[1], b, sizeof(b)) == (ssize_t)sizeof(b)
		        ? 0
		        : 1);
	}
	assert_true(child > 0);
	close(fds[1]);
	assert_int_equal(RAND_bytes(mine, sizeof(mine)), 1);
	assert_int_equal(read(fds[0], childs, sizeof(childs)), sizeof(childs));
	close(fds[0]);
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_memory_not_equal(mine, childs, sizeof(mine));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_the_kernels_pid),
	    cmocka_unit_test(test_libraries_get_it),
	    cmocka_unit_test(test_a_forked_child_has_its_own),
	    cmocka_unit_test(test_a_forked_child_draws_other_random_bytes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
