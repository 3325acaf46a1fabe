/*
 * The `webhook` challenge validator: asks an MDM whether a challenge is good,
 * for MDMs that mint their own SCEP challenges (Intune-style connectors).
 * Each check POSTs the request as JSON to URL; only HTTP 200 with a JSON
 * object whose "allow" is true allows. Anything else, including no answer
 * in time, refuses.
 *
 * Includes only lib/plugin.h of scepd. CAFile, ClientCertificate and
 * ClientKey are read into memory by init, so that checks keep working after
 * the host drops privileges or sandboxes its file system.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <curl/curl.h>
#include <jansson.h>

#include "plugin.h"

#define WEBHOOK_USER_AGENT "scepd-webhook/1"
#define WEBHOOK_MAX_ANSWER (64 * 1024) /* bytes of answer body read */
#define WEBHOOK_MAX_PEM (4 * 1024 * 1024) /* a CA bundle is ~200 KiB */
#define WEBHOOK_MAX_REASON 160 /* characters of the MDM's reason kept */
#define WEBHOOK_DEFAULT_TIMEOUT 3 /* s: below the RA's RPCTimeout (4 s) */
#define WEBHOOK_MAX_TIMEOUT 60
/* ms kept from the caller's time left for the verdict's way back, and
 * the least wait worth asking the MDM for. */
#define WEBHOOK_ANSWER_MS 100
#define WEBHOOK_MIN_WAIT_MS 200

/* A PEM file read at init; data is NUL-terminated. */
struct pem_file {
	char *data;
	size_t len;
};

struct webhook {
	const struct scepd_plugin_host *host; /* outlives the instance */
	int curl_global; /* curl_global_init succeeded: a cleanup is owed */
	char *url; /* as curl normalised it */
	/* For logs: without credentials or query (API keys live there). */
	char *url_shown;
	const char *protocols; /* "https", or "http" for a loopback URL */
	int loopback; /* never through a proxy: its loopback is not ours */
	long timeout_s;
	long wait_ms; /* this check's: Timeout, or the caller's time left */
	struct pem_file ca; /* data NULL: curl's system bundle */
	struct pem_file client_cert; /* both NULL or both set */
	struct pem_file client_key;
	struct curl_slist *headers;
	CURL *curl;
	char *answer; /* WEBHOOK_MAX_ANSWER + 1 bytes */
	size_t answer_len;
	int answer_too_large;
	char curl_error[CURL_ERROR_SIZE];
};

static const char *const webhook_keys[] = {
    "URL", "CAFile", "ClientCertificate", "ClientKey", "Timeout", NULL};

/* "Expect:" drops curl's 100-continue wait on bodies over 1 KiB. */
static const char *const header_lines[] = {
    "Content-Type: application/json", "Accept: application/json", "Expect:"};

/* A configuration value, with "" (a key written but left empty) as unset. */
static const char *
config_value(const struct scepd_plugin_host *host, const char *key)
{
	const char *v = host->config_get(host, key);

	return v != NULL && v[0] != '\0' ? v : NULL;
}

/*
 * Copies at most `max` bytes of untrusted text into dst (dstlen > 0) with
 * anything but printable ASCII replaced by '?', so that it is safe in a log
 * line and in a failInfoText.
 */
static void
printable_copy(
    char *dst, size_t dstlen, const char *src, size_t srclen, size_t max)
{
	size_t n = 0;

	if (dstlen == 0)
		return;
	if (src == NULL)
		src = "-", srclen = 1;
	for (size_t i = 0; i < srclen && n < max && n + 1 < dstlen; i++) {
		unsigned char c = (unsigned char)src[i];

		dst[n++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	dst[n] = '\0';
}

static void
pem_file_free(struct pem_file *pem)
{
	if (pem->data != NULL) {
		/* The client key must not linger in freed memory. */
		explicit_bzero(pem->data, pem->len);
		free(pem->data);
	}
	pem->data = NULL;
	pem->len = 0;
}

/*
 * Reads the file named by configuration key `key` into pem and checks that
 * it holds `marker`. Paths must be absolute: the ABI does not tell a plugin
 * where its configuration file is. A `secret` file must be readable by its
 * owner alone, and is read without stdio's buffer (left unwiped).
 */
static int
pem_file_read(const char *key, const char *path, const char *marker, int secret,
    struct pem_file *pem, char *err, size_t errlen)
{
	FILE *f = NULL;
	size_t cap = 0;
	struct stat st;
	int rc = -1;

	memset(&st, 0, sizeof(st));
	if (path[0] != '/') {
		snprintf(
		    err, errlen, "%s: %s is not an absolute path", key, path);
		goto out;
	}
	if ((f = fopen(path, "re")) == NULL) {
		snprintf(err, errlen, "%s: cannot open %s: %s", key, path,
		    strerror(errno));
		goto out;
	}
	if (secret &&
	    (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) ||
	        (st.st_mode & 077) != 0)) {
		snprintf(err, errlen,
		    "%s: %s is not a regular file readable by its owner only "
		    "(mode %04o); chmod 600 %s",
		    key, path, (unsigned)(st.st_mode & 07777), path);
		goto out;
	}
	if (secret)
		setvbuf(f, NULL, _IONBF, 0);
	for (;;) {
		size_t got;

		if (pem->len + 1 >= cap) {
			char *bigger;

			if (cap >= WEBHOOK_MAX_PEM) {
				snprintf(err, errlen,
				    "%s: %s is larger than %d MiB", key, path,
				    WEBHOOK_MAX_PEM >> 20);
				goto out;
			}
			cap = cap == 0 ? 16384 : cap * 2;
			if ((bigger = malloc(cap + 1)) == NULL) {
				snprintf(err, errlen, "out of memory");
				goto out;
			}
			/* Not realloc: a key must not be left behind. */
			if (pem->data != NULL) {
				memcpy(bigger, pem->data, pem->len);
				explicit_bzero(pem->data, pem->len);
				free(pem->data);
			}
			pem->data = bigger;
		}
		got = fread(pem->data + pem->len, 1, cap - pem->len, f);
		pem->len += got;
		if (got == 0)
			break;
	}
	if (ferror(f)) {
		snprintf(err, errlen, "%s: cannot read %s", key, path);
		goto out;
	}
	pem->data[pem->len] = '\0';
	if (strstr(pem->data, marker) == NULL) {
		snprintf(err, errlen, "%s: %s holds no PEM \"%s\"", key, path,
		    marker);
		goto out;
	}
	rc = 0;
out:
	if (f != NULL)
		fclose(f);
	if (rc != 0)
		pem_file_free(pem);
	return rc;
}

/* http:// is allowed only to these: a sidecar on the same host, or a test. */
static int
is_loopback(const char *host)
{
	return strcmp(host, "127.0.0.1") == 0 ||
	    strcasecmp(host, "localhost") == 0 || strcmp(host, "[::1]") == 0;
}

/* Checks URL and keeps curl's normalised form of it. */
static int
parse_url(struct webhook *wh, const char *url, char *err, size_t errlen)
{
	CURLU *u = NULL;
	char *scheme = NULL, *host = NULL, *full = NULL, *shown = NULL;
	int rc = -1;

	if ((u = curl_url()) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
		snprintf(err, errlen, "URL: not an absolute http(s) URL");
		goto out;
	}
	wh->loopback = is_loopback(host);
	if (strcasecmp(scheme, "https") == 0)
		wh->protocols = "https";
	else if (strcasecmp(scheme, "http") == 0 && is_loopback(host))
		wh->protocols = "http";
	else if (strcasecmp(scheme, "http") == 0) {
		snprintf(err, errlen,
		    "URL: http:// is accepted only to 127.0.0.1, localhost or "
		    "::1; use https://");
		goto out;
	} else {
		snprintf(err, errlen, "URL: must be https://");
		goto out;
	}
	if (curl_url_get(u, CURLUPART_URL, &full, 0) != CURLUE_OK ||
	    (wh->url = strdup(full)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	curl_url_set(u, CURLUPART_USER, NULL, 0);
	curl_url_set(u, CURLUPART_PASSWORD, NULL, 0);
	curl_url_set(u, CURLUPART_QUERY, NULL, 0);
	if (curl_url_get(u, CURLUPART_URL, &shown, 0) != CURLUE_OK ||
	    (wh->url_shown = strdup(shown)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	rc = 0;
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(full);
	curl_free(shown);
	curl_url_cleanup(u);
	return rc;
}

static int
parse_timeout(const char *value, long *timeout_s, char *err, size_t errlen)
{
	char *end;
	long v;

	if (value == NULL) {
		*timeout_s = WEBHOOK_DEFAULT_TIMEOUT;
		return 0;
	}
	errno = 0;
	v = strtol(value, &end, 10);
	if (errno != 0 || end == value || *end != '\0' || v < 1 ||
	    v > WEBHOOK_MAX_TIMEOUT) {
		snprintf(err, errlen,
		    "Timeout: \"%s\" is not a number of seconds from 1 to %d",
		    value, WEBHOOK_MAX_TIMEOUT);
		return -1;
	}
	*timeout_s = v;
	return 0;
}

static void webhook_destroy(void *state);

static int
webhook_init(const struct scepd_plugin_host *host, void **state, char *err,
    size_t errlen)
{
	struct webhook *wh = NULL;
	const char *url, *ca, *cert, *key;
	int rc = -1;

	*state = NULL;
	if (host->abi_version < SCEPD_PLUGIN_ABI_VERSION) {
		snprintf(err, errlen,
		    "the host's plugin ABI %u is older than the webhook's %d",
		    host->abi_version, SCEPD_PLUGIN_ABI_VERSION);
		goto out;
	}
	if ((wh = calloc(1, sizeof(*wh))) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	wh->host = host;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		snprintf(err, errlen, "libcurl failed to initialise");
		goto out;
	}
	wh->curl_global = 1;

	if ((url = config_value(host, "URL")) == NULL) {
		snprintf(err, errlen,
		    "URL: required (the MDM's challenge webhook, https://)");
		goto out;
	}
	if (parse_url(wh, url, err, errlen) != 0)
		goto out;
	if (parse_timeout(config_value(host, "Timeout"), &wh->timeout_s, err,
	        errlen) != 0)
		goto out;
	if ((ca = config_value(host, "CAFile")) != NULL &&
	    pem_file_read("CAFile", ca, "-----BEGIN CERTIFICATE-----", 0,
	        &wh->ca, err, errlen) != 0)
		goto out;
	cert = config_value(host, "ClientCertificate");
	key = config_value(host, "ClientKey");
	if ((cert == NULL) != (key == NULL)) {
		snprintf(err, errlen, "%s: required with %s",
		    cert == NULL ? "ClientCertificate" : "ClientKey",
		    cert == NULL ? "ClientKey" : "ClientCertificate");
		goto out;
	}
	if (cert != NULL) {
		if (pem_file_read("ClientCertificate", cert,
		        "-----BEGIN CERTIFICATE-----", 0, &wh->client_cert, err,
		        errlen) != 0 ||
		    pem_file_read("ClientKey", key, "PRIVATE KEY-----", 1,
		        &wh->client_key, err, errlen) != 0)
			goto out;
		/* There is no key for a passphrase. */
		if (strstr(wh->client_key.data, "ENCRYPTED") != NULL) {
			snprintf(err, errlen,
			    "ClientKey: %s is encrypted; give it unencrypted, "
			    "readable only by scepd",
			    key);
			goto out;
		}
	}

	if ((wh->answer = malloc(WEBHOOK_MAX_ANSWER + 1)) == NULL ||
	    (wh->curl = curl_easy_init()) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < sizeof(header_lines) / sizeof(header_lines[0]);
	     i++) {
		struct curl_slist *more;

		if ((more = curl_slist_append(wh->headers, header_lines[i])) ==
		    NULL) {
			snprintf(err, errlen, "out of memory");
			goto out;
		}
		wh->headers = more;
	}

	if (strcmp(wh->protocols, "http") == 0) {
		host->log(host, SCEPD_PLUGIN_LOG_WARN,
		    "URL %s is plain http, accepted only because it is "
		    "loopback: challenges cross it in clear",
		    wh->url_shown);
		host->log(host, SCEPD_PLUGIN_LOG_INFO,
		    "asking %s, timeout %ld s", wh->url_shown, wh->timeout_s);
	} else
		host->log(host, SCEPD_PLUGIN_LOG_INFO,
		    "asking %s, timeout %ld s, server verified against %s, %s "
		    "client certificate",
		    wh->url_shown, wh->timeout_s,
		    ca != NULL ? ca : "the system CAs",
		    cert != NULL ? cert : "no");
	*state = wh;
	wh = NULL;
	rc = 0;
out:
	webhook_destroy(wh);
	return rc;
}

/* Keeps the answer body, up to WEBHOOK_MAX_ANSWER bytes. */
static size_t
answer_write(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct webhook *wh = userdata;
	size_t n = size * nmemb;

	if (n > WEBHOOK_MAX_ANSWER - wh->answer_len) {
		wh->answer_too_large = 1;
		return 0; /* curl stops with CURLE_WRITE_ERROR */
	}
	memcpy(wh->answer + wh->answer_len, data, n);
	wh->answer_len += n;
	return n;
}

/* A JSON string of `value`, or NULL: *not_text set when it is not UTF-8
 * (json_string refuses it where json_string_nocheck does not), else
 * memory ran short. */
static json_t *
json_text(const char *value, int *not_text)
{
	json_t *v = json_string(value), *raw;

	if (v == NULL && (raw = json_string_nocheck(value)) != NULL) {
		*not_text = 1;
		explicit_bzero(
		    (char *)json_string_value(raw), json_string_length(raw));
		json_decref(raw);
	}
	return v;
}

/* A string member, or null: 0, or -1 (*not_text set when the value is
 * not UTF-8, else no memory). */
static int
json_set_string(json_t *obj, const char *key, const char *value, int *not_text)
{
	json_t *v = value != NULL ? json_text(value, not_text) : json_null();

	return v == NULL ? -1 : json_object_set_new(obj, key, v);
}

/*
 * The body as JSON text, written straight into a buffer of its size:
 * json_dumps grows one of its own by realloc and frees each (and the
 * last, whole) without wiping them, leaving the challenge in freed
 * memory. NULL when out of memory.
 */
static char *
body_dump(const json_t *body)
{
	size_t len = json_dumpb(body, NULL, 0, JSON_COMPACT);
	char *text;

	if (len == 0 || (text = malloc(len + 1)) == NULL)
		return NULL;
	if (json_dumpb(body, text, len, JSON_COMPACT) != len) {
		explicit_bzero(text, len);
		free(text);
		return NULL;
	}
	text[len] = '\0';
	return text;
}

/* jansson's copies of the challenge and of the CSR that holds it, wiped
 * before they are freed. */
static void
body_wipe(json_t *body)
{
	static const char *const secret[] = {"challenge", "csr"};

	for (size_t i = 0; body != NULL && i < 2; i++) {
		json_t *v = json_object_get(body, secret[i]);

		if (json_is_string(v))
			explicit_bzero((char *)json_string_value(v),
			    json_string_length(v));
	}
}

/*
 * The request body; NULL with why set when a field cannot be JSON text
 * (*not_text set: the device's doing) or memory ran short. The caller
 * frees it.
 */
static char *
request_body(const struct scepd_challenge_request *req, char *why,
    size_t whylen, int *not_text)
{
	json_t *body = NULL, *sans = NULL;
	const char *field = NULL;
	char *text = NULL;

	*not_text = 0;
	if ((body = json_object()) == NULL || (sans = json_array()) == NULL)
		goto out;
	if (json_set_string(body, "challenge", req->challenge, not_text) != 0)
		field = "challenge";
	else if (json_set_string(body, "transaction_id", req->transaction_id,
	             not_text) != 0)
		field = "transactionID";
	else if (json_set_string(body, "csr", req->csr_pem, not_text) != 0)
		field = "CSR";
	else if (json_set_string(body, "subject", req->subject, not_text) != 0)
		field = "subject";
	else if (json_set_string(body, "requester", req->requester, not_text) !=
	    0)
		field = "requester";
	else if (json_set_string(body, "path", req->path, not_text) != 0)
		field = "path";
	for (size_t i = 0;
	     field == NULL && req->sans != NULL && req->sans[i] != NULL; i++) {
		json_t *san = json_text(req->sans[i], not_text);

		if (san == NULL || json_array_append_new(sans, san) != 0)
			field = "subjectAltName";
	}
	if (field != NULL)
		goto out;
	if (json_object_set(body, "sans", sans) != 0)
		goto out;
	text = body_dump(body);
out:
	if (!*not_text)
		field = NULL; /* memory ran short, nothing wrong with it */
	if (field != NULL)
		snprintf(why, whylen,
		    "the request's %s cannot be sent to the MDM webhook "
		    "(not UTF-8)",
		    field);
	else if (text == NULL)
		snprintf(why, whylen, "out of memory for the MDM webhook");
	json_decref(sans);
	body_wipe(body);
	json_decref(body);
	return text;
}

/*
 * How long this check may wait for the MDM: Timeout, less when its caller
 * (the RA, for a device) stops waiting sooner: an answer after that is
 * of no use (the device got 503; the MDM, asked again on its retry, would
 * be asked in vain each time), and the worker is held meanwhile. 0: too
 * little left to ask.
 */
static long
wait_ms(const struct webhook *wh)
{
	long long left, ms = wh->timeout_s * 1000;

	if (!SCEPD_PLUGIN_HOST_HAS(wh->host, time_left_ms) ||
	    wh->host->time_left_ms == NULL ||
	    (left = wh->host->time_left_ms(wh->host)) >= ms + WEBHOOK_ANSWER_MS)
		return (long)ms;
	left -= WEBHOOK_ANSWER_MS;
	return left >= WEBHOOK_MIN_WAIT_MS ? (long)left : 0;
}

/* POSTs body within wh->wait_ms; the answer lands in wh->answer. */
static CURLcode
post(struct webhook *wh, const char *body)
{
	CURL *c = wh->curl;
	long timeout_ms = wh->wait_ms;
	CURLcode rc = CURLE_OK;

	curl_easy_reset(c);
	wh->answer_len = 0;
	wh->answer_too_large = 0;
	wh->curl_error[0] = '\0';
	/* The first setopt failure is kept: no memory, or a libcurl built
	 * without the option. */
#define SET(opt, val) \
	do { \
		CURLcode set_rc = curl_easy_setopt(c, opt, val); \
		if (rc == CURLE_OK) \
			rc = set_rc; \
	} while (0)
	SET(CURLOPT_URL, wh->url);
	SET(CURLOPT_PROTOCOLS_STR, wh->protocols);
	SET(CURLOPT_REDIR_PROTOCOLS_STR, wh->protocols);
	SET(CURLOPT_FOLLOWLOCATION, 0L); /* a redirect is an answer, not 200 */
	if (wh->loopback)
		SET(CURLOPT_NOPROXY, "*"); /* whatever http_proxy says */
	SET(CURLOPT_NOSIGNAL, 1L); /* the host is multi-threaded */
	SET(CURLOPT_TIMEOUT_MS, timeout_ms);
	SET(CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
	/* Past the timeout while the name is being resolved, libcurl leaves
	 * its resolver thread to end alone (it frees itself) instead of
	 * waiting for glibc's resolver to give up: 10 s with its defaults,
	 * a worker held past the device's 503. */
	SET(CURLOPT_QUICK_EXIT, 1L);
	SET(CURLOPT_USERAGENT, WEBHOOK_USER_AGENT);
	SET(CURLOPT_HTTPHEADER, wh->headers);
	/* libcurl (7.88) copies a body this small into its request buffer
	 * and frees that unwiped: the challenge outlives our wipes in the
	 * freed heap of the challenge service, which only it can read. A
	 * read callback would leave it in libcurl's upload buffer alike. */
	SET(CURLOPT_POSTFIELDS, body);
	SET(CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	SET(CURLOPT_WRITEFUNCTION, answer_write);
	SET(CURLOPT_WRITEDATA, wh);
	SET(CURLOPT_ERRORBUFFER, wh->curl_error);
	SET(CURLOPT_SSL_VERIFYPEER, 1L);
	SET(CURLOPT_SSL_VERIFYHOST, 2L);
	SET(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	if (wh->ca.data != NULL) {
		struct curl_blob ca = {
		    wh->ca.data, wh->ca.len, CURL_BLOB_NOCOPY};

		/* CAFile alone: not the system CAs besides. */
		SET(CURLOPT_CAINFO, (char *)NULL);
		SET(CURLOPT_CAPATH, (char *)NULL);
		SET(CURLOPT_CAINFO_BLOB, &ca);
	}
	if (wh->client_cert.data != NULL) {
		struct curl_blob cert = {wh->client_cert.data,
		    wh->client_cert.len, CURL_BLOB_NOCOPY};
		struct curl_blob key = {
		    wh->client_key.data, wh->client_key.len, CURL_BLOB_NOCOPY};

		SET(CURLOPT_SSLCERT_BLOB, &cert);
		SET(CURLOPT_SSLCERTTYPE, "PEM");
		SET(CURLOPT_SSLKEY_BLOB, &key);
		SET(CURLOPT_SSLKEYTYPE, "PEM");
	}
#undef SET
	if (rc != CURLE_OK)
		return rc;
	return curl_easy_perform(c);
}

/*
 * Why a transfer failed: in `why` words that name no host, address or
 * TLS detail (the RA may pass them on), in `detail` curl's own for the log.
 * Our side could not ask: UNAVAILABLE (HTTP 503, the device comes back,
 * no wrong password counted), except an answer too large (the MDM's).
 */
static enum scepd_verdict
transfer_failure(const struct webhook *wh, CURLcode rc, char *why,
    size_t whylen, char *detail, size_t detaillen)
{
	const char *text =
	    wh->curl_error[0] != '\0' ? wh->curl_error : curl_easy_strerror(rc);
	long status = 0;

	printable_copy(detail, detaillen, text, strlen(text), detaillen - 1);
	switch (rc) {
	case CURLE_OPERATION_TIMEDOUT:
		if (wh->wait_ms < wh->timeout_s * 1000)
			snprintf(why, whylen,
			    "the MDM webhook did not answer within the %ld ms "
			    "its caller had left (Timeout = %ld s)",
			    wh->wait_ms, wh->timeout_s);
		else
			snprintf(why, whylen,
			    "the MDM webhook did not answer within %ld s",
			    wh->timeout_s);
		break;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_CLIENTCERT:
		snprintf(why, whylen, "TLS error with the MDM webhook");
		break;
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
		/* A TLS alert after the handshake, as a TLS 1.3 server sends
		 * when it wants a client certificate. */
		snprintf(why, whylen, "%s",
		    strstr(detail, "SSL") != NULL
		        ? "TLS error with the MDM webhook"
		        : "the MDM webhook could not be asked");
		break;
	case CURLE_WRITE_ERROR:
		/* Too large: the MDM's answer to the device if it is a 200,
		 * else no answer at all (a proxy's error page for an MDM
		 * that is down), as any other status is (judge_answer). */
		if (wh->answer_too_large &&
		    (curl_easy_getinfo(wh->curl, CURLINFO_RESPONSE_CODE,
		         &status) != CURLE_OK ||
		        status == 200)) {
			snprintf(why, whylen,
			    "the MDM webhook's answer is larger than %d KiB",
			    WEBHOOK_MAX_ANSWER >> 10);
			return SCEPD_VERDICT_REFUSE;
		}
		if (wh->answer_too_large) {
			snprintf(why, whylen,
			    "the MDM webhook answered HTTP %ld", status);
			break;
		}
		/* FALLTHROUGH */
	default:
		snprintf(why, whylen, "the MDM webhook could not be asked");
		break;
	}
	return SCEPD_VERDICT_UNAVAILABLE;
}

/* The verdict on an answer that arrived: only 200 {"allow": true} allows,
 * any other 200 refuses. Another status is no verdict on the device (the
 * MDM's outage, or ours: an expired API key, a wrong path, a redirect):
 * UNAVAILABLE, never counted against the device's address. */
static enum scepd_verdict
judge_answer(const struct webhook *wh, long status, char *why, size_t whylen)
{
	enum scepd_verdict verdict = SCEPD_VERDICT_REFUSE;
	json_t *answer, *allow = NULL, *reason;
	char cause[96], reason_text[WEBHOOK_MAX_REASON + 1] = "";
	json_error_t jerr;

	/* Duplicate keys refused: {"allow": false, "allow": true} is no yes. */
	answer = json_loadb(
	    wh->answer, wh->answer_len, JSON_REJECT_DUPLICATES, &jerr);
	if (json_is_object(answer)) {
		allow = json_object_get(answer, "allow");
		reason = json_object_get(answer, "reason");
		if (json_is_string(reason))
			printable_copy(reason_text, sizeof(reason_text),
			    json_string_value(reason),
			    json_string_length(reason), WEBHOOK_MAX_REASON);
	}
	if (status != 200) {
		verdict = SCEPD_VERDICT_UNAVAILABLE;
		snprintf(cause, sizeof(cause),
		    "the MDM webhook answered HTTP %ld", status);
	} else if (answer == NULL &&
	    json_error_code(&jerr) == json_error_out_of_memory) {
		/* Ours, not the device's: no verdict. */
		verdict = SCEPD_VERDICT_UNAVAILABLE;
		snprintf(cause, sizeof(cause),
		    "out of memory reading the MDM webhook's answer");
	} else if (json_is_true(allow)) {
		verdict = SCEPD_VERDICT_ALLOW;
		cause[0] = '\0';
	} else if (json_is_false(allow))
		snprintf(cause, sizeof(cause),
		    "the MDM webhook refused the challenge");
	else
		snprintf(cause, sizeof(cause),
		    "the MDM webhook's answer is not {\"allow\": true}");
	if (verdict == SCEPD_VERDICT_ALLOW)
		snprintf(why, whylen, "%s", "");
	else
		snprintf(why, whylen, "%s%s%s", cause,
		    reason_text[0] != '\0' ? ": " : "", reason_text);
	json_decref(answer);
	return verdict;
}

static enum scepd_verdict
webhook_check(void *state, const struct scepd_challenge_request *req, char *why,
    size_t whylen)
{
	struct webhook *wh = state;
	enum scepd_verdict verdict = SCEPD_VERDICT_REFUSE;
	char *body = NULL;
	char txid[80], requester[80], path[80], detail[CURL_ERROR_SIZE] = "";
	long status = 0;
	curl_off_t took_us = 0;
	CURLcode rc;
	int not_text;

	if (whylen > 0)
		why[0] = '\0';
	/* Memory short is our outage, not a wrong password. */
	if ((body = request_body(req, why, whylen, &not_text)) == NULL) {
		if (!not_text)
			verdict = SCEPD_VERDICT_UNAVAILABLE;
		goto out;
	}
	if ((wh->wait_ms = wait_ms(wh)) == 0) {
		snprintf(why, whylen,
		    "the MDM webhook was not asked: its caller's time was up");
		verdict = SCEPD_VERDICT_UNAVAILABLE;
		goto out;
	}
	rc = post(wh, body);
	curl_easy_getinfo(wh->curl, CURLINFO_TOTAL_TIME_T, &took_us);
	if (rc != CURLE_OK) {
		verdict = transfer_failure(
		    wh, rc, why, whylen, detail, sizeof(detail));
		goto out;
	}
	curl_easy_getinfo(wh->curl, CURLINFO_RESPONSE_CODE, &status);
	verdict = judge_answer(wh, status, why, whylen);
out:
	/* The device chose these; never the challenge itself in a log. */
	printable_copy(txid, sizeof(txid), req->transaction_id,
	    req->transaction_id ? strlen(req->transaction_id) : 0, 64);
	printable_copy(requester, sizeof(requester), req->requester,
	    req->requester ? strlen(req->requester) : 0, 64);
	printable_copy(path, sizeof(path), req->path,
	    req->path ? strlen(req->path) : 0, 64);
	if (verdict == SCEPD_VERDICT_ALLOW)
		wh->host->log(wh->host, SCEPD_PLUGIN_LOG_INFO,
		    "allowed transaction %s from %s on %s (HTTP %ld, %ld ms)",
		    txid, requester, path, status, (long)(took_us / 1000));
	else
		wh->host->log(wh->host, SCEPD_PLUGIN_LOG_WARN,
		    "%s transaction %s from %s on %s (%ld ms): %s%s%s",
		    verdict == SCEPD_VERDICT_UNAVAILABLE ? "could not decide"
		                                         : "refused",
		    txid, requester, path, (long)(took_us / 1000), why,
		    detail[0] != '\0' ? ": " : "", detail);
	if (body != NULL)
		explicit_bzero(body, strlen(body)); /* the challenge */
	free(body);
	return verdict;
}

static void
webhook_destroy(void *state)
{
	struct webhook *wh = state;

	if (wh == NULL)
		return;
	if (wh->curl != NULL)
		curl_easy_cleanup(wh->curl);
	curl_slist_free_all(wh->headers);
	free(wh->answer);
	pem_file_free(&wh->ca);
	pem_file_free(&wh->client_cert);
	pem_file_free(&wh->client_key);
	free(wh->url);
	free(wh->url_shown);
	if (wh->curl_global)
		curl_global_cleanup();
	free(wh);
}

/* Each instance has its own curl handle and settings, no globals. */
__attribute__((visibility("default")))
const int scepd_challenge_validator_v1_concurrent = 1;

__attribute__((visibility("default")))
const struct scepd_challenge_validator scepd_challenge_validator_v1 = {
    .abi_version = SCEPD_PLUGIN_ABI_VERSION,
    .name = "webhook",
    .keys = webhook_keys,
    .init = webhook_init,
    .check = webhook_check,
    .consume = NULL, /* the MDM keeps its own books */
    .destroy = webhook_destroy,
};
