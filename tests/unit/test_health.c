/*
 * services/scepd/health.c: the launcher's liveness checks. The parsers of
 * an HTTP status line and of the frontend's Listen; then the checks
 * themselves, driven by a fake clock against stand-ins played by the
 * test (a listening TCP socket for the frontend, a ZeroMQ ROUTER for an
 * RPC service) and a child that only waits, as the service to kill.
 */
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <zmq.h>

#include "scep.pb-c.h"
#include "scepd.h"

#define T0 1000000 /* the fake clock's start, ms */

static void
test_http_status(void **state)
{
	static const struct {
		const char *in;
		int want;
	} cases[] = {
	    {"HTTP/1.1 200 OK\r\n", 200},
	    {"HTTP/1.0 503 Service Unavailable\r\n", 503},
	    {"HTTP/1.1 404\r\n", 404}, /* no reason phrase */
	    {"HTTP/1.1 200\n", 200}, {"HTTP/1.1 429 ", 429},
	    {"", 0}, /* more to come */
	    {"HTT", 0}, {"HTTP/1.1 20", 0},
	    {"HTTP/1.1 200", 0}, /* 2000 would not be one */
	    {"HTTP/1.1 2000 OK\r\n", -1}, {"HTTP/1.1 099 Low\r\n", -1},
	    {"HTTP/1.1 600 High\r\n", -1}, {"HTTP/2 200\r\n", -1},
	    {"HTTP/1.x 200 OK\r\n", -1}, {"HTTP/1.1  200 OK\r\n", -1},
	    {"HTTP/1.1 2a0 OK\r\n", -1}, {"SSH-2.0-OpenSSH_9.2\r\n", -1},
	    {"http/1.1 200 OK\r\n", -1},
	    {"\x16\x03\x01\x00", -1}, /* a TLS record */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int got = health_http_status(cases[i].in, strlen(cases[i].in));

		if (got != cases[i].want)
			fail_msg("'%s': %d, want %d", cases[i].in, got,
			    cases[i].want);
	}
	/* The length given is what counts, not a NUL. */
	assert_int_equal(health_http_status("HTTP/1.1 200 OK", 9), 0);
	assert_int_equal(health_http_status("HTTP/1.1 200 OK", 13), 200);
}

static void
test_listen_split(void **state)
{
	static const struct {
		const char *in, *host, *port;
	} good[] = {
	    {"127.0.0.1:8080", "127.0.0.1", "8080"},
	    {"[::1]:443", "::1", "443"},
	    {":8080", "", "8080"},
	    {"*:8080", "", "8080"},
	    {"localhost:80", "localhost", "80"},
	    {"0.0.0.0:65535", "0.0.0.0", "65535"},
	    {"[::]:0", "::", "0"},
	};
	static const char *const bad[] = {
	    "8080",
	    "127.0.0.1:",
	    "127.0.0.1:65536",
	    "127.0.0.1:123456",
	    "127.0.0.1:80a",
	    "[::1]8080",
	    "[::1",
	    "host:-1",
	    "",
	};
	char host[64], port[8];

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		if (health_listen_split(good[i].in, host, sizeof(host), port,
		        sizeof(port)) != 0)
			fail_msg("'%s' refused", good[i].in);
		assert_string_equal(host, good[i].host);
		assert_string_equal(port, good[i].port);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (health_listen_split(
		        bad[i], host, sizeof(host), port, sizeof(port)) == 0)
			fail_msg(
			    "'%s' taken as %s port %s", bad[i], host, port);
	/* A host longer than the room for it. */
	assert_int_equal(
	    health_listen_split("example.com:80", host, 5, port, sizeof(port)),
	    -1);
}

/* --- the checks ------------------------------------------------------- */

struct fixture {
	char dir[64];
	char conf[128];
	struct scepd_settings settings;
	struct launch launch;
	pid_t child; /* the "service": waits until killed */
	int reaped;
};

static pid_t
waiting_child(void)
{
	pid_t pid = fork();

	if (pid == 0) {
		for (;;)
			pause();
	}
	assert_true(pid > 0);
	return pid;
}

/* What health.c sent, seen as it sends it (this definition is the one
 * the program binds to), and then sent. */
static pid_t kill_pid;
static int kill_sig;

int
kill(pid_t pid, int sig)
{
	kill_pid = pid;
	kill_sig = sig;
	return (int)syscall(SYS_kill, pid, sig);
}

/* 1 once the "service" was sent SIGKILL (then reaped: it died of it),
 * -1 while it was not. */
static int
killed(struct fixture *f)
{
	int status;

	if (kill_pid != f->child)
		return -1;
	assert_int_equal(kill_sig, SIGKILL);
	assert_false(f->reaped);
	assert_int_equal(waitpid(f->child, &status, 0), f->child);
	f->reaped = 1;
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	return 1;
}

static void
fixture_init(struct fixture *f, const char *conf_text, long grace_s)
{
	FILE *fp;

	memset(f, 0, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_health.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->conf, sizeof(f->conf), "%s/scepd.conf", f->dir);
	assert_non_null(fp = fopen(f->conf, "w"));
	fputs(conf_text, fp);
	fclose(fp);
	f->settings.health_interval = 5;
	f->settings.health_timeout = 5;
	f->settings.health_misses = 2;
	f->settings.health_grace = grace_s;
	f->launch.data_dir = f->dir;
	f->launch.config = f->conf;
	f->launch.settings = &f->settings;
	f->child = waiting_child();
	kill_pid = 0;
	kill_sig = 0;
}

static void
fixture_free(struct fixture *f)
{
	char path[192];

	if (!f->reaped) {
		kill(f->child, SIGKILL);
		waitpid(f->child, NULL, 0);
	}
	snprintf(path, sizeof(path), "%s/ca.sock", f->dir);
	unlink(path);
	unlink(f->conf);
	rmdir(f->dir);
}

/* The checks at fake time `now`, as supervise.c's loop runs them, a few
 * rounds (really waiting up to 20 ms each) so that what needs no wait
 * (a connect on loopback, a reply in the socket) is done. */
static void
drive(struct health *h, pid_t pid, int64_t now)
{
	for (int round = 0; round < 5; round++) {
		zmq_pollitem_t items[4];
		int64_t wait = 20;
		int n = health_poll_items(h, items, 4, now, &wait), ready = 0;

		if (n > 0)
			ready = zmq_poll(items, n, 20);
		health_step(h, 0, pid, T0, items, now);
		if (round > 0 && ready <= 0)
			break; /* what is in flight waits on the other end */
	}
}

/* A listening socket on 127.0.0.1 that accepts nothing by itself. */
static int
listener(int *port)
{
	struct sockaddr_in in;
	socklen_t len = sizeof(in);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	memset(&in, 0, sizeof(in));
	in.sin_family = AF_INET;
	in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&in, sizeof(in)), 0);
	assert_int_equal(listen(fd, 64), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&in, &len), 0);
	*port = ntohs(in.sin_port);
	return fd;
}

/* The frontend answering: the next check waiting (connections the
 * checks gave up and closed are passed over) gets `answer`. */
static void
http_answer(int lfd, const char *answer)
{
	for (;;) {
		char req[512];
		size_t got = 0;
		int fd = accept(lfd, NULL, NULL);

		assert_true(fd >= 0);
		while (got < sizeof(req) - 1) {
			ssize_t n =
			    recv(fd, req + got, sizeof(req) - 1 - got, 0);

			if (n <= 0)
				break;
			got += (size_t)n;
			req[got] = '\0';
			if (strstr(req, "\r\n\r\n") != NULL)
				break;
		}
		/* Sent by a check that timed out and closed it (its end is
		 * there already): passed over. */
		if (got == 0 || recv(fd, req + got, 1, MSG_DONTWAIT) == 0) {
			close(fd);
			continue;
		}
		req[got] = '\0';
		assert_true(strncmp(req, "GET /healthz HTTP/1.1\r\n", 23) == 0);
		assert_non_null(strstr(req, "\r\nConnection: close\r\n"));
		assert_int_equal(send(fd, answer, strlen(answer), 0),
		    (ssize_t)strlen(answer));
		close(fd);
		return;
	}
}

/* A frontend that answers is left alone; misses count in a row only:
 * one miss, an answer, then one miss is no kill; two in a row are. */
static void
test_frontend_answers_then_hangs(void **state)
{
	const char *names[] = {"scepd-frontend"};
	struct fixture f;
	struct health *h;
	char conf[128];
	int port, lfd = listener(&port);

	(void)state;
	snprintf(
	    conf, sizeof(conf), "[frontend]\nListen = 127.0.0.1:%d\n", port);
	fixture_init(&f, conf, 0);
	assert_non_null(h = health_new(&f.launch, names, 1));

	drive(h, f.child, T0); /* new child: its first check in 1 s */
	drive(h, f.child, T0 + 1000);
	http_answer(lfd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
	drive(h, f.child, T0 + 1000);

	drive(h, f.child, T0 + 6000); /* sent; not answered */
	drive(h, f.child, T0 + 11000); /* missed 1; sent again */
	assert_int_equal(killed(&f), -1);
	/* Any status is an answer: its HTTP threads run. */
	http_answer(lfd, "HTTP/1.1 503 Service Unavailable\r\n\r\n");
	drive(h, f.child, T0 + 11000);

	drive(h, f.child, T0 + 16000);
	drive(h, f.child, T0 + 21000); /* missed 1 again, not 2 */
	assert_int_equal(killed(&f), -1);
	drive(h, f.child, T0 + 26000); /* missed 2 in a row */
	assert_int_equal(killed(&f), 1);
	/* It served from its first answer, not its last. */
	assert_int_equal(health_served_ms(h, 0, f.child, T0 + 26000), 25000);

	health_free(h);
	close(lfd);
	fixture_free(&f);
}

/* A service that never answered is not counted until the grace is over,
 * then killed after its misses; it never served (supervise.c's back-off
 * is not reset however long it ran). */
static void
test_grace_after_start(void **state)
{
	const char *names[] = {"scepd-frontend"};
	struct fixture f;
	struct health *h;
	char conf[128];
	int port, lfd = listener(&port);
	int64_t at = 0;

	(void)state;
	snprintf(
	    conf, sizeof(conf), "[frontend]\nListen = 127.0.0.1:%d\n", port);
	fixture_init(&f, conf, 30);
	assert_non_null(h = health_new(&f.launch, names, 1));
	for (int64_t now = T0; now <= T0 + 60000 && at == 0; now += 500) {
		drive(h, f.child, now);
		if (killed(&f) == 1)
			at = now;
	}
	/* Checks time out at 6, 11, ... 31 s: the first counted is at 31,
	 * the second at 36. */
	assert_int_equal(at, T0 + 36000);
	assert_int_equal(health_served_ms(h, 0, f.child, at), 0);
	health_free(h);
	close(lfd);
	fixture_free(&f);
}

/* The CA's check: a HealthRequest from origin "scepd" over its ipc://
 * socket (relative to the configuration), answered or not. No check of a
 * service that is not running. */
static void
test_rpc_service(void **state)
{
	const char *names[] = {"scepd-ca"};
	struct fixture f;
	struct health *h;
	char endpoint[128];
	void *ctx = zmq_ctx_new(), *router;
	int64_t now, at = 0;
	int zero = 0, tries;

	(void)state;
	fixture_init(&f, "[ca]\nListen = ipc://ca.sock\n", 0);
	snprintf(endpoint, sizeof(endpoint), "ipc://%s/ca.sock", f.dir);
	assert_non_null(router = zmq_socket(ctx, ZMQ_ROUTER));
	zmq_setsockopt(router, ZMQ_LINGER, &zero, sizeof(zero));
	assert_int_equal(zmq_bind(router, endpoint), 0);
	assert_non_null(h = health_new(&f.launch, names, 1));

	/* Not running: nothing is asked. */
	for (now = T0; now < T0 + 12000; now += 1000)
		drive(h, 0, now);
	{
		zmq_pollitem_t it = {router, 0, ZMQ_POLLIN, 0};

		assert_int_equal(zmq_poll(&it, 1, 100), 0);
	}

	/* Running: asked, and answered. */
	drive(h, f.child, T0);
	for (tries = 0; tries < 50; tries++) {
		zmq_pollitem_t it = {router, 0, ZMQ_POLLIN, 0};
		Scep__V1__Request *req;
		Scep__V1__Reply rep = SCEP__V1__REPLY__INIT;
		Scep__V1__HealthReply body = SCEP__V1__HEALTH_REPLY__INIT;
		zmq_msg_t ident, msg;
		uint8_t out[64];

		drive(h, f.child, T0 + 1000);
		if (zmq_poll(&it, 1, 50) <= 0)
			continue;
		zmq_msg_init(&ident);
		zmq_msg_init(&msg);
		assert_true(zmq_msg_recv(&ident, router, 0) >= 0);
		assert_true(zmq_msg_recv(&msg, router, 0) >= 0);
		req = scep__v1__request__unpack(
		    NULL, zmq_msg_size(&msg), zmq_msg_data(&msg));
		assert_non_null(req);
		assert_string_equal(req->origin, "scepd");
		assert_int_equal(
		    req->body_case, SCEP__V1__REQUEST__BODY_HEALTH);
		assert_true(req->has_sent_ms);
		assert_int_equal(req->deadline_ms - req->sent_ms, 5000);
		rep.id = req->id;
		rep.body_case = SCEP__V1__REPLY__BODY_HEALTH;
		rep.health = &body;
		scep__v1__request__free_unpacked(req, NULL);
		assert_true(
		    scep__v1__reply__get_packed_size(&rep) <= sizeof(out));
		scep__v1__reply__pack(&rep, out);
		assert_true(zmq_msg_send(&ident, router, ZMQ_SNDMORE) >= 0);
		assert_true(
		    zmq_send(router, out,
		        scep__v1__reply__get_packed_size(&rep), 0) >= 0);
		zmq_msg_close(&msg);
		break;
	}
	assert_true(tries < 50);
	drive(h, f.child, T0 + 1000);
	/* Then silent: killed at its second miss, 6 + 5 s on. */
	for (now = T0 + 1500; now <= T0 + 30000 && at == 0; now += 500) {
		drive(h, f.child, now);
		if (killed(&f) == 1)
			at = now;
	}
	assert_int_equal(at, T0 + 16000);
	assert_int_equal(health_served_ms(h, 0, f.child, at), 15000);
	/* Another child, not seen by the checks yet: not answered. */
	assert_int_equal(health_served_ms(h, 0, f.child + 1, at), 0);
	health_free(h);
	zmq_close(router);
	zmq_ctx_term(ctx);
	fixture_free(&f);
}

/* Endpoints the launcher cannot check are logged and left alone; with
 * the checks off there is nothing at all. */
static void
test_not_checked(void **state)
{
	const char *names[] = {"scepd-ca", "scepd-frontend"};
	struct fixture f;
	struct health *h;
	zmq_pollitem_t items[4];
	int64_t wait = 1000;

	(void)state;
	fixture_init(&f,
	    "[ca]\nListen = tcp://127.0.0.1:5555\n"
	    "[frontend]\nListen = 127.0.0.1:0\n",
	    0);
	assert_non_null(h = health_new(&f.launch, names, 2));
	health_step(h, 0, f.child, T0, items, T0);
	health_step(h, 1, f.child, T0, items, T0);
	assert_int_equal(health_poll_items(h, items, 4, T0, &wait), 0);
	assert_int_equal(wait, 1000); /* nothing is ever due */
	/* Only its run time tells how long it served. */
	assert_int_equal(health_served_ms(h, 0, f.child, T0 + 90000), -1);
	health_free(h);
	f.settings.health_interval = 0;
	assert_null(health_new(&f.launch, names, 2));
	assert_int_equal(health_served_ms(NULL, 0, f.child, T0), -1);
	fixture_free(&f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_http_status),
	    cmocka_unit_test(test_listen_split),
	    cmocka_unit_test(test_frontend_answers_then_hangs),
	    cmocka_unit_test(test_grace_after_start),
	    cmocka_unit_test(test_rpc_service),
	    cmocka_unit_test(test_not_checked),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
