/*
 * /metrics: Prometheus text format (version 0.0.4). The frontend's own
 * counters, then what the RA and the challenge service report of theirs
 * (MetricsRequest), each service's `scepd_up` saying whether it answered.
 * Served to loopback clients only: the counters tell an outsider how busy
 * and how attacked the server is.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontend.h"
#include "log.h"

/* HTTP statuses counted one by one; the rest fall in "other". */
static const unsigned int metrics_codes[] = {
    200, 400, 401, 403, 404, 405, 408, 413, 414, 429, 500, 503};
#define METRICS_NCODES (sizeof(metrics_codes) / sizeof(metrics_codes[0]))
static atomic_ulong metrics_responses[METRICS_NCODES + 1];

void
metrics_count_response(unsigned int status)
{
	size_t i;

	for (i = 0; i < METRICS_NCODES; i++)
		if (metrics_codes[i] == status)
			break;
	atomic_fetch_add(&metrics_responses[i], 1);
}

struct metrics_text {
	FILE *f;
	char *buf;
	size_t len;
	const char *last_name; /* HELP/TYPE once per name */
};

static void
metrics_header(struct metrics_text *t, const char *name, const char *help,
    const char *type)
{
	if (t->last_name != NULL && strcmp(t->last_name, name) == 0)
		return;
	fprintf(t->f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
	t->last_name = name;
}

/* The service's name as a label value: ours, so no escaping needed. */
static void
metrics_from(struct frontend *fe, struct metrics_text *t, enum upstream which,
    const char *service, Scep__V1__Reply **keep)
{
	Scep__V1__Request req = SCEP__V1__REQUEST__INIT;
	Scep__V1__MetricsRequest body = SCEP__V1__METRICS_REQUEST__INIT;
	Scep__V1__Reply *rep = NULL;
	int up;

	req.body_case = SCEP__V1__REQUEST__BODY_METRICS;
	req.metrics = &body;
	up = upstream_call(fe, which, &req, SCEP__V1__REPLY__BODY_METRICS,
	         &rep) == UPSTREAM_OK;
	metrics_header(t, "scepd_up",
	    "Whether the service answered the frontend's metrics request.",
	    "gauge");
	fprintf(t->f, "scepd_up{service=\"%s\"} %d\n", service, up);
	*keep = rep;
	if (!up)
		return;
	for (size_t i = 0; i < rep->metrics->n_metrics; i++) {
		const Scep__V1__Metric *m = rep->metrics->metrics[i];

		metrics_header(t, m->name, m->help ? m->help : m->name,
		    m->type ? m->type : "counter");
		fprintf(t->f, "%s%s%s%s %.17g\n", m->name, m->labels ? "{" : "",
		    m->labels ? m->labels : "", m->labels ? "}" : "", m->value);
	}
}

enum MHD_Result
metrics_handle(struct frontend *fe, struct MHD_Connection *c, struct request *r)
{
	struct metrics_text t = {0};
	Scep__V1__Reply *ra = NULL, *ch = NULL;
	enum MHD_Result ret;
	char host[256];

	if (!r->loopback) {
		log_warn("metrics: refused %s: served to loopback clients only",
		    r->client);
		return http_text(c, r, MHD_HTTP_FORBIDDEN,
		    "Metrics are served to loopback clients only.\n");
	}
	if (!http_host_is_ours(fe, c, host, sizeof(host))) {
		log_warn("metrics: refused %s: Host %s is not a name of this "
		         "server (DNS rebinding?); [frontend] AdminHosts lists "
		         "more",
		    r->client, host);
		return http_text(c, r, MHD_HTTP_FORBIDDEN,
		    "Metrics answer to this server's names only; add yours "
		    "to [frontend] AdminHosts.\n");
	}
	if ((t.f = open_memstream(&t.buf, &t.len)) == NULL)
		return http_text(
		    c, r, MHD_HTTP_INTERNAL_SERVER_ERROR, "Out of memory.\n");
	metrics_header(&t, "scepd_http_responses_total",
	    "HTTP answers of this frontend by status code.", "counter");
	for (size_t i = 0; i <= METRICS_NCODES; i++) {
		unsigned long n = atomic_load(&metrics_responses[i]);

		if (i < METRICS_NCODES)
			fprintf(t.f,
			    "scepd_http_responses_total{code=\"%u\"} %lu\n",
			    metrics_codes[i], n);
		else
			fprintf(t.f,
			    "scepd_http_responses_total{code=\"other\"} %lu\n",
			    n);
	}
	metrics_header(&t, "scepd_frontend_queued_requests",
	    "Requests waiting for one of the frontend's UpstreamThreads.",
	    "gauge");
	fprintf(t.f, "scepd_frontend_queued_requests %zu\n",
	    offload_queued(fe->offload));
	metrics_from(fe, &t, UPSTREAM_RA, "ra", &ra);
	metrics_from(fe, &t, UPSTREAM_CHALLENGE, "challenge", &ch);
	fclose(t.f);
	ret = http_respond(c, r, MHD_HTTP_OK,
	    "text/plain; version=0.0.4; charset=utf-8", t.buf, t.len, NULL);
	free(t.buf);
	if (ra != NULL)
		scep__v1__reply__free_unpacked(ra, NULL);
	if (ch != NULL)
		scep__v1__reply__free_unpacked(ch, NULL);
	return ret;
}
