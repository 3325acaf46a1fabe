/*
 * plugins/webhook: the shared object as a host sees it (dlopen, the ABI
 * table), asking tests/tools/webhook_server.py, a stand-in MDM on 127.0.0.1
 * with certificates made here by openssl.
 */
#include <dlfcn.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "plugin.h"

#define CHALLENGE "s3cret-CHALLENGE-42" /* must never reach a log line */
#define CLIENT_CN "webhook client"

static char workdir[256];
static char csr_pem[4096];
static void *plugin_handle;
static const struct scepd_challenge_validator *validator;

static pid_t server_pid = -1;
static int server_port;
static char record_path[512];
static char port_path[512];

/* The configuration the fake host serves; value NULL: unset. */
#define MAX_CONFIG 8
static struct {
	const char *key;
	const char *value;
} config[MAX_CONFIG];
static char log_text[16384];

static const char *
host_config_get(const struct scepd_plugin_host *host, const char *key)
{
	(void)host;
	for (size_t i = 0; i < MAX_CONFIG && config[i].key != NULL; i++)
		if (strcmp(config[i].key, key) == 0)
			return config[i].value;
	return NULL;
}

static void host_log(const struct scepd_plugin_host *host, int level,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
host_log(const struct scepd_plugin_host *host, int level, const char *fmt, ...)
{
	static const char *const names[] = {"DEBUG", "INFO", "WARN", "ERROR"};
	size_t used = strlen(log_text);
	va_list ap;

	(void)host;
	assert_true(level >= 0 && level <= 3);
	snprintf(log_text + used, sizeof(log_text) - used, "%s ", names[level]);
	used = strlen(log_text);
	va_start(ap, fmt);
	vsnprintf(log_text + used, sizeof(log_text) - used, fmt, ap);
	va_end(ap);
	used = strlen(log_text);
	snprintf(log_text + used, sizeof(log_text) - used, "\n");
}

static const struct scepd_plugin_host host = {
    .abi_version = SCEPD_PLUGIN_ABI_VERSION,
    .size = sizeof(struct scepd_plugin_host),
    .instance = "mdm",
    .config_get = host_config_get,
    .log = host_log,
    .opaque = NULL,
};

static void
set_config(const char *key, const char *value)
{
	size_t i;

	for (i = 0; i < MAX_CONFIG - 1 && config[i].key != NULL; i++)
		if (strcmp(config[i].key, key) == 0)
			break;
	config[i].key = key;
	config[i].value = value;
}

/* A path in the work directory; static buffers, four in rotation. */
static const char *
work(const char *name)
{
	static char bufs[4][512];
	static int next;
	char *b = bufs[next++ % 4];

	snprintf(b, sizeof(bufs[0]), "%s/%s", workdir, name);
	return b;
}

static void
run(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;
	int rc;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	rc = system(cmd);
	if (rc != 0)
		fail_msg("command failed (%d): %s", rc, cmd);
}

static size_t
read_file(const char *path, char *buf, size_t buflen)
{
	FILE *f = fopen(path, "r");
	size_t n = 0;

	if (f != NULL) {
		n = fread(buf, 1, buflen - 1, f);
		fclose(f);
	}
	buf[n] = '\0';
	return n;
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Starts the stand-in MDM; TLS unless plain. Stopped by the teardown. */
static void
server_start(const char *mode, int plain, int require_client_cert)
{
	const char *argv[16];
	size_t argc = 0;
	char buf[32];

	unlink(port_path);
	argv[argc++] = "python3";
	argv[argc++] = WEBHOOK_SERVER;
	argv[argc++] = "--mode";
	argv[argc++] = mode;
	argv[argc++] = "--port-file";
	argv[argc++] = port_path;
	argv[argc++] = "--record";
	argv[argc++] = record_path;
	if (!plain) {
		argv[argc++] = "--cert";
		argv[argc++] = work("server.pem");
		argv[argc++] = "--key";
		argv[argc++] = work("server.key");
	}
	if (require_client_cert) {
		argv[argc++] = "--client-ca";
		argv[argc++] = work("ca.pem");
	}
	argv[argc] = NULL;

	server_pid = fork();
	assert_true(server_pid >= 0);
	if (server_pid == 0) {
		execvp("python3", (char *const *)argv);
		_exit(127);
	}
	for (int i = 0; i < 200; i++) {
		int status;

		if (read_file(port_path, buf, sizeof(buf)) > 0) {
			server_port = atoi(buf);
			assert_true(server_port > 0);
			return;
		}
		if (waitpid(server_pid, &status, WNOHANG) == server_pid) {
			server_pid = -1;
			fail_msg("webhook_server.py exited at start");
		}
		usleep(50000);
	}
	fail_msg("webhook_server.py wrote no port within 10 s");
}

static void
server_stop(void)
{
	if (server_pid > 0) {
		kill(server_pid, SIGKILL);
		waitpid(server_pid, NULL, 0);
	}
	server_pid = -1;
}

/* The URL of the running server, https:// unless plain. */
static const char *
server_url(int plain, const char *path)
{
	static char url[256];

	snprintf(url, sizeof(url), "%s://127.0.0.1:%d%s",
	    plain ? "http" : "https", server_port, path);
	return url;
}

/* The requests the server recorded, as a JSON array of the lines. */
static json_t *
recorded(void)
{
	static char text[65536];
	json_t *all = json_array();
	char *line, *save = NULL;

	read_file(record_path, text, sizeof(text));
	for (line = strtok_r(text, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		json_error_t err;
		json_t *one = json_loads(line, 0, &err);

		if (one == NULL)
			fail_msg("recorded line is not JSON: %s", err.text);
		json_array_append_new(all, one);
	}
	return all;
}

static const char *const sample_sans[] = {
    "DNS:device1.example.com", "email:device1@example.com", NULL};

static struct scepd_challenge_request
sample_request(void)
{
	struct scepd_challenge_request req = {
	    .challenge = CHALLENGE,
	    .transaction_id = "2F3C88114C283E9A6CD57BB8F2B5D5B3",
	    .path = "/scep/mdm",
	    .csr_der = (const unsigned char *)"\x30\x00",
	    .csr_der_len = 2,
	    .csr_pem = csr_pem,
	    .subject = "O=Fabrikam,CN=device 1",
	    .sans = sample_sans,
	    .requester = "192.0.2.7",
	};

	return req;
}

static int
init_plugin(void **state, char *err, size_t errlen)
{
	err[0] = '\0';
	return validator->init(&host, state, err, errlen);
}

/* init, one check of the sample request, destroy: the verdict. */
static enum scepd_verdict
check_once(char *why, size_t whylen, double *seconds)
{
	struct scepd_challenge_request req = sample_request();
	enum scepd_verdict verdict;
	void *state = NULL;
	char err[512];
	double t0;

	if (init_plugin(&state, err, sizeof(err)) != 0)
		fail_msg("init failed: %s", err);
	memset(why, 'X', whylen);
	t0 = now();
	verdict = validator->check(state, &req, why, whylen);
	if (seconds != NULL)
		*seconds = now() - t0;
	validator->destroy(state);
	assert_non_null(memchr(why, '\0', whylen));
	return verdict;
}

static void
assert_printable(const char *s)
{
	for (; *s != '\0'; s++)
		if (*s < 0x20 || *s > 0x7e)
			fail_msg("non-printable byte 0x%02x in \"%s\"",
			    (unsigned char)*s, s);
}

/* The challenge never reaches the log; every decision does. */
static void
assert_log_clean(const char *decision)
{
	if (strstr(log_text, CHALLENGE) != NULL)
		fail_msg("the challenge was logged:\n%s", log_text);
	if (strstr(log_text, decision) == NULL)
		fail_msg("no \"%s\" in the log:\n%s", decision, log_text);
	for (const char *c = log_text; *c != '\0'; c++)
		if (*c != '\n' && (*c < 0x20 || *c > 0x7e))
			fail_msg(
			    "non-printable byte in the log:\n%s", log_text);
}

static void
assert_contains(const char *haystack, const char *needle)
{
	if (strstr(haystack, needle) == NULL)
		fail_msg("\"%s\" does not contain \"%s\"", haystack, needle);
}

static void
use_test_ca(void)
{
	set_config("CAFile", work("ca.pem"));
}

/* Expects `verdict` from a server in `mode`, with `cause` in why and the
 * decision logged as `logged`. */
static void
expect_verdict(const char *mode, enum scepd_verdict verdict, const char *cause,
    const char *logged)
{
	char why[512];

	server_start(mode, 0, 0);
	set_config("URL", server_url(0, "/challenge"));
	use_test_ca();
	assert_int_equal(check_once(why, sizeof(why), NULL), verdict);
	assert_contains(why, cause);
	assert_printable(why);
	assert_log_clean(logged);
}

static void
expect_refusal(const char *mode, const char *cause)
{
	expect_verdict(mode, SCEPD_VERDICT_REFUSE, cause, "refused");
}

static void
expect_unavailable(const char *mode, const char *cause)
{
	expect_verdict(
	    mode, SCEPD_VERDICT_UNAVAILABLE, cause, "could not decide");
}

static int
group_setup(void **state)
{
	static const char *const proxies[] = {"http_proxy", "https_proxy",
	    "HTTPS_PROXY", "all_proxy", "ALL_PROXY"};
	const char *ec = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
	char tmpl[] = "/tmp/scepd-test-webhook.XXXXXX";

	(void)state;
	/* Only 127.0.0.1, never through a proxy of the environment. */
	for (size_t i = 0; i < sizeof(proxies) / sizeof(proxies[0]); i++)
		unsetenv(proxies[i]);
	if (mkdtemp(tmpl) == NULL)
		return -1;
	snprintf(workdir, sizeof(workdir), "%s", tmpl);
	snprintf(
	    record_path, sizeof(record_path), "%s/requests.jsonl", workdir);
	snprintf(port_path, sizeof(port_path), "%s/port", workdir);

	/* The MDM's CA and server certificate, another CA, a client
	 * certificate from the first, and a device's CSR. */
	run("cd %s && openssl req -x509 %s -days 2 -subj /CN=webhook-ca "
	    "-keyout ca.key -out ca.pem 2>/dev/null",
	    workdir, ec);
	run("cd %s && openssl req -x509 %s -days 2 -subj /CN=other-ca "
	    "-keyout other-ca.key -out other-ca.pem 2>/dev/null",
	    workdir, ec);
	run("cd %s && openssl req -x509 %s -days 2 -subj /CN=127.0.0.1 "
	    "-CA ca.pem -CAkey ca.key "
	    "-addext subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost "
	    "-addext basicConstraints=critical,CA:FALSE "
	    "-addext extendedKeyUsage=serverAuth "
	    "-keyout server.key -out server.pem 2>/dev/null",
	    workdir, ec);
	run("cd %s && openssl req -x509 %s -days 2 -subj '/CN=" CLIENT_CN "' "
	    "-CA ca.pem -CAkey ca.key "
	    "-addext basicConstraints=critical,CA:FALSE "
	    "-addext extendedKeyUsage=clientAuth "
	    "-keyout client.key -out client.pem 2>/dev/null",
	    workdir, ec);
	run("cd %s && cp client.key client-shared.key && "
	    "chmod 640 client-shared.key",
	    workdir);
	run("cd %s && openssl pkey -in client.key -aes256 -passout pass:x "
	    "-out client-encrypted.key && chmod 600 client-encrypted.key",
	    workdir);
	run("cd %s && openssl req -new %s -subj '/O=Fabrikam/CN=device 1' "
	    "-keyout csr.key -out csr.pem 2>/dev/null",
	    workdir, ec);
	read_file(work("csr.pem"), csr_pem, sizeof(csr_pem));

	plugin_handle = dlopen(WEBHOOK_PLUGIN, RTLD_NOW | RTLD_LOCAL);
	if (plugin_handle == NULL) {
		fprintf(stderr, "dlopen %s: %s\n", WEBHOOK_PLUGIN, dlerror());
		return -1;
	}
	validator = dlsym(plugin_handle, SCEPD_CHALLENGE_VALIDATOR_SYMBOL);
	return validator == NULL ? -1 : 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	if (plugin_handle != NULL)
		dlclose(plugin_handle);
	if (workdir[0] != '\0' && getenv("KEEP") == NULL)
		run("rm -rf '%s'", workdir);
	return 0;
}

static int
setup(void **state)
{
	(void)state;
	memset(config, 0, sizeof(config));
	log_text[0] = '\0';
	unlink(record_path);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	server_stop();
	/* What the plugin logged, for whoever reads a failure. */
	fprintf(stderr, "%s", log_text);
	return 0;
}

static void
test_abi_table(void **state)
{
	static const char *const want[] = {
	    "URL", "CAFile", "ClientCertificate", "ClientKey", "Timeout"};
	size_t n = 0;

	(void)state;
	assert_int_equal(validator->abi_version, SCEPD_PLUGIN_ABI_VERSION);
	assert_string_equal(validator->name, "webhook");
	for (; validator->keys[n] != NULL; n++) {
		assert_true(n < sizeof(want) / sizeof(want[0]));
		assert_string_equal(validator->keys[n], want[n]);
	}
	assert_int_equal(n, sizeof(want) / sizeof(want[0]));
	assert_non_null(validator->init);
	assert_non_null(validator->check);
	assert_non_null(validator->destroy);
	/* Only the table is exported: nothing of the plugin leaks into the
	 * host's symbol space. */
	assert_null(dlsym(plugin_handle, "webhook_init"));
	/* A host built before a field was added says so by its size. */
	struct scepd_plugin_host older = host;

	assert_true(SCEPD_PLUGIN_HOST_HAS(&host, issued_for_subject));
	older.size = offsetof(struct scepd_plugin_host, issued_for_subject);
	assert_false(SCEPD_PLUGIN_HOST_HAS(&older, issued_for_subject));
	assert_true(SCEPD_PLUGIN_HOST_HAS(&older, opaque));
}

static void
test_allow(void **state)
{
	struct scepd_challenge_request req = sample_request();
	json_t *lines, *line, *got, *sans;
	void *plugin = NULL;
	char err[512], why[256];

	(void)state;
	server_start("allow", 0, 0);
	/* An API key in the query, as Azure Functions take it: sent, never
	 * logged. */
	set_config("URL", server_url(0, "/challenge?code=APIKEY123"));
	use_test_ca();
	set_config("Timeout", "5");
	assert_int_equal(init_plugin(&plugin, err, sizeof(err)), 0);
	/* Twice on one state: the curl handle is reused. */
	for (int i = 0; i < 2; i++) {
		assert_int_equal(
		    validator->check(plugin, &req, why, sizeof(why)),
		    SCEPD_VERDICT_ALLOW);
		assert_string_equal(why, "");
	}
	validator->destroy(plugin);

	lines = recorded();
	assert_int_equal(json_array_size(lines), 2);
	line = json_array_get(lines, 0);
	assert_string_equal(
	    json_string_value(json_object_get(line, "content_type")),
	    "application/json");
	assert_string_equal(
	    json_string_value(json_object_get(line, "user_agent")),
	    "scepd-webhook/1");
	assert_string_equal(json_string_value(json_object_get(line, "path")),
	    "/challenge?code=APIKEY123");
	got = json_object_get(line, "request");
	assert_true(json_is_object(got));
	assert_string_equal(
	    json_string_value(json_object_get(got, "challenge")), CHALLENGE);
	assert_string_equal(
	    json_string_value(json_object_get(got, "transaction_id")),
	    req.transaction_id);
	assert_int_equal(strncmp(json_string_value(json_object_get(got, "csr")),
	                     "-----BEGIN CERTIFICATE REQUEST-----", 35),
	    0);
	assert_string_equal(
	    json_string_value(json_object_get(got, "csr")), csr_pem);
	assert_string_equal(
	    json_string_value(json_object_get(got, "subject")), req.subject);
	assert_string_equal(
	    json_string_value(json_object_get(got, "requester")),
	    req.requester);
	assert_string_equal(
	    json_string_value(json_object_get(got, "path")), req.path);
	sans = json_object_get(got, "sans");
	assert_int_equal(json_array_size(sans), 2);
	assert_string_equal(
	    json_string_value(json_array_get(sans, 0)), sample_sans[0]);
	assert_string_equal(
	    json_string_value(json_array_get(sans, 1)), sample_sans[1]);
	json_decref(lines);

	assert_log_clean("allowed transaction "
	                 "2F3C88114C283E9A");
	if (strstr(log_text, "APIKEY123") != NULL)
		fail_msg("the URL's query was logged:\n%s", log_text);
}

static void
test_no_sans_sent_as_empty_array(void **state)
{
	struct scepd_challenge_request req = sample_request();
	json_t *lines, *got;
	void *plugin = NULL;
	char err[512], why[256];

	(void)state;
	server_start("allow", 0, 0);
	set_config("URL", server_url(0, "/"));
	use_test_ca();
	assert_int_equal(init_plugin(&plugin, err, sizeof(err)), 0);
	req.sans = NULL;
	req.transaction_id = NULL;
	assert_int_equal(validator->check(plugin, &req, why, sizeof(why)),
	    SCEPD_VERDICT_ALLOW);
	validator->destroy(plugin);
	lines = recorded();
	got = json_object_get(json_array_get(lines, 0), "request");
	assert_true(json_is_array(json_object_get(got, "sans")));
	assert_int_equal(json_array_size(json_object_get(got, "sans")), 0);
	assert_true(json_is_null(json_object_get(got, "transaction_id")));
	json_decref(lines);
}

static void
test_deny(void **state)
{
	(void)state;
	/* The MDM's reason is passed on, its control character replaced. */
	expect_refusal("deny",
	    "the MDM webhook refused the challenge: "
	    "device not enrolled? in MDM");
}

static void
test_allow_as_string(void **state)
{
	(void)state;
	expect_refusal("allow-string",
	    "the MDM webhook's answer is not {\"allow\": true}");
}

/* The MDM's own outage: 503 to the device (it comes back later), not a
 * refusal counted against its address. */
static void
test_http500(void **state)
{
	(void)state;
	expect_unavailable(
	    "http500", "the MDM webhook answered HTTP 500: database down");
}

static void
test_garbage(void **state)
{
	(void)state;
	expect_refusal(
	    "garbage", "the MDM webhook's answer is not {\"allow\": true}");
}

static void
test_duplicate_allow(void **state)
{
	(void)state;
	expect_refusal(
	    "duplicate", "the MDM webhook's answer is not {\"allow\": true}");
}

static void
test_huge_answer(void **state)
{
	(void)state;
	expect_refusal("huge", "larger than 64 KiB");
}

/* A large answer of another status is no verdict either: a proxy's error
 * page while the MDM is down is not the device's wrong password. */
static void
test_huge_error_page(void **state)
{
	(void)state;
	expect_unavailable("huge502", "the MDM webhook answered HTTP 502");
}

/* A status other than 200 is no verdict on the device: our side's
 * mistake (an API key the MDM no longer takes) is not its wrong
 * password. */
static void
test_forbidden(void **state)
{
	(void)state;
	expect_unavailable("forbidden", "the MDM webhook answered HTTP 403");
}

static void
test_redirect_not_followed(void **state)
{
	(void)state;
	expect_unavailable("redirect", "the MDM webhook answered HTTP 302");
	json_t *lines = recorded();
	assert_int_equal(json_array_size(lines), 1);
	json_decref(lines);
}

static void
test_slow(void **state)
{
	char why[256];
	double took;

	(void)state;
	server_start("slow", 0, 0);
	set_config("URL", server_url(0, "/challenge"));
	use_test_ca();
	set_config("Timeout", "1");
	assert_int_equal(
	    check_once(why, sizeof(why), &took), SCEPD_VERDICT_UNAVAILABLE);
	assert_string_equal(why, "the MDM webhook did not answer within 1 s");
	if (took < 0.9 || took > 2.0)
		fail_msg("the check took %.2f s, want about 1", took);
	assert_log_clean("could not decide");
}

static void
test_wrong_ca(void **state)
{
	char why[512];
	json_t *lines;

	(void)state;
	server_start("allow", 0, 0);
	set_config("URL", server_url(0, "/challenge"));
	set_config("CAFile", work("other-ca.pem"));
	assert_int_equal(
	    check_once(why, sizeof(why), NULL), SCEPD_VERDICT_UNAVAILABLE);
	/* No cause asserted: curl sees the server's alert or the closed
	 * connection, as the race goes. */
	assert_printable(why);
	lines = recorded();
	assert_int_equal(json_array_size(lines), 0); /* the challenge stayed */
	json_decref(lines);
}

static void
test_system_cas_do_not_know_test_ca(void **state)
{
	char why[512];

	(void)state;
	/* No CAFile: verification is still on, against the system bundle. */
	server_start("allow", 0, 0);
	set_config("URL", server_url(0, "/challenge"));
	assert_int_equal(
	    check_once(why, sizeof(why), NULL), SCEPD_VERDICT_UNAVAILABLE);
	/* curl's words (certificate names, addresses) for the log only. */
	assert_string_equal(why, "TLS error with the MDM webhook");
	assert_contains(log_text, "certificate");
}

static void
test_client_cert_required_missing(void **state)
{
	char why[512];
	json_t *lines;

	(void)state;
	server_start("allow", 0, 1);
	set_config("URL", server_url(0, "/challenge"));
	use_test_ca();
	assert_int_equal(
	    check_once(why, sizeof(why), NULL), SCEPD_VERDICT_UNAVAILABLE);
	/* No cause asserted: curl sees the server's alert or the closed
	 * connection, as the race goes. */
	assert_printable(why);
	lines = recorded();
	assert_int_equal(json_array_size(lines), 0);
	json_decref(lines);
}

static void
test_client_cert(void **state)
{
	char why[512];
	json_t *lines;

	(void)state;
	server_start("allow", 0, 1);
	set_config("URL", server_url(0, "/challenge"));
	use_test_ca();
	set_config("ClientCertificate", work("client.pem"));
	set_config("ClientKey", work("client.key"));
	assert_int_equal(
	    check_once(why, sizeof(why), NULL), SCEPD_VERDICT_ALLOW);
	lines = recorded();
	assert_int_equal(json_array_size(lines), 1);
	assert_string_equal(json_string_value(json_object_get(
	                        json_array_get(lines, 0), "client_cn")),
	    CLIENT_CN);
	json_decref(lines);
}

static void
test_http_loopback(void **state)
{
	static const char *const loopback[] = {
	    "http://localhost:1/x", "http://[::1]:1/x"};
	void *plugin = NULL;
	char err[512], why[256];

	(void)state;
	server_start("allow", 1, 0);
	set_config("URL", server_url(1, "/challenge"));
	/* A proxy for outbound traffic (nobody listens there) is not asked
	 * about a loopback URL: its loopback is another host's. */
	setenv("http_proxy", "http://127.0.0.1:9/", 1);
	setenv("HTTP_PROXY", "http://127.0.0.1:9/", 1);
	assert_int_equal(
	    check_once(why, sizeof(why), NULL), SCEPD_VERDICT_ALLOW);
	unsetenv("http_proxy");
	unsetenv("HTTP_PROXY");
	assert_contains(log_text, "WARN URL http://127.0.0.1:");
	assert_contains(log_text, "plain http");
	for (size_t i = 0; i < sizeof(loopback) / sizeof(loopback[0]); i++) {
		set_config("URL", loopback[i]);
		if (init_plugin(&plugin, err, sizeof(err)) != 0)
			fail_msg("%s refused: %s", loopback[i], err);
		validator->destroy(plugin);
	}
}

static void
test_connection_refused(void **state)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t len = sizeof(sin);
	char url[64], why[512];
	int fd;

	(void)state;
	/* A port that was free a moment ago and has nobody listening. */
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	close(fd);
	snprintf(
	    url, sizeof(url), "https://127.0.0.1:%d/", ntohs(sin.sin_port));
	set_config("URL", url);
	use_test_ca();
	assert_int_equal(
	    check_once(why, sizeof(why), NULL), SCEPD_VERDICT_UNAVAILABLE);
	/* The address is curl's detail: in the log, not in why. */
	assert_string_equal(why, "the MDM webhook could not be asked");
	assert_contains(log_text, "127.0.0.1");
}

/* jansson's allocations that may still succeed (the plugin shares the
 * test's libjansson); -1: all. */
static long jansson_budget = -1;

static void *
jansson_malloc(size_t n)
{
	if (jansson_budget == 0)
		return NULL;
	if (jansson_budget > 0)
		jansson_budget--;
	return malloc(n);
}

/* The MDM in "allow" mode, and the plugin configured for it. */
static void
allowing_mdm(void)
{
	server_start("allow", 0, 0);
	set_config("URL", server_url(0, "/"));
	use_test_ca();
}

/* A check of `req` (allowing_mdm) with `budget` allocations of jansson's
 * (-1: all): its verdict, why in `why`. */
static enum scepd_verdict
check_with_budget(const struct scepd_challenge_request *req, long budget,
    char *why, size_t whylen)
{
	enum scepd_verdict verdict;
	void *plugin = NULL;
	char err[512];

	assert_int_equal(init_plugin(&plugin, err, sizeof(err)), 0);
	json_set_alloc_funcs(jansson_malloc, free);
	jansson_budget = budget;
	verdict = validator->check(plugin, req, why, whylen);
	jansson_budget = -1;
	json_set_alloc_funcs(malloc, free);
	validator->destroy(plugin);
	return verdict;
}

static void
test_not_utf8(void **state)
{
	struct scepd_challenge_request req = sample_request();
	char why[256];
	json_t *lines;

	(void)state;
	allowing_mdm();
	req.challenge = "caf\xe9";
	assert_int_equal(check_with_budget(&req, -1, why, sizeof(why)),
	    SCEPD_VERDICT_REFUSE);
	assert_contains(why, "challenge");
	assert_contains(why, "not UTF-8");
	lines = recorded();
	assert_int_equal(json_array_size(lines), 0);
	json_decref(lines);
}

/* Memory short anywhere while the request is written is our outage: 503
 * for the device, never a wrong password counted against its address.
 * Each of jansson's allocations fails in turn until the MDM is asked.
 * (Memory short while its answer is read is not told apart: jansson then
 * reports a syntax error, and a 200 that is no JSON object refuses.) */
static void
test_no_memory_for_the_request(void **state)
{
	struct scepd_challenge_request req = sample_request();
	enum scepd_verdict verdict;
	char why[256];
	long budget;
	json_t *lines;
	size_t asked = 0;

	(void)state;
	allowing_mdm();
	for (budget = 0; budget < 200 && asked == 0; budget++) {
		verdict = check_with_budget(&req, budget, why, sizeof(why));
		lines = recorded();
		asked = json_array_size(lines);
		json_decref(lines);
		if (asked == 0 && verdict != SCEPD_VERDICT_UNAVAILABLE)
			fail_msg("with %ld allocations of jansson's: verdict "
			         "%d (%s), want UNAVAILABLE",
			    budget, (int)verdict, why);
		if (asked == 0)
			assert_contains(
			    why, "out of memory for the MDM webhook");
	}
	/* The body alone takes one per member. */
	assert_true(budget > 8);
	assert_true(asked == 1);
}

static void
test_tiny_why(void **state)
{
	char why[8];

	(void)state;
	/* A short buffer is filled, never overrun. */
	server_start("deny", 0, 0);
	set_config("URL", server_url(0, "/"));
	use_test_ca();
	assert_int_equal(
	    check_once(why, sizeof(why), NULL), SCEPD_VERDICT_REFUSE);
	assert_string_equal(why, "the MDM");
}

/* Each configuration must fail init with a message naming `key`. */
static void
test_init_refusals(void **state)
{
	static char encrypted[512], cert[512], key[512], ca[512], shared[512];
	const struct {
		const char *url, *ca, *cert, *key, *timeout;
		const char *names;
	} bad[] = {
	    {NULL, NULL, NULL, NULL, NULL, "URL"},
	    {"", NULL, NULL, NULL, NULL, "URL"},
	    {"http://example.com/challenge", NULL, NULL, NULL, NULL, "URL"},
	    {"http://127.0.0.2/challenge", NULL, NULL, NULL, NULL, "URL"},
	    {"ftp://127.0.0.1/challenge", NULL, NULL, NULL, NULL, "URL"},
	    {"127.0.0.1/challenge", NULL, NULL, NULL, NULL, "URL"},
	    {"https://127.0.0.1/", NULL, NULL, NULL, "0", "Timeout"},
	    {"https://127.0.0.1/", NULL, NULL, NULL, "61", "Timeout"},
	    {"https://127.0.0.1/", NULL, NULL, NULL, "5s", "Timeout"},
	    {"https://127.0.0.1/", "/nonexistent/ca.pem", NULL, NULL, NULL,
	        "CAFile"},
	    {"https://127.0.0.1/", "ca.pem", NULL, NULL, NULL, "CAFile"},
	    {"https://127.0.0.1/", key, NULL, NULL, NULL, "CAFile"},
	    {"https://127.0.0.1/", NULL, cert, NULL, NULL, "ClientKey"},
	    {"https://127.0.0.1/", NULL, NULL, key, NULL, "ClientCertificate"},
	    {"https://127.0.0.1/", NULL, cert, encrypted, NULL, "ClientKey"},
	    {"https://127.0.0.1/", NULL, key, key, NULL, "ClientCertificate"},
	    {"https://127.0.0.1/", ca, cert, ca, NULL, "ClientKey"},
	    /* A key the group may read. */
	    {"https://127.0.0.1/", NULL, cert, shared, NULL, "ClientKey"},
	};

	(void)state;
	snprintf(
	    encrypted, sizeof(encrypted), "%s", work("client-encrypted.key"));
	snprintf(cert, sizeof(cert), "%s", work("client.pem"));
	snprintf(key, sizeof(key), "%s", work("client.key"));
	snprintf(ca, sizeof(ca), "%s", work("ca.pem"));
	snprintf(shared, sizeof(shared), "%s", work("client-shared.key"));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		void *plugin = (void *)&bad; /* init must reset it */
		char err[512];

		memset(config, 0, sizeof(config));
		set_config("URL", bad[i].url);
		set_config("CAFile", bad[i].ca);
		set_config("ClientCertificate", bad[i].cert);
		set_config("ClientKey", bad[i].key);
		set_config("Timeout", bad[i].timeout);
		if (init_plugin(&plugin, err, sizeof(err)) == 0) {
			validator->destroy(plugin);
			fail_msg("case %zu (URL %s) was accepted", i,
			    bad[i].url ? bad[i].url : "unset");
		}
		assert_null(plugin);
		if (strncmp(err, bad[i].names, strlen(bad[i].names)) != 0)
			fail_msg("case %zu: \"%s\" does not start with %s", i,
			    err, bad[i].names);
	}
	/* Empty values, as `ClientKey =` in the file, are unset. */
	memset(config, 0, sizeof(config));
	set_config("URL", "https://127.0.0.1/");
	set_config("CAFile", "");
	set_config("ClientCertificate", "");
	set_config("ClientKey", "");
	{
		void *plugin = NULL;
		char err[512];

		assert_int_equal(init_plugin(&plugin, err, sizeof(err)), 0);
		validator->destroy(plugin);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_abi_table),
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	    T(test_allow),
	    T(test_no_sans_sent_as_empty_array),
	    T(test_deny),
	    T(test_allow_as_string),
	    T(test_http500),
	    T(test_garbage),
	    T(test_duplicate_allow),
	    T(test_huge_answer),
	    T(test_huge_error_page),
	    T(test_redirect_not_followed),
	    T(test_forbidden),
	    T(test_slow),
	    T(test_wrong_ca),
	    T(test_system_cas_do_not_know_test_ca),
	    T(test_client_cert_required_missing),
	    T(test_client_cert),
	    T(test_http_loopback),
	    T(test_connection_refused),
	    T(test_not_utf8),
	    T(test_no_memory_for_the_request),
	    T(test_tiny_why),
	    T(test_init_refusals),
#undef T
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
