/*
 * The services' route tables (services/{ca,challenge,ra}/routes.c): who
 * may ask each service what. Each table is checked against the list
 * below for every request kind of proto/scep.proto and every role's name:
 * a kind the list does not give a role is refused (rpc_route_for: NULL;
 * the server answers STATUS_BAD_REQUEST), and so is a kind a service has
 * no route for. Names are whole: a role's prefixes, longer names, other
 * cases and a route's list of names are no role. rpc_route_for reads
 * the table alone: "self" (RPC_PEER_SELF, a health probe holding the
 * service's own key) is refused without CURVE by the server itself
 * (test_rpc test_self_needs_the_key).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "rpc.h"

/* The services' tables (each service's header declares its own; no
 * service's header is included here beside another's). */
extern const struct rpc_route ca_routes[];
extern const struct rpc_route challenge_routes[];
extern const struct rpc_route ra_routes[];

/* What a service serves and to whom: the roles, space separated. */
struct allowed {
	Scep__V1__Request__BodyCase body;
	const char *roles;
};

#define HEALTH_ROLES "scepd scepctl " RPC_PEER_SELF

static const struct allowed ca_allowed[] = {
    /* Certificates only at the RA's asking, which checked the device's
     * envelope and password. */
    {SCEP__V1__REQUEST__BODY_SIGN, "ra"},
    {SCEP__V1__REQUEST__BODY_POLL, "ra"},
    {SCEP__V1__REQUEST__BODY_LEDGER_SHOW, "ra scepctl"},
    {SCEP__V1__REQUEST__BODY_GET_CRL, "ra scepctl"},
    /* The operator's alone: an RA taken over can neither approve its own
     * pending request nor revoke a certificate. */
    {SCEP__V1__REQUEST__BODY_LEDGER_LIST, "scepctl"},
    {SCEP__V1__REQUEST__BODY_REVOKE, "scepctl"},
    {SCEP__V1__REQUEST__BODY_REVOKE_IMPORT, "scepctl"},
    {SCEP__V1__REQUEST__BODY_DECIDE, "scepctl"},
    {SCEP__V1__REQUEST__BODY_HEALTH, HEALTH_ROLES},
#ifdef SCEPD_TEST_HOOKS
    {SCEP__V1__REQUEST__BODY_SANDBOX_PROBE, "scepctl"},
#endif
    {0, NULL},
};

static const struct allowed challenge_allowed[] = {
    {SCEP__V1__REQUEST__BODY_CHALLENGE_ISSUE, "frontend scepctl"},
    {SCEP__V1__REQUEST__BODY_CHALLENGE_SET_SINGLE, "frontend scepctl"},
    {SCEP__V1__REQUEST__BODY_CHALLENGE_REVOKE, "frontend scepctl"},
    /* A password is checked, spent and given back by the RA alone: the
     * frontend that hands passwords out cannot spend one. */
    {SCEP__V1__REQUEST__BODY_CHALLENGE_CHECK, "ra"},
    {SCEP__V1__REQUEST__BODY_CHALLENGE_CONSUME, "ra"},
    {SCEP__V1__REQUEST__BODY_CHALLENGE_RELEASE, "ra"},
    {SCEP__V1__REQUEST__BODY_CHALLENGE_LIST, "scepctl"},
    {SCEP__V1__REQUEST__BODY_METRICS, "frontend"},
    {SCEP__V1__REQUEST__BODY_HEALTH, HEALTH_ROLES},
    {0, NULL},
};

/* The frontend's, but the launcher's and the operator's liveness check;
 * GetCACaps and GetNextCACert come with GetCACert's answer. */
static const struct allowed ra_allowed[] = {
    {SCEP__V1__REQUEST__BODY_GET_CA_CERT, "frontend"},
    {SCEP__V1__REQUEST__BODY_PKI_OPERATION, "frontend"},
    {SCEP__V1__REQUEST__BODY_SIGN_PROFILE, "frontend"},
    {SCEP__V1__REQUEST__BODY_METRICS, "frontend"},
    {SCEP__V1__REQUEST__BODY_GET_CRL, "frontend"},
    {SCEP__V1__REQUEST__BODY_HEALTH, HEALTH_ROLES},
    {0, NULL},
};

/* Every name a caller may declare, and some it may not. */
static const char *const roles[] = {"frontend", "ra", "ca", "challenge",
    "scepctl", "scepd", RPC_PEER_SELF, "admin", "mdm"};

#define NROLES (sizeof(roles) / sizeof(roles[0]))

struct service {
	const char *name;
	const struct rpc_route *routes;
	const struct allowed *allowed;
};

static const struct service services[] = {
    {"ca", ca_routes, ca_allowed},
    {"challenge", challenge_routes, challenge_allowed},
    {"ra", ra_routes, ra_allowed},
};

#define NSERVICES (sizeof(services) / sizeof(services[0]))

/* The next name of the space-separated list at *p into `out` (64
 * bytes), *p moved past it; 0 at the end. */
static int
next_name(const char **p, char out[64])
{
	size_t n;

	*p += strspn(*p, " ");
	if (**p == '\0')
		return 0;
	n = strcspn(*p, " ");
	snprintf(out, 64, "%.*s", (int)n, *p);
	*p += n;
	return 1;
}

/* Whether `role` is one of the space-separated `list`. */
static int
listed(const char *list, const char *role)
{
	char name[64];

	while (next_name(&list, name))
		if (strcmp(name, role) == 0)
			return 1;
	return 0;
}

/* The roles `allowed` gives `body`; "" for none. */
static const char *
allowed_roles(const struct allowed *allowed, Scep__V1__Request__BodyCase body)
{
	for (; allowed->roles != NULL; allowed++)
		if (allowed->body == body)
			return allowed->roles;
	return "";
}

/* The route the service's table gives a request of `body` from
 * `origin`. */
static const struct rpc_route *
route_of(const struct service *s, Scep__V1__Request__BodyCase body,
    const char *origin)
{
	Scep__V1__Request req = SCEP__V1__REQUEST__INIT;

	req.body_case = body;
	req.origin = (char *)origin;
	return rpc_route_for(s->routes, &req);
}

/* Every request kind of the protocol, by its descriptor: a kind added to
 * scep.proto is checked too (refused unless listed above). */
static size_t
request_kinds(Scep__V1__Request__BodyCase *out, size_t max)
{
	const ProtobufCMessageDescriptor *d = &scep__v1__request__descriptor;
	size_t n = 0;

	for (unsigned i = 0; i < d->n_fields; i++)
		if ((d->fields[i].flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
		    n < max)
			out[n++] = (Scep__V1__Request__BodyCase)d->fields[i].id;
	return n;
}

/* Whether `sv` serves `body` to `role` as its list says; fails if not. */
static void
assert_served_as_listed(const struct service *sv,
    Scep__V1__Request__BodyCase body, const char *role)
{
	const struct rpc_route *route = route_of(sv, body, role);
	int want = listed(allowed_roles(sv->allowed, body), role);

	if ((route != NULL) != want)
		fail_msg("%s: request kind %d from %s: %s, expected %s",
		    sv->name, (int)body, role, route ? "served" : "refused",
		    want ? "served" : "refused");
	if (route != NULL) {
		assert_int_equal(route->body, body);
		assert_non_null(route->handler);
		assert_non_null(route->name);
	}
}

/* Each service answers each role the kinds listed for it, and nothing
 * else: a frontend cannot have the CA sign or revoke, nor spend a
 * password; the RA cannot approve or revoke. */
static void
test_each_role_asks_only_what_it_is_listed_for(void **state)
{
	Scep__V1__Request__BodyCase kinds[64];
	size_t nkinds = request_kinds(kinds, 64);

	(void)state;
	assert_true(nkinds > 20 && nkinds < 64);
	for (size_t s = 0; s < NSERVICES; s++)
		for (size_t k = 0; k < nkinds; k++)
			for (size_t r = 0; r < NROLES; r++)
				assert_served_as_listed(
				    &services[s], kinds[k], roles[r]);
}

/* A kind the protocol does not have, no kind, and no origin: refused. */
static void
test_unknown_kind_and_no_origin_are_refused(void **state)
{
	(void)state;
	for (size_t s = 0; s < NSERVICES; s++) {
		for (size_t r = 0; r < NROLES; r++) {
			assert_null(route_of(&services[s],
			    (Scep__V1__Request__BodyCase)99, roles[r]));
			assert_null(route_of(&services[s],
			    SCEP__V1__REQUEST__BODY__NOT_SET, roles[r]));
		}
		for (const struct allowed *a = services[s].allowed;
		     a->roles != NULL; a++) {
			assert_null(route_of(&services[s], a->body, NULL));
			assert_null(route_of(&services[s], a->body, ""));
		}
	}
}

/* A listed role's name only as it is: not a prefix of it, not it with
 * more, in capitals or with spaces, and not the route's list of names. */
static void
test_roles_are_whole_names(void **state)
{
	(void)state;
	for (size_t s = 0; s < NSERVICES; s++)
		for (const struct allowed *a = services[s].allowed;
		     a->roles != NULL; a++) {
			const struct service *sv = &services[s];
			const char *p = a->roles;
			char role[64], name[80];

			if (strchr(a->roles, ' ') != NULL)
				assert_null(route_of(sv, a->body, a->roles));
			while (next_name(&p, role)) {
				assert_non_null(route_of(sv, a->body, role));
				for (size_t len = 1; len < strlen(role);
				     len++) {
					snprintf(name, sizeof(name), "%.*s",
					    (int)len, role);
					assert_null(
					    route_of(sv, a->body, name));
				}
				snprintf(name, sizeof(name), "%sx", role);
				assert_null(route_of(sv, a->body, name));
				snprintf(name, sizeof(name), "%s ", role);
				assert_null(route_of(sv, a->body, name));
				snprintf(name, sizeof(name), " %s", role);
				assert_null(route_of(sv, a->body, name));
				snprintf(name, sizeof(name), "%s", role);
				for (char *c = name; *c != '\0'; c++)
					if (*c >= 'a' && *c <= 'z')
						*c = (char)(*c - 'a' + 'A');
				assert_null(route_of(sv, a->body, name));
			}
		}
}

/* Each table names only roles listed above for each kind (a role added
 * to a route is seen here), and each kind once: the first route of a
 * kind is the one served, a second never. */
static void
test_tables_list_nothing_more(void **state)
{
	(void)state;
	for (size_t s = 0; s < NSERVICES; s++)
		for (const struct rpc_route *r = services[s].routes;
		     r->body != 0; r++) {
			const char *want =
			    allowed_roles(services[s].allowed, r->body);
			const char *p = r->peers;
			char role[64];

			for (const struct rpc_route *o = services[s].routes;
			     o != r; o++)
				if (o->body == r->body)
					fail_msg("%s: kind %d has two routes",
					    services[s].name, (int)r->body);
			while (next_name(&p, role))
				if (!listed(want, role))
					fail_msg("%s: %s is served to %s, "
					         "not listed",
					    services[s].name, r->name, role);
		}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_each_role_asks_only_what_it_is_listed_for),
	    cmocka_unit_test(test_unknown_kind_and_no_origin_are_refused),
	    cmocka_unit_test(test_roles_are_whole_names),
	    cmocka_unit_test(test_tables_list_nothing_more),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
