/*
 * Liveness checks of the services. waitpid tells the launcher of a
 * service that died, not of one that hangs: stopped (SIGSTOP), deadlocked,
 * or with every worker stuck (a CA waiting on an HSM that never answers);
 * its callers got 503 for as long as it lasted. Every HealthCheckInterval
 * each running service is asked once: the RPC services a HealthRequest
 * over their ipc:// socket, which a worker answers as it answers any
 * request; the frontend GET /healthz, which its HTTP threads answer without
 * asking another service. One that misses HealthCheckMisses checks in a
 * row, each given HealthCheckTimeout, is logged and killed with SIGKILL;
 * supervise.c restarts it as it restarts one that died, its back-off
 * reset only by a run that served (from its first answer). A service's
 * misses count from its first answer, or from HealthCheckGrace after its
 * start when none came (a CA logging in to its HSM answers late).
 *
 * All of it runs in the launcher's one thread, in its poll loop: nothing
 * here blocks.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#include "config.h"
#include "log.h"
#include "netaddr.h"
#include "scep.pb-c.h"
#include "scepd.h"
#include "service.h"

#define HEALTH_ANSWER_MAX 256 /* bytes of an HTTP answer read: its start */
#define HEALTH_FIRST_MS 1000 /* a service's first check, after its start */
/* Checks of the frontend closed unanswered in a row that still count as
 * answers: a minute at the default HealthCheckInterval. */
#define HEALTH_CLOSES_MAX 12
#define HEALTH_SOURCE_V4 0x7ffffffeU /* 127.255.255.254 */

enum probe_kind {
	PROBE_NONE, /* not checked */
	PROBE_RPC, /* HealthRequest over ipc:// */
	PROBE_HTTP, /* GET /healthz */
};

enum probe_state {
	PROBE_IDLE,
	PROBE_RPC_WAIT, /* sent; waiting for its reply */
	PROBE_HTTP_CONNECT,
	PROBE_HTTP_SEND,
	PROBE_HTTP_READ,
};

struct probe {
	const char *name; /* the service's executable, borrowed */
	enum probe_kind kind;
	char *endpoint; /* PROBE_RPC: the service's ipc:// socket */
	struct sockaddr_storage addr; /* PROBE_HTTP: the frontend's Listen */
	socklen_t addrlen;
	char target[80]; /* PROBE_HTTP: ADDRESS:PORT, for logs */
	char request[192];
	size_t request_len;
	/* The child the counts are of: another pid starts them over. */
	pid_t pid;
	int64_t started_ms;
	int64_t first_answer_ms; /* 0: none yet */
	int64_t answered_ms; /* its last answer; 0: none yet */
	int misses; /* in a row */
	int closes; /* PROBE_HTTP: connections closed unanswered, in a row */
	int killed; /* SIGKILL sent; not checked until it is restarted */
	int64_t killed_ms;
	int stuck_logged; /* not gone SCEPD_STUCK_AFTER_MS after SIGKILL */
	int warned; /* refused a check once (logged) */
	int64_t next_ms; /* when the next check is due */
	/* The check in flight, unless PROBE_IDLE. */
	enum probe_state state;
	int64_t sent_ms, deadline_ms;
	uint64_t id;
	void *sock; /* PROBE_RPC */
	int fd; /* PROBE_HTTP */
	size_t off; /* of the request sent, then of the answer read */
	char answer[HEALTH_ANSWER_MAX];
	int item; /* its index in this round's poll items; -1: none */
};

struct health {
	const struct launch *launch; /* the configuration, read again */
	void *zmq_ctx; /* made at the first RPC check */
	int64_t interval_ms, timeout_ms, grace_ms;
	int misses;
	uint64_t next_id;
	struct probe *probe; /* one per service, in the children's order */
	size_t n;
};

/* Milliseconds since the Unix epoch: requests' deadlines (rpc.h). */
static int64_t
wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reads /proc/PID/task/TID/`file` into `out` (NUL-terminated): 0, or -1. */
static int
task_read(pid_t pid, const char *tid, const char *file, char *out, size_t len)
{
	char path[96];
	ssize_t got;
	int fd;

	if (snprintf(path, sizeof(path), "/proc/%d/task/%s/%s", (int)pid, tid,
	        file) >= (int)sizeof(path))
		return -1; /* not a thread id: those are short */
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	got = read(fd, out, len - 1);
	close(fd);
	out[got > 0 ? got : 0] = '\0';
	return got > 0 ? 0 : -1;
}

int
child_stuck_log(const char *name, pid_t pid, const char *then)
{
	char path[64], stat[512], wchan[64] = "", tid_name[16];
	int threads = 0, zombies = 0, tid = 0;
	char state = '?';
	struct dirent *de;
	DIR *dir;

	/* SIGKILL ends a process's threads one by one: its main thread may
	 * be a zombie already while another waits in the kernel. The one
	 * named is one in state D if any. */
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	if ((dir = opendir(path)) != NULL) {
		while ((de = readdir(dir)) != NULL) {
			const char *end;
			char s;

			if (de->d_name[0] == '.' ||
			    task_read(pid, de->d_name, "stat", stat,
			        sizeof(stat)) != 0)
				continue;
			/* "tid (comm) S ...": comm may hold any byte. */
			if ((end = strrchr(stat, ')')) == NULL || end[1] != ' ')
				continue;
			s = end[2];
			threads++;
			zombies += s == 'Z';
			if (state == '?' || (state != 'D' && s == 'D') ||
			    (state == 'Z' && s != 'Z')) {
				state = s;
				tid = atoi(de->d_name);
			}
		}
		closedir(dir);
	}
	if (threads > 0 && zombies == threads)
		return 0; /* all gone: reaped next */
	snprintf(tid_name, sizeof(tid_name), "%d", tid);
	if (tid == 0 ||
	    task_read(pid, tid_name, "wchan", wchan, sizeof(wchan)) != 0 ||
	    strcmp(wchan, "0") == 0)
		wchan[0] = '\0';
	log_error("%s (pid %d) has not exited %d s after SIGKILL (state "
	          "%c%s%s%s%s%s): "
	          "held in the kernel, by a disk or a network file system "
	          "that does not answer; %s",
	    name, (int)pid, SCEPD_STUCK_AFTER_MS / 1000, state,
	    state == 'D' ? " (uninterruptible)" : "",
	    wchan[0] ? ", waiting in " : "", wchan,
	    tid != 0 && tid != (int)pid ? ", thread " : "",
	    tid != 0 && tid != (int)pid ? tid_name : "", then);
	return 1;
}

int
health_http_status(const char *buf, size_t len)
{
	static const char version[] = "HTTP/1.";
	const size_t vlen = sizeof(version) - 1;
	int code = 0;

	/* "HTTP/1.x NNN" and then a space or the line's end. */
	for (size_t i = 0; i < len && i < vlen + 6; i++) {
		char ch = buf[i];

		if (i < vlen) {
			if (ch != version[i])
				return -1;
		} else if (i == vlen) {
			if (ch < '0' || ch > '9')
				return -1;
		} else if (i == vlen + 1) {
			if (ch != ' ')
				return -1;
		} else if (i < vlen + 5) {
			if (ch < '0' || ch > '9')
				return -1;
			code = code * 10 + (ch - '0');
		} else if (ch != ' ' && ch != '\r' && ch != '\n')
			return -1;
	}
	if (len < vlen + 6)
		return 0;
	return code >= 100 && code <= 599 ? code : -1;
}

int
health_listen_split(
    const char *spec, char *host, size_t hostlen, char *port, size_t portlen)
{
	const char *p;

	/* As the frontend reads its Listen (lib/netaddr.c). */
	if (netaddr_split_listen(spec, host, hostlen, &p) != 0 ||
	    strlen(p) >= portlen)
		return -1;
	snprintf(port, portlen, "%s", p);
	return 0;
}

/*
 * The frontend's address to ask, from `spec` (its Listen): what its own
 * bind takes first (services/frontend/main.c), a wildcard made the
 * loopback address of its family. 0, or -1 with the reason in `why`.
 */
static int
probe_http_init(struct probe *p, const char *spec, char *why, size_t whylen)
{
	struct addrinfo hints, *res = NULL;
	char host[256], port[8], numeric[INET6_ADDRSTRLEN];
	int gai;

	if (health_listen_split(spec, host, sizeof(host), port, sizeof(port)) !=
	    0) {
		snprintf(why, whylen, "its Listen '%s' is not HOST:PORT", spec);
		return -1;
	}
	if (atol(port) == 0) {
		snprintf(why, whylen,
		    "its Listen '%s' leaves the port to the "
		    "kernel",
		    spec);
		return -1;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if ((gai = getaddrinfo(host[0] ? host : NULL, port, &hints, &res)) !=
	    0) {
		snprintf(why, whylen, "its Listen '%s': %s", spec,
		    gai_strerror(gai));
		return -1;
	}
	if (res->ai_addrlen > sizeof(p->addr)) {
		freeaddrinfo(res);
		snprintf(
		    why, whylen, "its Listen '%s': no usable address", spec);
		return -1;
	}
	memcpy(&p->addr, res->ai_addr, res->ai_addrlen);
	p->addrlen = res->ai_addrlen;
	freeaddrinfo(res);
	if (p->addr.ss_family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&p->addr;

		if (in->sin_addr.s_addr == htonl(INADDR_ANY))
			in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	} else if (p->addr.ss_family == AF_INET6) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&p->addr;

		if (IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr))
			in6->sin6_addr = in6addr_loopback;
	} else {
		snprintf(
		    why, whylen, "its Listen '%s': not an IP address", spec);
		return -1;
	}
	if (getnameinfo((struct sockaddr *)&p->addr, p->addrlen, numeric,
	        sizeof(numeric), NULL, 0, NI_NUMERICHOST) != 0) {
		snprintf(
		    why, whylen, "its Listen '%s': no usable address", spec);
		return -1;
	}
	snprintf(p->target, sizeof(p->target), "%s%s%s:%s",
	    p->addr.ss_family == AF_INET6 ? "[" : "", numeric,
	    p->addr.ss_family == AF_INET6 ? "]" : "", port);
	/* /healthz: answered by an HTTP thread whatever the RA does, on any
	 * Paths (a GetCACaps not cached yet would wait on the RA). */
	snprintf(p->request, sizeof(p->request),
	    "GET /healthz HTTP/1.1\r\nHost: %s\r\n"
	    "User-Agent: scepd (liveness check)\r\nConnection: close\r\n\r\n",
	    p->target);
	p->request_len = strlen(p->request);
	p->kind = PROBE_HTTP;
	return 0;
}

/*
 * The RPC service's socket, from its section's Listen: its first endpoint,
 * relative to the configuration's directory as config_load takes it. Only
 * ipc://: over the network the launcher holds no CurveZMQ key.
 */
static int
probe_rpc_init(struct probe *p, const struct config_pairs *conf,
    const char *section, char *why, size_t whylen)
{
	const char *listen = config_pairs_get(conf, section, "Listen");
	const char *clients;
	char first[1024];
	size_t n;
	int len;

	if (listen == NULL) {
		snprintf(why, whylen, "[%s] has no Listen", section);
		return -1;
	}
	listen += strspn(listen, " \t,");
	n = strcspn(listen, " \t,");
	if (n >= sizeof(first) || n == 0) {
		snprintf(
		    why, whylen, "[%s] Listen is not an endpoint", section);
		return -1;
	}
	memcpy(first, listen, n);
	first[n] = '\0';
	if (strncmp(first, "ipc://", 6) != 0) {
		snprintf(why, whylen,
		    "it listens on %.200s, and the launcher checks over "
		    "ipc:// only",
		    first);
		return -1;
	}
	/* A plain check would be refused ("CURVE only") and the service
	 * killed as hung, again and again. */
	clients = config_pairs_get(conf, section, "CurveClients");
	if (clients != NULL && clients[strspn(clients, " \t,")] != '\0') {
		snprintf(why, whylen,
		    "[%s] CurveClients admits CurveZMQ clients only, and the "
		    "launcher holds no key (scepctl health %s can check it)",
		    section, section);
		return -1;
	}
	len = snprintf(NULL, 0, "ipc://%s/%s", conf->basedir, first + 6);
	if ((p->endpoint = malloc((size_t)len + 1)) == NULL) {
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	if (first[6] == '/')
		snprintf(p->endpoint, (size_t)len + 1, "%s", first);
	else
		snprintf(p->endpoint, (size_t)len + 1, "ipc://%s/%s",
		    conf->basedir, first + 6);
	p->kind = PROBE_RPC;
	return 0;
}

/*
 * What `p` asks, from the service's section: at start, and again when the
 * service is started anew (`again`), whose configuration may have changed
 * (a Listen moved, then the service stopped for the launcher to start it
 * again: the old address asked would get it killed as hung, again and
 * again). Logged at start, and again when it changed.
 */
static void
probe_configure(struct health *h, struct probe *p, int again)
{
	const struct launch *launch = h->launch;
	const char *section =
	    strncmp(p->name, "scepd-", 6) == 0 ? p->name + 6 : p->name;
	struct config_pairs conf;
	char why[512], was[sizeof(p->target) + 1024] = "", now[sizeof(was)];
	int rc = -1;

	if (p->kind == PROBE_RPC)
		snprintf(was, sizeof(was), "%s", p->endpoint);
	else if (p->kind == PROBE_HTTP)
		snprintf(was, sizeof(was), "%s", p->target);
	free(p->endpoint);
	p->endpoint = NULL;
	p->kind = PROBE_NONE;
	if (config_load_pairs(launch->config, section, &conf) != 0)
		snprintf(why, sizeof(why), "the configuration cannot be read");
	else if (strcmp(section, "frontend") == 0) {
		const char *listen = launch->listen;

		if (listen == NULL)
			listen = config_pairs_get(&conf, "frontend", "Listen");
		rc = probe_http_init(p,
		    listen != NULL ? listen : "127.0.0.1:8080", why,
		    sizeof(why));
	} else
		rc = probe_rpc_init(p, &conf, section, why, sizeof(why));
	config_pairs_free(&conf);
	if (rc != 0)
		p->kind = PROBE_NONE;
	snprintf(now, sizeof(now), "%s",
	    p->kind == PROBE_RPC        ? p->endpoint
	        : p->kind == PROBE_HTTP ? p->target
	                                : "");
	if (again && strcmp(was, now) == 0)
		return;
	if (rc != 0)
		log_info("%s is not checked for liveness%s: %s", p->name,
		    again ? " (its configuration changed)" : "", why);
	else if (p->kind == PROBE_RPC)
		log_info("liveness check of %s%s: a HealthRequest over %s",
		    p->name, again ? ", its configuration changed" : "",
		    p->endpoint);
	else
		log_info("liveness check of %s%s: GET http://%s/healthz",
		    p->name, again ? ", its configuration changed" : "",
		    p->target);
}

struct health *
health_new(const struct launch *launch, const char *const *names, size_t n)
{
	const struct scepd_settings *s = launch->settings;
	struct health *h;

	if (s->health_interval == 0) {
		log_info("liveness checks off ([scepd] HealthCheckInterval = "
		         "0): a hung service is not restarted");
		return NULL;
	}
	if ((h = calloc(1, sizeof(*h))) == NULL ||
	    (h->probe = calloc(n, sizeof(*h->probe))) == NULL) {
		free(h);
		log_error("liveness checks: out of memory; none made");
		return NULL;
	}
	h->n = n;
	h->launch = launch;
	h->interval_ms = s->health_interval * 1000;
	h->timeout_ms = s->health_timeout * 1000;
	h->grace_ms = s->health_grace * 1000;
	h->misses = (int)s->health_misses;
	/* Ids differ from one launcher to the next, as rpc.c's do. */
	h->next_id = ((uint64_t)wall_ms() << 16) ^ (uint64_t)getpid();
	for (size_t i = 0; i < n; i++) {
		h->probe[i].name = names[i];
		h->probe[i].fd = -1;
		h->probe[i].item = -1;
	}
	log_info("liveness checks every %ld s, %ld s to answer; a service "
	         "that misses %ld in a row is killed (SIGKILL) and restarted; "
	         "counted from its first answer, or %ld s after its start",
	    s->health_interval, s->health_timeout, s->health_misses,
	    s->health_grace);
	for (size_t i = 0; i < n; i++)
		probe_configure(h, &h->probe[i], 0);
	return h;
}

/* The check in flight, if any, is over. */
static void
probe_end(struct probe *p)
{
	if (p->sock != NULL)
		zmq_close(p->sock);
	if (p->fd >= 0)
		close(p->fd);
	p->sock = NULL;
	p->fd = -1;
	p->state = PROBE_IDLE;
	p->off = 0;
}

void
health_free(struct health *h)
{
	if (h == NULL)
		return;
	for (size_t i = 0; i < h->n; i++) {
		probe_end(&h->probe[i]);
		free(h->probe[i].endpoint);
	}
	if (h->zmq_ctx != NULL)
		zmq_ctx_term(h->zmq_ctx);
	free(h->probe);
	free(h);
}

static void
probe_answered(struct health *h, struct probe *p, int64_t now)
{
	if (p->misses > 0)
		log_info("%s answers its liveness check again, after %d "
		         "missed",
		    p->name, p->misses);
	p->misses = 0;
	if (p->first_answer_ms == 0)
		p->first_answer_ms = now;
	p->answered_ms = now;
	p->next_ms = p->sent_ms + h->interval_ms;
	probe_end(p);
}

/* Whether a service the RA waits on (the CA, the challenge service) is
 * not answering its own checks: dead, killed, new, or missing them. */
static int
probe_ra_waits_on_unwell(const struct health *h, const struct probe *p)
{
	if (strcmp(p->name, "scepd-ra") != 0)
		return 0;
	for (size_t i = 0; i < h->n; i++) {
		const struct probe *q = &h->probe[i];

		if (q->kind != PROBE_NONE &&
		    (strcmp(q->name, "scepd-ca") == 0 ||
		        strcmp(q->name, "scepd-challenge") == 0) &&
		    (q->pid == 0 || q->killed || q->misses > 0 ||
		        q->answered_ms == 0))
			return 1;
	}
	return 0;
}

/* The check failed (`why`): one more miss, unless the service is new, or
 * is the RA waiting on one that does not answer (its workers wait their
 * RPCTimeout on it: the hung one is killed, not the RA with it); one too
 * many, it is killed. */
static void
probe_missed(struct health *h, struct probe *p, int64_t now, const char *why)
{
	int64_t since = p->answered_ms != 0 ? p->answered_ms : p->started_ms;

	p->next_ms = p->sent_ms + h->interval_ms;
	if (p->next_ms < now)
		p->next_ms = now;
	probe_end(p);
	if (p->answered_ms == 0 && now - p->started_ms < h->grace_ms) {
		log_debug("%s: no answer to its liveness check yet (%s), "
		          "%lld ms after its start",
		    p->name, why, (long long)(now - p->started_ms));
		return;
	}
	if (probe_ra_waits_on_unwell(h, p)) {
		log_info("%s missed a liveness check (%s) while a service it "
		         "waits on does not answer either: not counted",
		    p->name, why);
		return;
	}
	p->misses++;
	if (p->misses < h->misses) {
		log_warn("%s missed a liveness check (%s): %d of %d in a row",
		    p->name, why, p->misses, h->misses);
		return;
	}
	log_error("%s (pid %d) has not answered for %.1f s (%d liveness "
	          "checks missed in a row, the last: %s): hung; SIGKILL, to "
	          "restart it",
	    p->name, (int)p->pid, (double)(now - since) / 1000.0, p->misses,
	    why);
	/* Not reaped yet (supervise.c reaps in this thread): still our
	 * child, whatever it does, never another process of its pid. */
	if (kill(p->pid, SIGKILL) != 0)
		log_error("cannot kill %s (pid %d): %s", p->name, (int)p->pid,
		    strerror(errno));
	p->killed = 1;
	p->killed_ms = now;
}

static void
probe_rpc_send(struct health *h, struct probe *p, int64_t now)
{
	Scep__V1__Request req = SCEP__V1__REQUEST__INIT;
	Scep__V1__HealthRequest body = SCEP__V1__HEALTH_REQUEST__INIT;
	uint8_t buf[128];
	int64_t wall = wall_ms(), max_reply = 64 * 1024;
	int zero = 0;
	size_t len;

	if (h->zmq_ctx == NULL && (h->zmq_ctx = zmq_ctx_new()) == NULL) {
		log_warn("liveness checks: %s", zmq_strerror(errno));
		p->next_ms = now + h->interval_ms;
		return;
	}
	/* A socket per check: one that reached a service now killed and
	 * restarted would else wait on a connection that is gone. */
	if ((p->sock = zmq_socket(h->zmq_ctx, ZMQ_DEALER)) == NULL ||
	    zmq_setsockopt(p->sock, ZMQ_LINGER, &zero, sizeof(zero)) != 0 ||
	    zmq_setsockopt(
	        p->sock, ZMQ_MAXMSGSIZE, &max_reply, sizeof(max_reply)) != 0 ||
	    zmq_connect(p->sock, p->endpoint) != 0) {
		log_warn("liveness check of %s: %s: %s", p->name, p->endpoint,
		    zmq_strerror(errno));
		probe_end(p);
		p->next_ms = now + h->interval_ms;
		return;
	}
	req.id = ++h->next_id;
	req.deadline_ms = wall + h->timeout_ms;
	req.origin = "scepd";
	req.has_sent_ms = 1;
	req.sent_ms = wall;
	req.body_case = SCEP__V1__REQUEST__BODY_HEALTH;
	req.health = &body;
	len = scep__v1__request__get_packed_size(&req);
	if (len > sizeof(buf)) {
		probe_end(p);
		p->next_ms = now + h->interval_ms;
		return;
	}
	scep__v1__request__pack(&req, buf);
	p->id = req.id;
	p->sent_ms = now;
	p->deadline_ms = now + h->timeout_ms;
	p->state = PROBE_RPC_WAIT;
	/* Queued until connected (no ZMQ_IMMEDIATE): a service that has not
	 * bound its socket yet gets it when it does, or it times out. */
	if (zmq_send(p->sock, buf, len, ZMQ_DONTWAIT) < 0)
		probe_missed(h, p, now, zmq_strerror(errno));
}

static void
probe_rpc_read(struct health *h, struct probe *p, int64_t now)
{
	for (;;) {
		Scep__V1__Reply *rep;
		zmq_msg_t msg;

		zmq_msg_init(&msg);
		if (zmq_msg_recv(&msg, p->sock, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&msg);
			return;
		}
		rep = scep__v1__reply__unpack(
		    NULL, zmq_msg_size(&msg), zmq_msg_data(&msg));
		zmq_msg_close(&msg);
		if (rep == NULL || rep->id != p->id) {
			if (rep != NULL)
				scep__v1__reply__free_unpacked(rep, NULL);
			continue;
		}
		/* A refusal comes from the process too: it is alive. */
		if (rep->status != SCEP__V1__STATUS__STATUS_OK && !p->warned) {
			log_warn("%s refuses the liveness check (%s); it "
			         "answers, so it is taken as alive",
			    p->name, rep->error ? rep->error : "no reason");
			p->warned = 1;
		}
		scep__v1__reply__free_unpacked(rep, NULL);
		probe_answered(h, p, now);
		return;
	}
}

/*
 * A check of a frontend on an IPv4 loopback address comes from
 * HEALTH_SOURCE_V4, an address of 127/8 no client uses: a proxy on this
 * host holding PerIPConnectionLimit connections from 127.0.0.1 does not
 * hold the check out. Best effort: without it, from 127.0.0.1.
 */
static void
probe_http_source(const struct probe *p)
{
	const struct sockaddr_in *to = (const struct sockaddr_in *)&p->addr;
	struct sockaddr_in from = {.sin_family = AF_INET};

	if (p->addr.ss_family != AF_INET ||
	    (ntohl(to->sin_addr.s_addr) >> 24) != 127)
		return;
	from.sin_addr.s_addr = htonl(HEALTH_SOURCE_V4);
	(void)bind(p->fd, (struct sockaddr *)&from, sizeof(from));
}

static void
probe_http_send(struct health *h, struct probe *p, int64_t now)
{
	p->sent_ms = now;
	p->deadline_ms = now + h->timeout_ms;
	p->fd = socket(
	    p->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (p->fd < 0) {
		log_warn("liveness check of %s: socket: %s", p->name,
		    strerror(errno));
		p->next_ms = now + h->interval_ms;
		return;
	}
	probe_http_source(p);
	if (connect(p->fd, (struct sockaddr *)&p->addr, p->addrlen) == 0)
		p->state = PROBE_HTTP_SEND;
	else if (errno == EINPROGRESS)
		p->state = PROBE_HTTP_CONNECT;
	else {
		p->state = PROBE_HTTP_CONNECT;
		probe_missed(h, p, now, strerror(errno));
	}
}

/* The frontend's check one step on, as far as it goes without waiting. */
static void
probe_http_step(struct health *h, struct probe *p, short revents, int64_t now)
{
	static const char refused[] = "\r\n" SERVICE_REFUSED_HEADER ":";
	char why[256];
	ssize_t n;

	if (p->state == PROBE_HTTP_CONNECT) {
		int err = 0;
		socklen_t len = sizeof(err);

		if (revents == 0)
			return;
		if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
			err = errno;
		if (err != 0) {
			snprintf(
			    why, sizeof(why), "connect: %s", strerror(err));
			probe_missed(h, p, now, why);
			return;
		}
		p->state = PROBE_HTTP_SEND;
	}
	if (p->state == PROBE_HTTP_SEND) {
		while (p->off < p->request_len) {
			n = send(p->fd, p->request + p->off,
			    p->request_len - p->off, MSG_NOSIGNAL);
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				return;
			if (n < 0) {
				snprintf(why, sizeof(why), "send: %s",
				    strerror(errno));
				probe_missed(h, p, now, why);
				return;
			}
			p->off += (size_t)n;
		}
		p->state = PROBE_HTTP_READ;
		p->off = 0;
	}
	for (;;) {
		int status, closed = 0;

		n = recv(p->fd, p->answer + p->off, sizeof(p->answer) - p->off,
		    MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n < 0 && errno != ECONNRESET) {
			snprintf(why, sizeof(why), "recv: %s", strerror(errno));
			probe_missed(h, p, now, why);
			return;
		}
		if (n > 0)
			p->off += (size_t)n;
		else
			closed = 1;
		status = health_http_status(p->answer, p->off);
		if (status < 0 ||
		    (status == 0 && p->off == sizeof(p->answer))) {
			snprintf(why, sizeof(why),
			    "not an HTTP answer: '%.40s'", p->answer);
			probe_missed(h, p, now, why);
			return;
		}
		if (status == 0 && !closed)
			continue;
		/* The acceptor's own 503 is known by its header (http_full):
		 * read the headers, after which it closes. */
		if (status == 503 && !closed && p->off < sizeof(p->answer) &&
		    memmem(p->answer, p->off, "\r\n\r\n", 4) == NULL)
			continue;
		if (status > 0 &&
		    memmem(p->answer, p->off, refused, sizeof(refused) - 1) ==
		        NULL) {
			/* Any status of its HTTP threads: they answer. */
			p->closes = 0;
			probe_answered(h, p, now);
			return;
		}
		/*
		 * Closed unanswered (the checks' address over
		 * PerIPConnectionLimit), or answered by the acceptor alone
		 * (loopback clients hold MaxConnections and the reserve
		 * past it): an answer of sorts, for a while. A frontend
		 * whose HTTP threads hang while its acceptor still takes
		 * connections answers so too: HEALTH_CLOSES_MAX checks in a
		 * row are a miss.
		 */
		if (++p->closes < HEALTH_CLOSES_MAX) {
			probe_answered(h, p, now);
			return;
		}
		if (status > 0)
			snprintf(why, sizeof(why),
			    "answered by its acceptor alone (503, "
			    "MaxConnections) %d times in a row: its HTTP "
			    "threads hang, or loopback clients hold every "
			    "connection",
			    p->closes);
		else
			snprintf(why, sizeof(why),
			    "closed unanswered %d times in a row: its HTTP "
			    "threads hang, or [frontend] PerIPConnectionLimit "
			    "is reached from this host",
			    p->closes);
		probe_missed(h, p, now, why);
		return;
	}
}

int
health_poll_items(struct health *h, zmq_pollitem_t *items, int max, int64_t now,
    int64_t *wait_ms)
{
	int n = 0;

	if (h == NULL)
		return 0;
	for (size_t i = 0; i < h->n; i++) {
		struct probe *p = &h->probe[i];
		int64_t until;

		p->item = -1;
		if (p->kind == PROBE_NONE || p->pid == 0 || p->killed)
			continue;
		until = p->state == PROBE_IDLE ? p->next_ms : p->deadline_ms;
		if (until - now < *wait_ms)
			*wait_ms = until - now < 0 ? 0 : until - now;
		if (p->state == PROBE_IDLE || n == max)
			continue;
		memset(&items[n], 0, sizeof(items[n]));
		if (p->state == PROBE_RPC_WAIT) {
			items[n].socket = p->sock;
			items[n].events = ZMQ_POLLIN;
		} else {
			items[n].fd = p->fd;
			items[n].events = p->state == PROBE_HTTP_READ
			    ? ZMQ_POLLIN
			    : ZMQ_POLLOUT;
		}
		p->item = n++;
	}
	return n;
}

void
health_step(struct health *h, size_t i, pid_t pid, int64_t started_ms,
    const zmq_pollitem_t *items, int64_t now)
{
	struct probe *p;

	if (h == NULL || i >= h->n)
		return;
	p = &h->probe[i];
	if (pid != p->pid || started_ms != p->started_ms) {
		/* Another child (or none): its counts start over. */
		probe_end(p);
		if (pid != 0) /* said only when it changed */
			probe_configure(h, p, 1);
		p->pid = pid;
		p->started_ms = started_ms;
		p->first_answer_ms = 0;
		p->answered_ms = 0;
		p->misses = 0;
		p->closes = 0;
		p->killed = 0;
		p->stuck_logged = 0;
		p->warned = 0;
		p->next_ms = started_ms +
		    (h->interval_ms < HEALTH_FIRST_MS ? h->interval_ms
		                                      : HEALTH_FIRST_MS);
		p->item = -1;
	}
	if (p->kind == PROBE_NONE)
		return;
	if (pid != 0 && p->killed && !p->stuck_logged &&
	    now - p->killed_ms >= SCEPD_STUCK_AFTER_MS) {
		/* Not restarted until it exits: say why nothing happens. */
		child_stuck_log(p->name, pid, "it is restarted when it exits");
		p->stuck_logged = 1;
	}
	if (pid == 0 || p->killed)
		return;
	if (p->state != PROBE_IDLE) {
		short revents = p->item >= 0 ? items[p->item].revents : 0;

		if (p->state == PROBE_RPC_WAIT) {
			if (revents != 0)
				probe_rpc_read(h, p, now);
		} else
			probe_http_step(h, p, revents, now);
	}
	if (p->state != PROBE_IDLE && now >= p->deadline_ms) {
		char why[64];

		snprintf(why, sizeof(why), "no answer within %lld s",
		    (long long)(h->timeout_ms / 1000));
		probe_missed(h, p, now, why);
	}
	if (p->state == PROBE_IDLE && !p->killed && now >= p->next_ms) {
		if (p->kind == PROBE_RPC)
			probe_rpc_send(h, p, now);
		else
			probe_http_send(h, p, now);
	}
	p->item = -1;
}

int
health_killed(const struct health *h, size_t i, pid_t pid)
{
	return h != NULL && i < h->n && pid != 0 && h->probe[i].pid == pid &&
	    h->probe[i].killed;
}

int64_t
health_served_ms(const struct health *h, size_t i, pid_t pid, int64_t now)
{
	const struct probe *p;

	if (h == NULL || i >= h->n || (p = &h->probe[i])->kind == PROBE_NONE)
		return -1;
	/* Not seen by health_step yet: never asked, so never answered. */
	if (p->pid != pid || p->first_answer_ms == 0)
		return 0;
	return now - p->first_answer_ms;
}
