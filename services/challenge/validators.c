/*
 * The validators a request can be checked by: the built-in `otp` (always)
 * and `static` (with UseSinglePassword = 1), and every [validator.NAME]
 * section, whose Module names a shared object exporting the table of
 * lib/plugin.h. [challenge.paths] maps SCEP paths to them; other paths use
 * `Validator` of [challenge]. Everything is checked at start: a typo is a
 * configuration error, not a refusal at the first enrollment.
 */
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "challenge.h"
#include "clock.h"
#include "log.h"
#include "plugin_load.h"

static struct validator *
validator_of(const struct scepd_plugin_host *host)
{
	return (struct validator *)((char *)host -
	    offsetof(struct validator, host));
}

static const char *
validator_config_get(const struct scepd_plugin_host *host, const char *key)
{
	struct validator *v = validator_of(host);
	char section[128];

	snprintf(
	    section, sizeof(section), CONFIG_SECTION_VALIDATOR "%s", v->name);
	return config_pairs_get(v->c->config, section, key);
}

static void
validator_log(
    const struct scepd_plugin_host *host, int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	plugin_log_v("", host->instance, level, fmt, ap);
	va_end(ap);
}

/* Loads Module's table; the ABI version is checked before anything else. */
static const struct scepd_challenge_validator *
plugin_table(
    struct challenge *c, const char *section, const char *module, void **dl)
{
	const struct scepd_challenge_validator *table;
	char *path, err[512];

	*dl = NULL;
	path = plugin_module_path(
	    module, c->settings.plugin_dir, c->config->basedir);
	if (path == NULL)
		return NULL;
	table = plugin_open(
	    path, SCEPD_CHALLENGE_VALIDATOR_SYMBOL, dl, err, sizeof(err));
	free(path);
	if (table == NULL) {
		fprintf(stderr, "scepd-challenge: [%s] Module = %s: %s\n",
		    section, module, err);
		return NULL;
	}
	if (table->name == NULL || table->init == NULL ||
	    table->check == NULL || table->destroy == NULL ||
	    table->keys == NULL) {
		fprintf(stderr,
		    "scepd-challenge: [%s] Module = %s: incomplete table\n",
		    section, module);
		dlclose(*dl);
		*dl = NULL;
		return NULL;
	}
	return table;
}

static struct validator *
validator_find(struct challenge *c, const char *name)
{
	for (size_t i = 0; i < c->nvalidators; i++)
		if (strcasecmp(c->validators[i].name, name) == 0)
			return &c->validators[i];
	return NULL;
}

static int
validator_add(struct challenge *c, const char *name,
    const struct scepd_challenge_validator *table, void *dl)
{
	struct validator *v = &c->validators[c->nvalidators];
	char err[512] = "";

	memset(v, 0, sizeof(*v));
	if ((v->name = strdup(name)) == NULL) {
		if (dl != NULL)
			dlclose(dl);
		return -1;
	}
	v->v = table;
	v->dl = dl;
	v->c = c;
	pthread_mutex_init(&v->one_at_a_time, NULL);
	pthread_mutex_init(&v->rest_lock, NULL);
	if (dl != NULL) {
		const int *concurrent =
		    dlsym(dl, SCEPD_CHALLENGE_VALIDATOR_CONCURRENT_SYMBOL);

		v->concurrent = concurrent != NULL && *concurrent == 1;
		for (size_t i = 0; !v->concurrent && i < c->nvalidators; i++)
			if (c->validators[i].dl == dl) {
				v->turns_of = &c->validators[i];
				break;
			}
	}
	v->host.abi_version = SCEPD_PLUGIN_ABI_VERSION;
	v->host.size = sizeof(v->host);
	v->host.instance = v->name;
	v->host.config_get = validator_config_get;
	v->host.log = validator_log;
	v->host.time_left_ms = plugin_time_left_ms;
	v->host.opaque = c;
	c->nvalidators++;
	if (table->init(&v->host, &v->state, err, sizeof(err)) != 0) {
		fprintf(stderr, "scepd-challenge: [%s%s] %s\n",
		    dl != NULL ? CONFIG_SECTION_VALIDATOR : "",
		    dl != NULL ? name : "challenge", err);
		v->v = NULL; /* no destroy for what did not start */
		return -1;
	}
	log_info("validator %s ready (%s%s)", name, table->name,
	    dl != NULL ? ", plugin" : ", built in");
	return 0;
}

static int
validators_load_sections(struct challenge *c)
{
	for (size_t i = 0; i < c->config->n; i++) {
		const struct config_pair *p = &c->config->pair[i];
		const char *name =
		    p->section + strlen(CONFIG_SECTION_VALIDATOR);
		const struct scepd_challenge_validator *table;
		const char *module;
		void *dl;

		/* Before the lookup below, which finds the built-in. */
		if (strcasecmp(name, "otp") == 0 ||
		    strcasecmp(name, "static") == 0) {
			fprintf(stderr,
			    "scepd-challenge: [%s]: %s is the name of a "
			    "built-in validator (otp, static), set in "
			    "[challenge]: name the section otherwise\n",
			    p->section, name);
			return -1;
		}
		if (validator_find(c, name) != NULL)
			continue; /* a later key of a section already loaded */
		if (!plugin_instance_name_ok(name)) {
			/* It is a metrics label and a log word. */
			fprintf(stderr,
			    "scepd-challenge: [%s]: a validator name has "
			    "letters, digits, '-' and '_' only\n",
			    p->section);
			return -1;
		}
		module = config_pairs_get(c->config, p->section, "Module");
		if (module == NULL || module[0] == '\0') {
			fprintf(stderr,
			    "scepd-challenge: [%s] Module: is required\n",
			    p->section);
			return -1;
		}
		if (strcasecmp(module, "otp") == 0 ||
		    strcasecmp(module, "static") == 0) {
			fprintf(stderr,
			    "scepd-challenge: [%s] Module = %s: built in; "
			    "name it directly (Validator = %s)\n",
			    p->section, module, module);
			return -1;
		}
		if ((table = plugin_table(c, p->section, module, &dl)) == NULL)
			return -1;
		if (plugin_check_keys(c->config, p->section, table->keys,
		        "scepd-challenge", table->name) != 0) {
			dlclose(dl);
			return -1;
		}
		if (validator_add(c, name, table, dl) != 0)
			return -1;
	}
	return 0;
}

/*
 * Whether `path` is one of [frontend] Paths (its default when the section
 * sets none), when the file has a [frontend] section: a key of
 * [challenge.paths] that is none would silently leave its devices to the
 * default validator. 1 when it is, or the file says nothing of the
 * frontend (the services configured apart); 0 with the message written.
 */
static int
path_served(const struct config_pairs *frontend, const char *path)
{
	const char *list = config_pairs_get(frontend, "frontend", "Paths");
	char *copy, *tok, *save = NULL;
	int found = 0;

	if (frontend->n == 0)
		return 1;
	if (list == NULL)
		list = CONFIG_DEFAULT_SCEP_PATHS;
	if ((copy = strdup(list)) == NULL)
		return 0;
	for (tok = strtok_r(copy, " \t", &save); tok != NULL && !found;
	     tok = strtok_r(NULL, " \t", &save))
		found = config_path_equal(tok, path, 1);
	free(copy);
	if (!found)
		fprintf(stderr,
		    "scepd-challenge: [" CONFIG_SECTION_PATHS "] %s: not one "
		    "of [frontend] Paths (%s): no device would come by it; "
		    "name the path as Paths does\n",
		    path, list);
	return found;
}

static int
validators_load_paths(struct challenge *c, const char *config_file)
{
	struct config_pairs paths, frontend;
	int rc = 0;

	if (config_load_pairs(config_file, CONFIG_SECTION_PATHS, &paths) != 0)
		return -1;
	if (config_load_pairs(config_file, "frontend", &frontend) != 0) {
		config_pairs_free(&paths);
		return -1;
	}
	if (paths.n > 0 &&
	    (c->routes = calloc(paths.n, sizeof(*c->routes))) == NULL) {
		config_pairs_free(&paths);
		config_pairs_free(&frontend);
		return -1;
	}
	for (size_t i = 0; i < paths.n; i++) {
		struct validator *v = validator_find(c, paths.pair[i].value);

		if (!path_served(&frontend, paths.pair[i].name)) {
			rc = -1;
			continue;
		}
		if (v == NULL) {
			fprintf(stderr,
			    "scepd-challenge: [" CONFIG_SECTION_PATHS
			    "] %s = %s: "
			    "no such validator (otp%s, or a "
			    "[" CONFIG_SECTION_VALIDATOR "NAME] section)\n",
			    paths.pair[i].name, paths.pair[i].value,
			    c->settings.use_single_password ? ", static" : "");
			rc = -1;
			continue;
		}
		c->routes[c->nroutes].path = strdup(paths.pair[i].name);
		c->routes[c->nroutes].validator = v;
		if (c->routes[c->nroutes].path == NULL)
			rc = -1;
		c->nroutes++;
		log_info(
		    "SCEP path %s: validator %s", paths.pair[i].name, v->name);
	}
	config_pairs_free(&paths);
	config_pairs_free(&frontend);
	return rc;
}

int
validators_load(struct challenge *c, const char *config_file)
{
	const char *def;
	size_t sections = 0;

	if ((c->config = calloc(1, sizeof(*c->config))) == NULL ||
	    config_load_pairs(
	        config_file, CONFIG_SECTION_VALIDATOR, c->config) != 0)
		return -1;
	sections = c->config->n; /* an upper bound on the sections */
	c->validators = calloc(sections + 2, sizeof(*c->validators));
	if (c->validators == NULL)
		return -1;
	if (validator_add(c, "otp", &challenge_otp_validator, NULL) != 0)
		return -1;
	if (c->settings.use_single_password &&
	    validator_add(c, "static", &challenge_static_validator, NULL) != 0)
		return -1;
	if (validators_load_sections(c) != 0)
		return -1;
	def = c->settings.validator;
	if (def == NULL || def[0] == '\0')
		def = c->settings.use_single_password ? "static" : "otp";
	if ((c->default_validator = validator_find(c, def)) == NULL) {
		fprintf(stderr,
		    "scepd-challenge: [challenge] Validator = %s: no such "
		    "validator\n",
		    def);
		return -1;
	}
	if (c->settings.use_single_password &&
	    strcmp(c->default_validator->name, "static") != 0)
		log_warn("UseSinglePassword = 1 but Validator = %s: the single "
		         "password serves only paths mapped to static%s",
		    c->default_validator->name,
		    strcmp(c->default_validator->name, "otp") == 0
		        ? "; the admin page and the MDM API issue one-time "
		          "passwords for the others"
		        : "");
	log_info("default validator: %s", c->default_validator->name);
	return validators_load_paths(c, config_file);
}

/*
 * A plugin asked one request at a time: one asked, one waiting its turn,
 * no more (the rest of the service's workers stay free), and the waiting
 * one only until its caller's deadline. `limited` 0 (a consume: the
 * certificate is issued, and an MDM not told the password was used would
 * allow it again) waits its turn whatever the queue and is not counted
 * in it (one per issuance: check.c). 0 with the plugin's lock held, -1
 * when its turn would not come in time.
 */
static int
validator_turn(struct validator *v, int64_t deadline_ms, int limited)
{
	struct timespec until = challenge_deadline(deadline_ms);

	if (v->turns_of != NULL)
		v = v->turns_of;
	if (limited && atomic_fetch_add(&v->queued, 1) >= 2) {
		atomic_fetch_sub(&v->queued, 1);
		return -1;
	}
	if (pthread_mutex_clocklock(
	        &v->one_at_a_time, CLOCK_MONOTONIC, &until) != 0) {
		if (limited)
			atomic_fetch_sub(&v->queued, 1);
		return -1;
	}
	return 0;
}

/* The count first: a request arriving as the lock is released must not
 * find two still counted and be turned away. */
static void
validator_turn_end(struct validator *v, int limited)
{
	if (v->turns_of != NULL)
		v = v->turns_of;
	if (limited)
		atomic_fetch_sub(&v->queued, 1);
	pthread_mutex_unlock(&v->one_at_a_time);
}

/*
 * An MDM that hangs is not asked by every request meanwhile: each would
 * hold a worker for the plugin's whole timeout (any device, or one address
 * sending again and again, could keep them all waiting) and the MDM gets
 * a flood as it comes back. After VALIDATOR_FAILURES checks in a row that
 * waited VALIDATOR_SLOW_MS or more without a verdict (a timeout, a
 * connection that hangs: not an error answered at once, which holds no
 * worker and which one device's odd request may draw), it rests
 * [challenge] ValidatorRest seconds: answered UNAVAILABLE at once. Then
 * one check asks it (its start moves the rest on), the others still rest;
 * a verdict ends the rest. 1: resting (why says so), 0: ask it.
 */
static int
validator_resting(struct validator *v, char *why, size_t whylen)
{
	int64_t now = clock_monotonic_ms();
	int64_t rest_ms = (int64_t)v->c->settings.validator_rest * 1000;
	int resting = 0;

	pthread_mutex_lock(&v->rest_lock);
	if (v->resting && now < v->resting_until_ms)
		resting = 1;
	else if (v->resting)
		v->resting_until_ms = now + rest_ms; /* this one asks it */
	pthread_mutex_unlock(&v->rest_lock);
	if (resting)
		snprintf(why, whylen,
		    "validator %s rests after checks without a verdict: not "
		    "asked again for up to %ld s",
		    v->name, v->c->settings.validator_rest);
	return resting;
}

static void
validator_rest_count(
    struct validator *v, enum scepd_verdict verdict, int64_t took_ms)
{
	int64_t rest_ms = (int64_t)v->c->settings.validator_rest * 1000;

	pthread_mutex_lock(&v->rest_lock);
	if (verdict != SCEPD_VERDICT_UNAVAILABLE) {
		if (v->resting)
			log_info("validator %s gave a verdict again: its rest "
			         "is over",
			    v->name);
		v->resting = 0;
		v->failures = 0;
	} else if (took_ms >= VALIDATOR_SLOW_MS && rest_ms > 0 &&
	    ++v->failures >= VALIDATOR_FAILURES) {
		if (!v->resting)
			log_warn("validator %s waited %d checks in a row for "
			         "no verdict: not asked for %ld s, its checks "
			         "answered 503 at once ([challenge] "
			         "ValidatorRest)",
			    v->name, v->failures,
			    v->c->settings.validator_rest);
		v->resting = 1;
		v->resting_until_ms = clock_monotonic_ms() + rest_ms;
	}
	pthread_mutex_unlock(&v->rest_lock);
}

int
validator_worker_take(struct validator *v, char *why, size_t whylen)
{
	int most = v->c->nworkers > 1 ? v->c->nworkers - 1 : 1;

	if (atomic_fetch_add(&v->c->plugin_checks, 1) < most)
		return 0;
	atomic_fetch_sub(&v->c->plugin_checks, 1);
	snprintf(why, whylen,
	    "validator %s: %d checks of plugins under way, one worker kept "
	    "for the other validators ([challenge] Workers = %d): retry "
	    "later",
	    v->name, most, v->c->nworkers);
	return -1;
}

void
validator_worker_give(struct challenge *c)
{
	atomic_fetch_sub(&c->plugin_checks, 1);
}

enum scepd_verdict
validator_check(struct validator *v, size_t worker, int64_t deadline_ms,
    const struct scepd_challenge_request *vr, char *why, size_t whylen)
{
	enum scepd_verdict verdict;
	int64_t t0 = clock_monotonic_ms();

	if (validator_resting(v, why, whylen))
		return SCEPD_VERDICT_UNAVAILABLE;
	/* A plugin asked one request at a time holds two workers at most
	 * (validator_turn); one asked concurrently, as many as it is sent. */
	if (v->concurrent) {
		if (validator_worker_take(v, why, whylen) != 0)
			return SCEPD_VERDICT_UNAVAILABLE;
		plugin_call_deadline(deadline_ms);
		verdict =
		    v->v->check(validator_state(v, worker), vr, why, whylen);
		plugin_call_deadline(0);
		validator_worker_give(v->c);
		validator_rest_count(v, verdict, clock_monotonic_ms() - t0);
		return verdict;
	}
	if (validator_turn(v, deadline_ms, 1) != 0) {
		snprintf(why, whylen,
		    "validator %s is busy (one request at a time): retry later",
		    v->name);
		return SCEPD_VERDICT_UNAVAILABLE;
	}
	t0 = clock_monotonic_ms(); /* its own wait, not its turn's */
	plugin_call_deadline(deadline_ms);
	verdict = v->v->check(v->state, vr, why, whylen);
	plugin_call_deadline(0);
	validator_turn_end(v, 1);
	validator_rest_count(v, verdict, clock_monotonic_ms() - t0);
	return verdict;
}

int
validator_consume(struct validator *v, size_t worker, int64_t deadline_ms,
    const struct scepd_challenge_request *vr)
{
	if (v->concurrent) {
		v->v->consume(validator_state(v, worker), vr);
		return 0;
	}
	if (validator_turn(v, deadline_ms, 0) != 0)
		return -1;
	v->v->consume(v->state, vr);
	validator_turn_end(v, 0);
	return 0;
}

int
validators_have_plugin(const struct challenge *c)
{
	for (size_t i = 0; i < c->nvalidators; i++)
		if (c->validators[i].dl != NULL)
			return 1;
	return 0;
}

int
validators_spawn(struct challenge *c, int nworkers)
{
	for (size_t i = 0; nworkers > 1 && i < c->nvalidators; i++) {
		struct validator *v = &c->validators[i];
		char err[512] = "";

		if (v->dl == NULL || !v->concurrent)
			continue; /* built in (locked), or one at a time */
		if ((v->states = calloc(
		         (size_t)nworkers, sizeof(*v->states))) == NULL)
			return -1;
		v->states[0] = v->state;
		for (v->nstates = 1; v->nstates < (size_t)nworkers;
		     v->nstates++)
			if (v->v->init(&v->host, &v->states[v->nstates], err,
			        sizeof(err)) != 0) {
				fprintf(stderr,
				    "scepd-challenge: "
				    "[" CONFIG_SECTION_VALIDATOR
				    "%s] instance %zu: %s\n",
				    v->name, v->nstates + 1, err);
				return -1;
			}
		log_info("validator %s: %d instances, one per worker: %d "
		         "checks at once",
		    v->name, nworkers, nworkers);
	}
	return 0;
}

void
validators_free(struct challenge *c)
{
	for (size_t i = 0; i < c->nvalidators; i++) {
		struct validator *v = &c->validators[i];

		/* states[0] is `state`, destroyed below. */
		for (size_t k = 1; k < v->nstates; k++)
			v->v->destroy(v->states[k]);
		free(v->states);
		if (v->v != NULL)
			v->v->destroy(v->state);
		if (v->name != NULL) {
			pthread_mutex_destroy(&v->one_at_a_time);
			pthread_mutex_destroy(&v->rest_lock);
		}
		if (v->dl != NULL)
			dlclose(v->dl);
		free(v->name);
	}
	free(c->validators);
	c->validators = NULL;
	c->nvalidators = 0;
	for (size_t i = 0; i < c->nroutes; i++)
		free(c->routes[i].path);
	free(c->routes);
	c->routes = NULL;
	c->nroutes = 0;
	if (c->config != NULL) {
		config_pairs_free(c->config);
		free(c->config);
		c->config = NULL;
	}
}

struct validator *
validators_for_path(struct challenge *c, const char *path)
{
	if (path != NULL)
		for (size_t i = 0; i < c->nroutes; i++)
			/* One trailing '/' aside: the frontend sends its
			 * Paths entry as written. */
			if (config_path_equal(c->routes[i].path, path, 1))
				return c->routes[i].validator;
	return c->default_validator;
}
