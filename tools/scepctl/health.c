/*
 * scepctl health ca|ra|challenge [--timeout SECONDS]: whether the service
 * answers the launcher's liveness check (a HealthRequest, which one of its
 * workers answers, so a service stuck in its key store or its database
 * stays silent) within the time given. For deployments the launcher does
 * not run (containers, pods): their health checks run it beside the
 * service, as its user, where a TCP connect to the service's port would
 * succeed while it hangs. Over CurveZMQ it presents the service's own key
 * pair, which the service admits for this check alone.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc.h"
#include "scepctl.h"

#define HEALTH_TIMEOUT_S 5 /* the launcher's HealthCheckTimeout default */
#define HEALTH_TIMEOUT_MAX_S 300

static void
scepctl_health_usage(FILE *f)
{
	fprintf(f,
	    "usage: scepctl [--data-dir DIR] health ca|ra|challenge "
	    "[--timeout SECONDS]\n"
	    "  Asks the service at its [SECTION] Listen of DIR/scepd.conf\n"
	    "  whether it is alive; exit status 0 when it answers within\n"
	    "  SECONDS (default %d), 1 when not. Run it where the service\n"
	    "  runs, as its user: over CurveZMQ it presents the service's own\n"
	    "  key pair (CurveSecretKeyFile), which the service admits for\n"
	    "  this check only. The frontend's check is GET /healthz.\n",
	    HEALTH_TIMEOUT_S);
}

int
scepctl_health(const struct scepctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"timeout", required_argument, NULL, 't'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	static const char *const sections[] = {"ca", "ra", "challenge"};
	Scep__V1__Request req = SCEP__V1__REQUEST__INIT;
	Scep__V1__HealthRequest body = SCEP__V1__HEALTH_REQUEST__INIT;
	Scep__V1__Reply *reply = NULL;
	struct scepctl_conn conn;
	const char *section = NULL;
	/* scepctl --timeout, unless the command's own says otherwise */
	long timeout_s = ctl->timeout_s <= 0        ? HEALTH_TIMEOUT_S
	    : ctl->timeout_s < HEALTH_TIMEOUT_MAX_S ? ctl->timeout_s
	                                            : HEALTH_TIMEOUT_MAX_S;
	char name[32];
	int64_t start;
	int c, e, rc = 1;

	optind = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			if (scepctl_seconds("--timeout", optarg,
			        HEALTH_TIMEOUT_MAX_S, &timeout_s) != 0)
				return 2;
			break;
		case 'h':
			scepctl_health_usage(stdout);
			return 0;
		default:
			scepctl_health_usage(stderr);
			return 2;
		}
	}
	if (optind + 1 != argc) {
		scepctl_health_usage(stderr);
		return 2;
	}
	for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++)
		if (strcmp(argv[optind], sections[i]) == 0)
			section = sections[i];
	if (section == NULL) {
		if (strcmp(argv[optind], "frontend") == 0)
			fprintf(stderr,
			    "scepctl: the frontend's liveness check is HTTP: "
			    "GET /healthz on its Listen (curl -fsS "
			    "http://127.0.0.1:8080/healthz)\n");
		else
			fprintf(stderr,
			    "scepctl: health: '%s' is none of ca, ra, "
			    "challenge\n",
			    argv[optind]);
		return 2;
	}
	snprintf(name, sizeof(name), "scepd-%s", section);
	if (scepctl_connect_self(ctl, section, &conn) != 0)
		return 1;
	req.body_case = SCEP__V1__REQUEST__BODY_HEALTH;
	req.health = &body;
	start = rpc_now_ms();
	/* One attempt for the whole time: a service that does not answer
	 * the first copy would not answer a second sooner. */
	e = rpc_call_once(conn.client, &req, (int)(timeout_s * 1000), &reply);
	if (e == RPC_ETIMEDOUT)
		fprintf(stderr,
		    "scepctl: %s at %s did not answer within %ld s: down, "
		    "hung, or not reachable from here\n",
		    name, conn.endpoint, timeout_s);
	else if (e != RPC_OK)
		fprintf(stderr, "scepctl: %s at %s: %s\n", name, conn.endpoint,
		    rpc_strerror(e));
	else if (reply->status != SCEP__V1__STATUS__STATUS_OK ||
	    reply->body_case != SCEP__V1__REPLY__BODY_HEALTH)
		fprintf(stderr, "scepctl: %s at %s refused the check: %s\n",
		    name, conn.endpoint,
		    reply->error ? reply->error : "no reason given");
	else {
		printf("%s at %s answered in %lld ms\n", name, conn.endpoint,
		    (long long)(rpc_now_ms() - start));
		rc = 0;
	}
	if (reply != NULL)
		scep__v1__reply__free_unpacked(reply, NULL);
	scepctl_disconnect(&conn);
	return rc;
}
