/*
 * scepd-frontend start-up: arguments, configuration, the listening socket,
 * the ZeroMQ context, then libmicrohttpd until SIGINT or SIGTERM.
 */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <zmq.h>

#include "config.h"
#include "frontend.h"
#include "log.h"
#include "passwd.h"
#include "service.h"
#include "netaddr.h"

#define S(field) offsetof(struct frontend_settings, field)
static const struct config_key frontend_config[] = {
    {"Listen", CONFIG_STRING, 0, 0, "127.0.0.1:8080", S(listen),
        "HOST:PORT to serve HTTP on"},
    {"RAEndpoint", CONFIG_ENDPOINT, 0, 0, "ipc://run/ra.sock", S(ra_endpoint),
        "the RA's ZeroMQ endpoints"},
    {"ChallengeEndpoint", CONFIG_ENDPOINT, 0, 0, RPC_CHALLENGE_ENDPOINT_DEFAULT,
        S(challenge_endpoint), "the challenge service's ZeroMQ endpoints"},
    {"Paths", CONFIG_STRING, 0, 0, CONFIG_DEFAULT_SCEP_PATHS, S(paths),
        "SCEP paths served (space separated)"},
    {"AdminPath", CONFIG_STRING, 0, 0, "/certsrv/mscep_admin/", S(admin_path),
        "admin page; empty: none"},
    {"AdminPasswordFile", CONFIG_PATH, 0, 0, "admin.passwd",
        S(admin_password_file), "admin accounts (scepctl passwd)"},
    {"CRLPath", CONFIG_STRING, 0, 0, "/crl/ca.crl", S(crl_path),
        "where the CA's CRL is served over HTTP (\"\": nowhere)"},
    {"PreviousCRLPath", CONFIG_STRING, 0, 0, "", S(previous_crl_path),
        "where the CRL of the CA replaced is served ([ca] PreviousCAKey; "
        "\"\": nowhere)"},
    {"MaxQueryString", CONFIG_INT, 1024, RPC_MAX_PKI_MESSAGE, "65536",
        S(max_query_string), "longest query string (bytes); longer: 414"},
    {"MaxBodySize", CONFIG_INT, 1024, RPC_MAX_PKI_MESSAGE, "1048576",
        S(max_body_size), "largest POST body (bytes); larger: 413"},
    {"MaxBodiesHeld", CONFIG_INT, 1024, 1L << 40, "67108864",
        S(max_bodies_held),
        "POST bodies held at once, all connections together (bytes); "
        "past it 503 with Retry-After"},
    {"ConnectionTimeout", CONFIG_INT, 1, 3600, "15", S(connection_timeout),
        "seconds a connection may sit idle"},
    {"RequestDeadline", CONFIG_INT, 1, 3600, "30", S(request_deadline),
        "seconds a whole request may take; later: 408"},
    {"PerIPConnectionLimit", CONFIG_INT, 0, 65535, "32",
        S(per_ip_connection_limit), "connections per client address"},
    {"MaxConnections", CONFIG_INT, 16, 60000, "1024", S(max_connections),
        "connections at once, all clients; more get 503"},
    {"RPCTimeout", CONFIG_INT, 100, 600000, "5000", S(rpc_timeout),
        "milliseconds to wait for the RA or the challenge service"},
    {"Threads", CONFIG_INT, 0, 1024, "0", S(threads),
        "HTTP threads (0: one per core)"},
    {"UpstreamThreads", CONFIG_INT, 0, UPSTREAM_THREADS_MAX, "0",
        S(upstream_threads),
        "threads that wait on the RA and the challenge service, so that "
        "the HTTP threads never do (0: four per core, as many as ZeroMQ's "
        "sockets allow)"},
    {"ExternalURL", CONFIG_STRING, 0, 0, "", S(external_url),
        "SCEP URL put in configuration profiles; empty: from Listen and "
        "Paths"},
    {"AdminHosts", CONFIG_STRING, 0, 0, "", S(admin_hosts),
        "Host names the admin page and /metrics answer to besides "
        "localhost, loopback addresses and ExternalURL's host (space "
        "separated)"},
    {"SignProfiles", CONFIG_BOOL, 0, 1, "1", S(sign_profiles),
        "have the RA sign configuration profiles"},
    {"ProfileOrganization", CONFIG_STRING, 0, 0, "scepd",
        S(profile_organization), "PayloadOrganization of profiles"},
    {"ProfileKeyIsExtractable", CONFIG_BOOL, 0, 1, "0",
        S(profile_key_extractable),
        "1: a profile's key may leave the device's keychain (Apple's "
        "default); 0: KeyIsExtractable = false"},
    {"ProfileRetries", CONFIG_INT, 0, 10000, "3", S(profile_retries),
        "times a device polls after PENDING (Retries; Apple's default 3)"},
    {"ProfileRetryDelay", CONFIG_INT, 1, 86400, "10", S(profile_retry_delay),
        "seconds between its polls (RetryDelay; Apple's default 10)"},
    {"TrustedProxies", CONFIG_STRING, 0, 0, "", S(trusted_proxies),
        "reverse proxies (addresses or ADDRESS/BITS) whose "
        "X-Forwarded-For names the client"},
    {"RAServerKey", CONFIG_STRING, 0, 0, "", S(ra_server_key),
        "the RA's CurveZMQ public key file (one per RAEndpoint, or one)"},
    {"ChallengeServerKey", CONFIG_STRING, 0, 0, "", S(challenge_server_key),
        "the challenge service's CurveZMQ public key file"},
    {"CurveSecretKeyFile", CONFIG_PATH, 0, 0, "", S(curve.secret_key_file),
        "CurveZMQ secret key of the frontend (scepctl keygen), mode 0600"},
    {"CurvePublicKeyFile", CONFIG_PATH, 0, 0, "", S(curve.public_key_file),
        "its public key, checked against the secret one"},
    {"AllowInsecureTransport", CONFIG_BOOL, 0, 1, "0", S(curve.allow_insecure),
        "1: tcp:// without CurveZMQ (unsafe)"},
    SANDBOX_CONFIG_KEYS(struct frontend_settings, sandbox),
    CONFIG_END,
};
#undef S

static void
usage(void)
{
	fprintf(stderr,
	    "usage: scepd-frontend --config FILE [--listen HOST:PORT]\n");
}

/* Binds and listens; a busy or wrong address is reported here, clearly,
 * rather than as libmicrohttpd's NULL daemon. */
static int
listen_open(const char *spec)
{
	struct addrinfo hints, *res = NULL, *ai;
	char host[256];
	const char *port;
	int fd = -1, e = 0, one = 1, gai;

	if (netaddr_split_listen(spec, host, sizeof(host), &port) != 0) {
		fprintf(stderr,
		    "scepd-frontend: Listen '%s' is not HOST:PORT\n", spec);
		return -1;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if ((gai = getaddrinfo(host[0] ? host : NULL, port, &hints, &res)) !=
	    0) {
		fprintf(stderr, "scepd-frontend: Listen '%s': %s\n", spec,
		    gai_strerror(gai));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family,
		    ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			e = errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
		    listen(fd, 128) == 0)
			break;
		e = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		fprintf(stderr, "scepd-frontend: cannot listen on %s: %s\n",
		    spec, strerror(e));
	return fd;
}

/* CRLPath, PreviousCRLPath: a path no request could ask for would leave
 * the CRL distribution point 404 for good; they are matched before the
 * admin page and the SCEP paths, so one of theirs would be taken from
 * them. The number of problems, each printed. */
static int
crl_path_check(const struct frontend *fe, const char *file, const char *setting,
    const char *crl)
{
	const char *taken = NULL;

	if (crl[0] == '\0')
		return 0;
	if (crl[0] != '/') {
		fprintf(stderr,
		    "%s: [frontend] %s: '%s' does not start with '/'\n", file,
		    setting, crl);
		return 1;
	}
	if (strcmp(crl, "/healthz") == 0 || strcmp(crl, "/metrics") == 0)
		taken = "the server's own";
	else if (http_scep_path(fe, crl) != NULL)
		taken = "a SCEP path (Paths)";
	else if (admin_subpath(fe, crl) != NULL)
		taken = "under AdminPath";
	else if (crl != fe->settings.crl_path &&
	    strcmp(crl, fe->settings.crl_path) == 0)
		taken = "CRLPath, the CA's own CRL";
	if (taken == NULL)
		return 0;
	fprintf(stderr, "%s: [frontend] %s: '%s' is %s\n", file, setting, crl,
	    taken);
	return 1;
}

/* Paths and AdminPath; every problem is printed, as config_load does. */
static int
frontend_prepare(struct frontend *fe, const char *file)
{
	char *copy = NULL, *tok, *save = NULL, text[160];
	int errors = 0;
	size_t n = 0;

	if ((copy = strdup(fe->settings.paths)) == NULL ||
	    (fe->paths = calloc(strlen(copy) / 2 + 2, sizeof(char *))) ==
	        NULL) {
		free(copy);
		return -1;
	}
	for (tok = strtok_r(copy, " \t", &save); tok != NULL;
	     tok = strtok_r(NULL, " \t", &save)) {
		if (tok[0] != '/') {
			fprintf(stderr,
			    "%s: [frontend] Paths: '%s' does not start with "
			    "'/'\n",
			    file, tok);
			errors++;
			continue;
		}
		if ((fe->paths[n++] = strdup(tok)) == NULL)
			errors++;
	}
	fe->npaths = n;
	free(copy);
	if (n == 0 && errors == 0) {
		fprintf(stderr, "%s: [frontend] Paths: no path given\n", file);
		errors++;
	}
	/* Devices are given this URL as is: only http(s) makes sense. */
	if (fe->settings.external_url[0] != '\0' &&
	    strncasecmp(fe->settings.external_url, "http://", 7) != 0 &&
	    strncasecmp(fe->settings.external_url, "https://", 8) != 0) {
		fprintf(stderr,
		    "%s: [frontend] ExternalURL: '%s' is not an http:// or "
		    "https:// URL\n",
		    file, fe->settings.external_url);
		errors++;
	}
	fe->hostname[sizeof(fe->hostname) - 1] = '\0';
	if (gethostname(fe->hostname, sizeof(fe->hostname) - 1) != 0 ||
	    host_header_name(
	        fe->hostname, fe->hostname, sizeof(fe->hostname)) != 0)
		fe->hostname[0] = '\0'; /* none to admit */
	if (netmask_list_parse(fe->settings.trusted_proxies,
	        &fe->trusted_proxies, text, sizeof(text)) != 0) {
		fprintf(
		    stderr, "%s: [frontend] TrustedProxies: %s\n", file, text);
		errors++;
	}
	for (const char *h = fe->settings.admin_hosts; *h != '\0';) {
		char tok[256], name[256];
		size_t len;

		h += strspn(h, " \t,");
		if ((len = strcspn(h, " \t,")) == 0)
			break;
		snprintf(tok, sizeof(tok), "%.*s", (int)len, h);
		/* Compared with what a Host header names, port left out. */
		if (len >= sizeof(tok) ||
		    host_header_name(tok, name, sizeof(name)) != 0 ||
		    strcasecmp(name, tok) != 0) {
			fprintf(stderr,
			    "%s: [frontend] AdminHosts: '%s' is not a host "
			    "name without a port\n",
			    file, tok);
			errors++;
		}
		h += len;
	}
	if (fe->settings.admin_path[0] != '\0' &&
	    fe->settings.admin_path[0] != '/') {
		fprintf(stderr,
		    "%s: [frontend] AdminPath: '%s' does not start with '/'\n",
		    file, fe->settings.admin_path);
		errors++;
	}
	/* The admin page is routed first: a SCEP path under it would answer
	 * every device 404. */
	for (size_t i = 0; i < fe->npaths && fe->paths[i] != NULL; i++) {
		/* ... nor the IIS alias PATH/pkiclient.exe (http.c) */
		char alias[1024];

		snprintf(
		    alias, sizeof(alias), "%s/pkiclient.exe", fe->paths[i]);
		if (admin_subpath(fe, fe->paths[i]) != NULL ||
		    admin_subpath(fe, alias) != NULL) {
			fprintf(stderr,
			    "%s: [frontend] AdminPath: '%s' holds '%s', a SCEP "
			    "path (Paths)\n",
			    file, fe->settings.admin_path,
			    admin_subpath(fe, fe->paths[i]) != NULL
			        ? fe->paths[i]
			        : alias);
			errors++;
		}
	}
	errors += crl_path_check(fe, file, "CRLPath", fe->settings.crl_path);
	errors += crl_path_check(
	    fe, file, "PreviousCRLPath", fe->settings.previous_crl_path);
	return errors ? -1 : 0;
}

static void
frontend_free(struct frontend *fe)
{
	for (size_t i = 0; fe->paths != NULL && fe->paths[i] != NULL; i++)
		free(fe->paths[i]);
	free(fe->paths);
	netmask_list_free(&fe->trusted_proxies);
	rpc_link_free(fe->ra_link);
	rpc_link_free(fe->challenge_link);
	rpc_curve_free(fe->curve);
	config_free(frontend_config, &fe->settings);
}

/*
 * Descriptors: libmicrohttpd takes up to about a thousand connections and
 * each UpstreamThread's ZeroMQ socket has its own, so a soft limit of 1024
 * (systemd's default) ran out before either (the acceptor then pauses):
 * raised to the hard limit, at most 65536, logged.
 */
static void
frontend_raise_nofile(void)
{
	struct rlimit rl;
	rlim_t was;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= 65536 ||
	    rl.rlim_cur >= rl.rlim_max)
		return;
	was = rl.rlim_cur;
	rl.rlim_cur = rl.rlim_max < 65536 ? rl.rlim_max : 65536;
	if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
		log_info("open files: the soft limit raised from %llu to %llu",
		    (unsigned long long)was, (unsigned long long)rl.rlim_cur);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"listen", required_argument, NULL, 'l'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct frontend fe;
	const char *config_file = NULL, *listen_arg = NULL;
	sigset_t stop;
	int c, sig, fd = -1, key = 0, rc = 1;

	memset(&fe, 0, sizeof(fe));
	cache_init(&fe.cache);
	admin_guard_init(&fe.admin_guard);
	while ((c = getopt_long(argc, argv, "c:l:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config_file = optarg;
			break;
		case 'l':
			listen_arg = optarg;
			break;
		case 'h':
			usage();
			rc = 0;
			goto out;
		default:
			usage();
			goto out;
		}
	}
	if (config_file == NULL || optind != argc) {
		usage();
		goto out;
	}
	/* Before its CurveZMQ secret key is read, as the other services. */
	if (service_no_dumps("scepd-frontend") != 0)
		goto out;
	log_init("scepd-frontend", LOG_LEVEL_INFO);
	if (config_load(
	        config_file, "frontend", frontend_config, &fe.settings) != 0)
		goto out;
	/* Else every body that large got 503 with Retry-After, forever. */
	if (fe.settings.max_bodies_held < fe.settings.max_body_size) {
		fprintf(stderr,
		    "scepd-frontend: [frontend] MaxBodiesHeld = %ld is below "
		    "MaxBodySize = %ld: a body that large could never be "
		    "read\n",
		    fe.settings.max_bodies_held, fe.settings.max_body_size);
		goto out;
	}
	if (listen_arg != NULL) {
		free(fe.settings.listen);
		if ((fe.settings.listen = strdup(listen_arg)) == NULL)
			goto out;
	}
	frontend_raise_nofile();
	if ((fe.curve = rpc_curve_load(
	         &fe.settings.curve, NULL, config_file, "frontend")) == NULL)
		goto out;
	fe.ra_link = rpc_link_new(fe.curve, fe.settings.ra_endpoint,
	    fe.settings.ra_server_key, config_file, "frontend", "RAEndpoint",
	    "RAServerKey");
	fe.challenge_link = rpc_link_new(fe.curve,
	    fe.settings.challenge_endpoint, fe.settings.challenge_server_key,
	    config_file, "frontend", "ChallengeEndpoint", "ChallengeServerKey");
	if (fe.ra_link == NULL || fe.challenge_link == NULL)
		goto out;
	if (frontend_prepare(&fe, config_file) != 0 ||
	    (fd = listen_open(fe.settings.listen)) < 0)
		goto out;

	/* The workers inherit this mask: only sigwait below takes them. */
	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	if (service_hangup_stops())
		sigaddset(&stop, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (pthread_key_create(&fe.clients_key, upstream_thread_free) != 0)
		goto out;
	key = 1;
	/* Everything is open: give up the rest before the first thread. */
	if (frontend_sandbox_enter(&fe, config_file) != 0)
		goto out;
	if ((fe.zmq_ctx = zmq_ctx_new()) == NULL) {
		fprintf(stderr,
		    "scepd-frontend: cannot create a ZeroMQ "
		    "context\n");
		goto out;
	}
	if ((fe.watchdog = watchdog_start(fe.settings.request_deadline,
	         fe.settings.connection_timeout)) == NULL) {
		fprintf(stderr, "scepd-frontend: cannot start a thread\n");
		goto out;
	}
	if (http_start(&fe, fd) != 0) {
		fd = -1; /* closed */
		fprintf(stderr,
		    "scepd-frontend: cannot start the HTTP server "
		    "on %s\n",
		    fe.settings.listen);
		goto out;
	}
	fd = -1; /* http_stop closes it */
	/* As every login reads it: a symbolic link is refused there. */
	if (fe.settings.admin_path[0] != '\0' &&
	    passwd_file_usable(fe.settings.admin_password_file) != 0)
		log_warn("AdminPasswordFile %s: %s; the admin page will answer "
		         "500 until it can be read",
		    fe.settings.admin_password_file, passwd_strerror(errno));
#ifdef SCEPD_TEST_HOOKS
	/* Test builds only: a slow start between the HTTP threads and the
	 * filter, to show no request is served before it. */
	if (getenv("SCEPD_TEST_FRONTEND_LOCK_DELAY_MS") != NULL) {
		long ms = atol(getenv("SCEPD_TEST_FRONTEND_LOCK_DELAY_MS"));
		struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

		nanosleep(&ts, NULL);
	}
#endif
	/* libmicrohttpd's threads run: the seccomp filter, on all. */
	if (frontend_sandbox_lock() != 0 || http_accept_start(&fe) != 0) {
		http_stop(&fe);
		goto out;
	}
	log_info("serving HTTP on %s; RA %s, challenge service %s",
	    fe.settings.listen, fe.settings.ra_endpoint,
	    fe.settings.challenge_endpoint);
	/* A request may wait RPCTimeout for an UpstreamThread, then as long
	 * for the service; RequestDeadline would cut it off first. */
	if (fe.settings.request_deadline * 1000 <= 2 * fe.settings.rpc_timeout)
		log_warn(
		    "RequestDeadline = %ld s is not above twice RPCTimeout "
		    "= %ld ms in [frontend]: a request that waits for one "
		    "of the UpstreamThreads and then for the RA may be cut "
		    "off before its 503",
		    fe.settings.request_deadline, fe.settings.rpc_timeout);
	/* A profile waits four times: its turn, the CA certificate (when
	 * not cached), its password, its signature (SignProfiles). */
	else if (fe.settings.request_deadline * 1000 <=
	    (fe.settings.sign_profiles ? 4 : 3) * fe.settings.rpc_timeout)
		log_warn("RequestDeadline = %ld s is not above %d times "
		         "RPCTimeout = %ld ms in [frontend]: a profile (its "
		         "turn, the CA certificate, a password%s) may be cut "
		         "off after its password was issued",
		    fe.settings.request_deadline,
		    fe.settings.sign_profiles ? 4 : 3, fe.settings.rpc_timeout,
		    fe.settings.sign_profiles ? ", the RA's signature" : "");
	if (fe.settings.admin_path[0] != '\0' &&
	    fe.settings.profile_key_extractable)
		log_warn("ProfileKeyIsExtractable = 1: configuration profiles "
		         "let devices export the private key of their SCEP "
		         "certificate (KeyIsExtractable = true)");
	/* Profiles name ExternalURL, else Listen: a loopback or wildcard
	 * host there is no device's way in (profile_scep_url). */
	if (fe.settings.admin_path[0] != '\0' &&
	    fe.settings.external_url[0] == '\0') {
		char host[256];

		if (host_header_name(fe.settings.listen, host, sizeof(host)) !=
		        0 ||
		    host_name_is_loopback(host) ||
		    strcmp(host, "0.0.0.0") == 0 || strcmp(host, "[::]") == 0)
			log_warn(
			    "ExternalURL is not set: configuration profiles "
			    "will give devices this machine's Listen = %s "
			    "(or its host name), which a device may not "
			    "reach; set [frontend] ExternalURL to the URL "
			    "devices use",
			    fe.settings.listen);
	}
	if (fe.settings.admin_path[0] != '\0' &&
	    fe.settings.external_url[0] != '\0') {
		char path[512];

		if (profile_url_scep_path(&fe, fe.settings.external_url, path,
		        sizeof(path)) == NULL)
			log_warn(
			    "ExternalURL = %s: its path is none of [frontend] "
			    "Paths (a proxy's that rewrites it?): profiles' "
			    "passwords are issued for the default paths' "
			    "validator ([challenge] Validator), whatever "
			    "[challenge.paths] says of the path devices reach",
			    fe.settings.external_url);
	}
	if (fe.trusted_proxies.n > 0) {
		log_info("TrustedProxies = %s: their X-Forwarded-For names "
		         "the client",
		    fe.settings.trusted_proxies);
		/* libmicrohttpd counts connections by peer address. */
		if (fe.settings.per_ip_connection_limit > 0)
			log_warn("PerIPConnectionLimit = %ld counts each proxy "
			         "as one client: set it to 0 and limit "
			         "connections per device in the proxy",
			    fe.settings.per_ip_connection_limit);
	}
	do {
		if (sigwait(&stop, &sig) != 0)
			sig = 0;
	} while (sig != SIGINT && sig != SIGTERM && sig != SIGHUP);
	log_info("stopping on signal %d", sig);
	http_stop(&fe);
	rc = 0;
out:
	/* After the daemon: its connections are all closed by now. */
	watchdog_stop(fe.watchdog);
	if (fe.zmq_ctx != NULL)
		zmq_ctx_term(fe.zmq_ctx);
	if (key)
		pthread_key_delete(fe.clients_key);
	if (fd >= 0)
		close(fd);
	crl_cache_clear(&fe.crl);
	crl_cache_clear(&fe.previous_crl);
	cache_free(&fe.cache);
	admin_guard_free(&fe.admin_guard);
	frontend_free(&fe);
	frontend_sandbox_free();
	return rc;
}
