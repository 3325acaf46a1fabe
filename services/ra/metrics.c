/*
 * PKIOperation outcomes, counted by every worker (atomics) and reported to
 * the frontend's /metrics on MetricsRequest.
 */
#include <stdatomic.h>
#include <stdio.h>

#include "ra.h"

/* Failures by failInfo (badAlg .. badCertId). */
#define RA_FAILINFOS 5
static atomic_ulong ra_outcomes[RA_OUTCOME_COUNT];
static atomic_ulong ra_failures[RA_FAILINFOS];
static atomic_ulong ra_legacy[RA_LEGACY_N];

void
ra_count_legacy(enum ra_legacy which)
{
	atomic_fetch_add(&ra_legacy[which], 1);
}

void
ra_count(enum ra_outcome outcome, int failinfo)
{
	atomic_fetch_add(&ra_outcomes[outcome], 1);
	if (outcome == RA_OUTCOME_FAILURE && failinfo >= 0 &&
	    failinfo < RA_FAILINFOS)
		atomic_fetch_add(&ra_failures[failinfo], 1);
}

void
ra_handle_metrics(void *worker, const Scep__V1__Request *req,
    Scep__V1__Reply *reply, struct rpc_arena *arena)
{
	static const char *const outcome_names[RA_OUTCOME_COUNT] = {"success",
	    "failure", "pending", "unavailable", "rate_limited",
	    "unanswerable"};
	const struct ra *ra = ((const struct ra_worker *)worker)->ra;
	Scep__V1__MetricsReply *out;
	Scep__V1__Metric **m;
	size_t n = 0;
	char labels[64];

	(void)req;
	static const char *const legacy_names[RA_LEGACY_N] = {
	    "AllowDES", "AllowDES3", "AllowSHA1"};

	m = rpc_alloc(arena,
	    (RA_OUTCOME_COUNT + RA_FAILINFOS + RA_LEGACY_N + ra->n_expiry) *
	        sizeof(*m));
	for (int i = 0; i < RA_OUTCOME_COUNT; i++) {
		snprintf(
		    labels, sizeof(labels), "outcome=\"%s\"", outcome_names[i]);
		m[n++] = rpc_metric(arena, "scepd_ra_pki_operations_total",
		    "PKIOperation answers: a CertRep SUCCESS, FAILURE or "
		    "PENDING, or HTTP 503, 429, 400.",
		    "counter", labels, (double)atomic_load(&ra_outcomes[i]));
	}
	for (int i = 0; i < RA_FAILINFOS; i++) {
		snprintf(labels, sizeof(labels), "failinfo=\"%s\"",
		    scep_failinfo_name(i));
		m[n++] = rpc_metric(arena, "scepd_ra_failures_total",
		    "CertRep FAILUREs by failInfo.", "counter", labels,
		    (double)atomic_load(&ra_failures[i]));
	}
	for (int i = 0; i < RA_LEGACY_N; i++) {
		snprintf(
		    labels, sizeof(labels), "switch=\"%s\"", legacy_names[i]);
		m[n++] = rpc_metric(arena, "scepd_ra_legacy_total",
		    "Requests accepted only by a legacy switch.", "counter",
		    labels, (double)atomic_load(&ra_legacy[i]));
	}
	for (size_t i = 0; i < ra->n_expiry; i++) {
		snprintf(labels, sizeof(labels), "certificate=\"%s\"",
		    ra->expiry[i].label);
		m[n++] = rpc_metric(arena,
		    "scepd_certificate_expiry_timestamp_seconds",
		    "When a certificate the RA uses or serves ends (seconds "
		    "since the epoch).",
		    "gauge", labels, (double)ra->expiry[i].not_after);
	}
	out = rpc_alloc(arena, sizeof(*out));
	scep__v1__metrics_reply__init(out);
	out->metrics = m;
	out->n_metrics = n;
	reply->body_case = SCEP__V1__REPLY__BODY_METRICS;
	reply->metrics = out;
}
