/*
 * The challenge service's routes: which handler answers which request,
 * for whom, under the service's lock (main.c serves them; the fuzz target
 * fuzz_challenge_rpc hands them requests in process).
 */
#include <pthread.h>

#include "challenge.h"

/* A route's handler under the service's lock. */
#define CHALLENGE_LOCKED(route, handler) \
	static void route(void *worker, const Scep__V1__Request *req, \
	    Scep__V1__Reply *reply, struct rpc_arena *arena) \
	{ \
		struct challenge_worker *w = worker; \
\
		pthread_mutex_lock(&w->c->lock); \
		handler; \
		pthread_mutex_unlock(&w->c->lock); \
	}
CHALLENGE_LOCKED(route_issue, challenge_handle_issue(w->c, req, reply, arena))
CHALLENGE_LOCKED(
    route_check, challenge_check(w->c, w->index, 1, req, reply, arena))
CHALLENGE_LOCKED(
    route_consume, challenge_consume(w->c, w->index, 1, req, reply, arena))
CHALLENGE_LOCKED(route_release, challenge_release(w->c, req, reply, arena))
CHALLENGE_LOCKED(
    route_set_single, challenge_handle_set_single(w->c, req, reply, arena))
CHALLENGE_LOCKED(
    route_metrics, challenge_handle_metrics(w->c, req, reply, arena))
/* Without the lock: it takes it for what it needs (manage.c). */
static void
route_list(void *worker, const Scep__V1__Request *req, Scep__V1__Reply *reply,
    struct rpc_arena *arena)
{
	challenge_handle_list(
	    ((struct challenge_worker *)worker)->c, req, reply, arena);
}
CHALLENGE_LOCKED(route_revoke, challenge_handle_revoke(w->c, req, reply, arena))
/* The launcher's liveness check, under the service's lock as every
 * handler is: a worker stuck with it held leaves the check unanswered. */
CHALLENGE_LOCKED(route_health, rpc_handle_health(worker, req, reply, arena))

const struct rpc_route challenge_routes[] = {
    {SCEP__V1__REQUEST__BODY_CHALLENGE_ISSUE, "ChallengeIssue",
        "frontend scepctl", route_issue},
    {SCEP__V1__REQUEST__BODY_CHALLENGE_CHECK, "ChallengeCheck", "ra",
        route_check},
    {SCEP__V1__REQUEST__BODY_CHALLENGE_CONSUME, "ChallengeConsume", "ra",
        route_consume},
    {SCEP__V1__REQUEST__BODY_CHALLENGE_RELEASE, "ChallengeRelease", "ra",
        route_release},
    {SCEP__V1__REQUEST__BODY_CHALLENGE_SET_SINGLE, "ChallengeSetSingle",
        "frontend scepctl", route_set_single},
    {SCEP__V1__REQUEST__BODY_METRICS, "Metrics", "frontend", route_metrics},
    {SCEP__V1__REQUEST__BODY_CHALLENGE_LIST, "ChallengeList", "scepctl",
        route_list},
    {SCEP__V1__REQUEST__BODY_CHALLENGE_REVOKE, "ChallengeRevoke",
        "scepctl frontend", route_revoke},
    {SCEP__V1__REQUEST__BODY_HEALTH, "Health", "scepd scepctl " RPC_PEER_SELF,
        route_health},
    {0, NULL, NULL, NULL},
};
