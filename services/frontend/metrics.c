/*
 * /metrics: Prometheus text format (version 0.0.4). The frontend's own
 * counters, each service's `scepd_up` saying whether it answered, then
 * what the RA and the challenge service report of theirs
 * (MetricsRequest). Each name's HELP and TYPE come once, before all of
 * its samples, as the format requires. Served to loopback clients only:
 * the counters tell an outsider how busy and how attacked the server is.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontend.h"
#include "log.h"

/* HTTP statuses counted one by one; the rest fall in "other", and an
 * answer that never left (the connection failed or the client went away
 * first) in "unsent", whatever its status. */
static const unsigned int metrics_codes[] = {
    200, 400, 401, 403, 404, 405, 408, 413, 414, 429, 431, 500, 503};
#define METRICS_NCODES (sizeof(metrics_codes) / sizeof(metrics_codes[0]))
static atomic_ulong metrics_responses[METRICS_NCODES + 2];

void
metrics_count_response(unsigned int status, int sent)
{
	size_t i;

	for (i = 0; i < METRICS_NCODES; i++)
		if (metrics_codes[i] == status)
			break;
	atomic_fetch_add(&metrics_responses[sent ? i : METRICS_NCODES + 1], 1);
}

/* Connections refused before a request was read, by metrics_refusal. */
static const char *const metrics_refusals[] = {
    "max_connections", "per_ip_connection_limit"};
#define METRICS_NREFUSALS \
	(sizeof(metrics_refusals) / sizeof(metrics_refusals[0]))
static atomic_ulong metrics_refused[METRICS_NREFUSALS];

void
metrics_count_refused(enum metrics_refusal why)
{
	atomic_fetch_add(&metrics_refused[why], 1);
}

/* The services asked, by their name as a label value (ours, so no
 * escaping needed). */
static const struct {
	enum upstream which;
	const char *name;
} metrics_asked[] = {{UPSTREAM_RA, "ra"}, {UPSTREAM_CHALLENGE, "challenge"}};
#define METRICS_NASKED (sizeof(metrics_asked) / sizeof(metrics_asked[0]))

struct metrics_text {
	FILE *f;
	char *buf;
	size_t len;
};

static void
metrics_header(struct metrics_text *t, const char *name, const char *help,
    const char *type)
{
	fprintf(t->f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* What one service answered: its reply (NULL: none), and when its
 * kind has several endpoints (RAEndpoint = a b), which one, a label of
 * each of its samples: one RA's counters are not another's. */
struct metrics_answer {
	Scep__V1__Reply *reply;
	const char *service;
	const char *endpoint;
};

/* The service's metrics at `endpoint` (SIZE_MAX: any), or NULL when it
 * did not answer; the caller frees the reply. */
static Scep__V1__Reply *
metrics_ask(struct frontend *fe, enum upstream which, size_t endpoint)
{
	Scep__V1__Request req = SCEP__V1__REQUEST__INIT;
	Scep__V1__MetricsRequest body = SCEP__V1__METRICS_REQUEST__INIT;
	Scep__V1__Reply *rep = NULL;

	req.body_case = SCEP__V1__REQUEST__BODY_METRICS;
	req.metrics = &body;
	if (upstream_call_at(fe, which, endpoint, &req,
	        SCEP__V1__REPLY__BODY_METRICS, &rep) == UPSTREAM_OK)
		return rep;
	if (rep != NULL)
		scep__v1__reply__free_unpacked(rep, NULL);
	return NULL;
}

/* Whether `name` is one of the frontend's own (scepd_up and the rest):
 * a service's sample of it would be a second TYPE. */
static int
metrics_ours(const char *name)
{
	return strcmp(name, "scepd_up") == 0 ||
	    strcmp(name, "scepd_http_responses_total") == 0 ||
	    strcmp(name, "scepd_http_connections_refused_total") == 0 ||
	    strcmp(name, "scepd_frontend_queued_requests") == 0;
}

/* A label value as the text format writes it: \\, \" and \n escaped. */
static void
metrics_label_value(FILE *f, const char *v)
{
	for (; *v != '\0'; v++)
		if (*v == '\\' || *v == '"')
			fprintf(f, "\\%c", *v);
		else if (*v == '\n')
			fputs("\\n", f);
		else
			fputc(*v, f);
}

/* The labels of one sample: the endpoint's, then its own. */
static void
metrics_labels(FILE *f, const char *endpoint, const char *labels)
{
	if (endpoint == NULL && labels == NULL)
		return;
	fputc('{', f);
	if (endpoint != NULL) {
		fputs("endpoint=\"", f);
		metrics_label_value(f, endpoint);
		fputs(labels != NULL ? "\"," : "\"", f);
	}
	if (labels != NULL)
		fputs(labels, f);
	fputc('}', f);
}

/* What the services reported, each name's samples together under one
 * HELP and TYPE, in the order the names first come: -1 out of memory. */
static int
metrics_services(
    struct metrics_text *t, const struct metrics_answer *ans, size_t nans)
{
	const Scep__V1__Metric **all;
	const char **endpoint;
	size_t n = 0;

	for (size_t a = 0; a < nans; a++)
		if (ans[a].reply != NULL)
			n += ans[a].reply->metrics->n_metrics;
	all = calloc(n > 0 ? n : 1, sizeof(*all));
	endpoint = calloc(n > 0 ? n : 1, sizeof(*endpoint));
	if (all == NULL || endpoint == NULL) {
		free(all);
		free(endpoint);
		return -1;
	}
	n = 0;
	for (size_t a = 0; a < nans; a++)
		for (size_t i = 0; ans[a].reply != NULL &&
		     i < ans[a].reply->metrics->n_metrics;
		     i++) {
			endpoint[n] = ans[a].endpoint;
			all[n++] = ans[a].reply->metrics->metrics[i];
		}
	for (size_t i = 0; i < n; i++) {
		const Scep__V1__Metric *m = all[i];
		int seen = metrics_ours(m->name);

		for (size_t j = 0; j < i && !seen; j++)
			seen = strcmp(all[j]->name, m->name) == 0;
		if (seen)
			continue;
		metrics_header(t, m->name, m->help ? m->help : m->name,
		    m->type ? m->type : "counter");
		for (size_t j = i; j < n; j++) {
			const Scep__V1__Metric *s = all[j];

			if (strcmp(s->name, m->name) != 0)
				continue;
			fputs(s->name, t->f);
			metrics_labels(t->f, endpoint[j], s->labels);
			fprintf(t->f, " %.17g\n", s->value);
		}
	}
	free(all);
	free(endpoint);
	return 0;
}

/* Each service of metrics_asked at each of its endpoints, in *out (the
 * caller frees the replies and the array): how many, 0 out of memory. */
static size_t
metrics_ask_all(struct frontend *fe, struct metrics_answer **out)
{
	size_t n = 0, k = 0;

	for (size_t i = 0; i < METRICS_NASKED; i++) {
		size_t e = upstream_endpoints(fe, metrics_asked[i].which);

		n += e > 1 ? e : 1;
	}
	if ((*out = calloc(n, sizeof(**out))) == NULL)
		return 0;
	for (size_t i = 0; i < METRICS_NASKED; i++) {
		enum upstream which = metrics_asked[i].which;
		size_t e = upstream_endpoints(fe, which);

		if (e <= 1) {
			(*out)[k].service = metrics_asked[i].name;
			(*out)[k++].reply = metrics_ask(fe, which, SIZE_MAX);
			continue;
		}
		/* One after another: one that does not answer holds the
		 * scrape for RPCTimeout. */
		for (size_t j = 0; j < e; j++) {
			(*out)[k].service = metrics_asked[i].name;
			(*out)[k].endpoint = upstream_endpoint(fe, which, j);
			(*out)[k++].reply = metrics_ask(fe, which, j);
		}
	}
	return k;
}

enum MHD_Result
metrics_refuse_remote(struct MHD_Connection *c, struct request *r)
{
	log_warn(
	    "metrics: refused %s: served to loopback clients only", r->client);
	return http_text(c, r, MHD_HTTP_FORBIDDEN,
	    "Metrics are served to loopback clients only.\n");
}

enum MHD_Result
metrics_handle(struct frontend *fe, struct MHD_Connection *c, struct request *r)
{
	struct metrics_text t = {0};
	struct metrics_answer *ans = NULL;
	size_t nans = 0;
	enum MHD_Result ret;
	char host[256];
	int oom;

	if (!http_host_is_ours(fe, c, host, sizeof(host))) {
		log_warn("metrics: refused a request from %s: Host %s is not a "
		         "name of this server (DNS rebinding?); [frontend] "
		         "AdminHosts lists more",
		    r->client, host);
		return http_text(c, r, MHD_HTTP_FORBIDDEN,
		    "Metrics answer to this server's names only; add yours "
		    "to [frontend] AdminHosts.\n");
	}
	if ((t.f = open_memstream(&t.buf, &t.len)) == NULL)
		return http_no_memory(c, r, "the metrics");
	metrics_header(&t, "scepd_http_responses_total",
	    "HTTP answers of this frontend by status code.", "counter");
	for (size_t i = 0; i < METRICS_NCODES + 2; i++) {
		unsigned long n = atomic_load(&metrics_responses[i]);

		if (i < METRICS_NCODES)
			fprintf(t.f,
			    "scepd_http_responses_total{code=\"%u\"} %lu\n",
			    metrics_codes[i], n);
		else
			fprintf(t.f,
			    "scepd_http_responses_total{code=\"%s\"} %lu\n",
			    i == METRICS_NCODES ? "other" : "unsent", n);
	}
	metrics_header(&t, "scepd_http_connections_refused_total",
	    "Connections refused before a request was read: MaxConnections "
	    "(answered 503), PerIPConnectionLimit (closed).",
	    "counter");
	for (size_t i = 0; i < METRICS_NREFUSALS; i++)
		fprintf(t.f,
		    "scepd_http_connections_refused_total{limit=\"%s\"} %lu\n",
		    metrics_refusals[i], atomic_load(&metrics_refused[i]));
	metrics_header(&t, "scepd_frontend_queued_requests",
	    "Requests waiting for one of the frontend's UpstreamThreads.",
	    "gauge");
	fprintf(t.f, "scepd_frontend_queued_requests %zu\n",
	    offload_queued(fe->offload));
	metrics_header(&t, "scepd_up",
	    "Whether the service answered the frontend's metrics request.",
	    "gauge");
	oom = (nans = metrics_ask_all(fe, &ans)) == 0;
	for (size_t i = 0; i < nans; i++) {
		fprintf(t.f, "scepd_up{service=\"%s\"", ans[i].service);
		if (ans[i].endpoint != NULL) {
			fputs(",endpoint=\"", t.f);
			metrics_label_value(t.f, ans[i].endpoint);
			fputc('"', t.f);
		}
		fprintf(t.f, "} %d\n", ans[i].reply != NULL);
	}
	oom = oom || metrics_services(&t, ans, nans) != 0;
	if (fclose(t.f) != 0 || oom)
		ret = http_no_memory(c, r, "the metrics");
	else
		ret = http_respond(c, r, MHD_HTTP_OK,
		    "text/plain; version=0.0.4; charset=utf-8", t.buf, t.len,
		    NULL);
	free(t.buf);
	for (size_t i = 0; i < nans; i++)
		if (ans[i].reply != NULL)
			scep__v1__reply__free_unpacked(ans[i].reply, NULL);
	free(ans);
	return ret;
}
