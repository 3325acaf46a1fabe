#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <ini.h>

#include "config.h"

/* State of one load: which keys were seen, how many problems so far. */
struct config_load {
	const char *source; /* file name, for messages */
	const char *basedir;
	const char *section;
	const struct config_key *table;
	void *settings;
	unsigned char seen[128];
	int errors;
	int cut_reported;
	int keys; /* lines of `section` read */
};

/*
 * libinih as Debian builds it keeps 49 characters of a section name (and
 * 199 of a line: config_long_lines), and cuts the rest without a word: [template.X] with a
 * long X would be another template. A section name of 49 characters may
 * be a cut one: refused (once per load). 1 when refused.
 */
#define CONFIG_INI_SECTION_KEPT 49

static int
config_section_cut(const char *source, const char *section, int *reported)
{
	if (strlen(section) < CONFIG_INI_SECTION_KEPT)
		return 0;
	if (!*reported)
		fprintf(stderr,
		    "%s: [%s...]: section names of %d characters or more are "
		    "cut by the INI reader: use a shorter one\n",
		    source, section, CONFIG_INI_SECTION_KEPT);
	*reported = 1;
	return 1;
}

/* What the services read: [NAME], or [PREFIX.NAME] for a prefix ending in
 * '.'. A service's new section goes here too (config.h). */
static const char *const config_sections_read[] = {"scepd", "frontend", "ra",
    "challenge", CONFIG_SECTION_PATHS, "ca", CONFIG_SECTION_TEMPLATE,
    CONFIG_SECTION_POLICY, CONFIG_SECTION_VALIDATOR, CONFIG_SECTION_SIGNER,
    NULL};

static int
config_section_read(const char *section)
{
	for (int i = 0; config_sections_read[i] != NULL; i++) {
		const char *s = config_sections_read[i];
		size_t n = strlen(s);

		if (s[n - 1] == '.'
		        ? strncasecmp(section, s, n) == 0 && section[n] != '\0'
		        : strcasecmp(section, s) == 0)
			return 1;
	}
	return 0;
}

struct config_unread {
	const char *file;
	char last[CONFIG_INI_SECTION_KEPT + 1]; /* the section last seen */
	int n;
};

static int
config_unread_handler(
    void *user, const char *section, const char *name, const char *value)
{
	struct config_unread *u = user;

	(void)name;
	(void)value;
	if (strcmp(u->last, section) == 0)
		return 1;
	snprintf(u->last, sizeof(u->last), "%s", section);
	if (!config_section_read(section)) {
		fprintf(stderr,
		    "%s: warning: [%s] is read by no service (a misspelled "
		    "name?): its keys do nothing. Sections read:",
		    u->file, section);
		for (int i = 0; config_sections_read[i] != NULL; i++) {
			const char *s = config_sections_read[i];

			fprintf(stderr, " [%s%s]", s,
			    s[strlen(s) - 1] == '.' ? "NAME" : "");
		}
		fputc('\n', stderr);
		u->n++;
	}
	return 1;
}

int
config_unread_sections(const char *file)
{
	struct config_unread u = {file, "", 0};

	return ini_parse(file, config_unread_handler, &u) < 0 ? -1 : u.n;
}

static void
config_problem(
    struct config_load *cl, const char *key, const char *fmt, const char *arg)
{
	fprintf(stderr, "%s: [%s] %s: ", cl->source, cl->section, key);
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
	cl->errors++;
}

char *
config_resolve_path(const char *basedir, const char *path)
{
	char *out;
	size_t len;

	if (path[0] == '/' || path[0] == '\0' || basedir == NULL)
		return strdup(path);
	len = strlen(basedir) + 1 + strlen(path) + 1;
	if ((out = malloc(len)) == NULL)
		return NULL;
	snprintf(out, len, "%s/%s", basedir, path);
	return out;
}

/* ipc:// endpoints with relative paths are made absolute; others kept. */
static char *
config_resolve_endpoints(const char *basedir, const char *value)
{
	char *copy = strdup(value), *tok, *save = NULL, *out = NULL;
	size_t used = 0, cap, count = 0;

	/* Each endpoint may gain the directory and a '/': as many as there
	 * are (it was room for 8, and a 9th failed as "out of memory"). */
	for (const char *p = value; *(p += strspn(p, " \t,")) != '\0';
	     p += strcspn(p, " \t,"))
		count++;
	cap =
	    strlen(value) + count * ((basedir ? strlen(basedir) : 0) + 2) + 16;
	if (copy == NULL || (out = calloc(1, cap)) == NULL)
		goto fail;
	for (tok = strtok_r(copy, " \t,", &save); tok != NULL;
	     tok = strtok_r(NULL, " \t,", &save)) {
		int n;

		if (strncmp(tok, "ipc://", 6) == 0 && tok[6] != '/' &&
		    basedir != NULL)
			n = snprintf(out + used, cap - used, "%sipc://%s/%s",
			    used ? " " : "", basedir, tok + 6);
		else
			n = snprintf(out + used, cap - used, "%s%s",
			    used ? " " : "", tok);
		if (n < 0 || (size_t)n >= cap - used)
			goto fail;
		used += n;
	}
	free(copy);
	return out;
fail:
	free(copy);
	free(out);
	return NULL;
}

static int
config_set(
    struct config_load *cl, const struct config_key *k, const char *value)
{
	char *field = (char *)cl->settings + k->offset;
	char *end, *s = NULL;
	long n;

	switch (k->type) {
	case CONFIG_STRING:
		s = strdup(value);
		break;
	case CONFIG_PATH:
		s = config_resolve_path(cl->basedir, value);
		break;
	case CONFIG_ENDPOINT:
		if (value[0] == '\0') {
			config_problem(
			    cl, k->name, "%san endpoint is required", "");
			return -1;
		}
		s = config_resolve_endpoints(cl->basedir, value);
		break;
	case CONFIG_INT:
		errno = 0;
		n = strtol(value, &end, 10);
		if (errno != 0 || end == value || *end != '\0') {
			config_problem(
			    cl, k->name, "'%s' is not a number", value);
			return -1;
		}
		if (n < k->min || n > k->max) {
			char range[96];

			snprintf(range, sizeof(range),
			    "%ld is outside %ld..%ld", n, k->min, k->max);
			config_problem(cl, k->name, "%s", range);
			return -1;
		}
		*(long *)field = n;
		return 0;
	case CONFIG_BOOL:
		if (strcmp(value, "1") == 0 || strcasecmp(value, "yes") == 0 ||
		    strcasecmp(value, "true") == 0)
			*(int *)field = 1;
		else if (strcmp(value, "0") == 0 ||
		    strcasecmp(value, "no") == 0 ||
		    strcasecmp(value, "false") == 0)
			*(int *)field = 0;
		else {
			config_problem(
			    cl, k->name, "'%s' is not 0 or 1", value);
			return -1;
		}
		return 0;
	}
	if (s == NULL) {
		config_problem(cl, k->name, "%sout of memory", "");
		return -1;
	}
	free(*(char **)field);
	*(char **)field = s;
	return 0;
}

static int
config_ini_handler(
    void *user, const char *section, const char *name, const char *value)
{
	struct config_load *cl = user;
	size_t i;

	if (config_section_cut(cl->source, section, &cl->cut_reported)) {
		cl->errors++;
		return 1;
	}
	if (strcasecmp(section, cl->section) != 0)
		return 1;
	cl->keys++;
	for (i = 0; cl->table[i].name != NULL; i++)
		if (strcasecmp(cl->table[i].name, name) == 0)
			break;
	if (cl->table[i].name == NULL) {
		config_problem(cl, name, "%sunknown key", "");
		return 1; /* keep going: report every problem */
	}
	if (i < sizeof(cl->seen) && cl->seen[i]) {
		config_problem(cl, name, "%sset twice", "");
		return 1;
	}
	if (i < sizeof(cl->seen))
		cl->seen[i] = 1;
	config_set(cl, &cl->table[i], value);
	return 1;
}

/*
 * libinih reads a line 199 characters at a time: the rest of a longer
 * one is read as a line of its own, which may be a section header ("[x"
 * would move every later key into [x]), a comment (the value cut without a
 * word), or a key of its own. Lines over 199 characters (line ends aside)
 * are refused before the file is parsed; the number of them.
 */
#define CONFIG_INI_LINE_KEPT 199

static int
config_long_lines(const char *path, const char *source)
{
	FILE *f = fopen(path, "r");
	size_t len = 0, lineno = 1;
	int c, found = 0;

	if (f == NULL)
		return 0; /* ini_parse says it cannot read it */
	while ((c = getc(f)) != EOF) {
		if (c == '\n') {
			lineno++;
			len = 0;
			continue;
		}
		if (c != '\r' && ++len == CONFIG_INI_LINE_KEPT + 1) {
			fprintf(stderr,
			    "%s: line %zu is over %d characters, where the "
			    "INI reader cuts lines and reads the rest as a "
			    "line of its own: shorten it (a relative path, a "
			    "shorter name)\n",
			    source, lineno, CONFIG_INI_LINE_KEPT);
			found++;
		}
	}
	fclose(f);
	return found;
}

/* Defaults first, so that a key set in the file simply replaces them. */
static void
config_defaults(struct config_load *cl)
{
	for (size_t i = 0; cl->table[i].name != NULL; i++) {
		const struct config_key *k = &cl->table[i];

		if (k->def != NULL)
			config_set(cl, k, k->def);
	}
}

static int
config_finish(struct config_load *cl, int parse_rc)
{
	if (parse_rc > 0) {
		char line[32];

		snprintf(line, sizeof(line), "line %d", parse_rc);
		fprintf(stderr, "%s: syntax error at %s\n", cl->source, line);
		cl->errors++;
	}
	for (size_t i = 0; cl->table[i].name != NULL; i++)
		if (cl->table[i].def == NULL &&
		    (i >= sizeof(cl->seen) || !cl->seen[i]))
			config_problem(
			    cl, cl->table[i].name, "%sis required", "");
	if (cl->errors > 0) {
		config_free(cl->table, cl->settings);
		return -1;
	}
	return 0;
}

int
config_load(const char *file, const char *section,
    const struct config_key *table, void *settings)
{
	struct config_load cl = {
	    file, NULL, section, table, settings, {0}, 0, 0, 0};
	char *dir = NULL, *slash, *abs = NULL;
	int rc;

	if ((abs = config_path_absolute(file)) == NULL) {
		fprintf(stderr, "%s: %s\n", file, strerror(errno));
		return -1;
	}
	dir = strdup(abs);
	if (dir == NULL) {
		free(abs);
		return -1;
	}
	if ((slash = strrchr(dir, '/')) != NULL)
		*(slash == dir ? slash + 1 : slash) = '\0';
	cl.basedir = dir;
	config_defaults(&cl);
	cl.errors += config_long_lines(abs, file);
	rc = ini_parse(abs, config_ini_handler, &cl);
	if (rc < 0) {
		fprintf(stderr, "%s: cannot read\n", file);
		cl.errors++;
	}
	/* Every key has its default: a section named wrongly ([frontent])
	 * would start the service on defaults without a word. */
	if (rc == 0 && cl.keys == 0)
		fprintf(stderr,
		    "%s: warning: no key in [%s] (no such section, an empty "
		    "one, or a misspelled name): every setting of it is its "
		    "default\n",
		    file, section);
	rc = config_finish(&cl, rc);
	free(dir);
	free(abs);
	return rc;
}

int
config_load_string(const char *text, const char *basedir, const char *section,
    const struct config_key *table, void *settings)
{
	struct config_load cl = {
	    "(string)", basedir, section, table, settings, {0}, 0, 0, 0};

	config_defaults(&cl);
	return config_finish(
	    &cl, ini_parse_string(text, config_ini_handler, &cl));
}

int
config_load_section(const struct config_pairs *pairs, const char *section,
    const char *const *before, const struct config_key *table, void *settings)
{
	struct config_load cl = {pairs->source ? pairs->source : "(pairs)",
	    pairs->basedir, section, table, settings, {0}, 0, 0, 0};

	config_defaults(&cl);
	for (size_t i = 0; before != NULL && before[i] != NULL; i += 2)
		config_ini_handler(&cl, section, before[i], before[i + 1]);
	for (size_t i = 0; i < pairs->n; i++)
		if (strcasecmp(pairs->pair[i].section, section) == 0)
			config_ini_handler(&cl, section, pairs->pair[i].name,
			    pairs->pair[i].value);
	return config_finish(&cl, 0);
}

void
config_free(const struct config_key *table, void *settings)
{
	for (size_t i = 0; table[i].name != NULL; i++) {
		const struct config_key *k = &table[i];
		char **field = (char **)((char *)settings + k->offset);

		if (k->type == CONFIG_STRING || k->type == CONFIG_PATH ||
		    k->type == CONFIG_ENDPOINT) {
			free(*field);
			*field = NULL;
		}
	}
}

/* --- free-form sections ([challenge.paths], [validator.NAME]) ---------- */

struct config_pairs_load {
	const char *prefix; /* "validator." matches [validator.*] */
	const char *source;
	struct config_pairs *out;
	int failed;
	int cut_reported;
};

static int
config_pairs_handler(
    void *user, const char *section, const char *name, const char *value)
{
	struct config_pairs_load *pl = user;
	struct config_pairs *p = pl->out;
	size_t plen = strlen(pl->prefix);
	struct config_pair *grown;

	if (config_section_cut(pl->source, section, &pl->cut_reported)) {
		pl->failed = 1;
		return 1;
	}
	if (strncasecmp(section, pl->prefix, plen) != 0)
		return 1;
	/* "prefix" alone, or "prefix.": a bare [validator.] is no name. */
	if (pl->prefix[plen - 1] == '.' && section[plen] == '\0')
		return 1;
	if (pl->prefix[plen - 1] != '.' && section[plen] != '\0')
		return 1;
	/* The first would win unseen (config_pairs_get), as a main
	 * section's would not. */
	for (size_t i = 0; i < p->n; i++)
		if (strcasecmp(p->pair[i].section, section) == 0 &&
		    (strcasecmp(p->pair[i].name, name) == 0 ||
		        /* paths, as the challenge service matches them */
		        (strcasecmp(section, CONFIG_SECTION_PATHS) == 0 &&
		            config_path_equal(p->pair[i].name, name, 1)))) {
			fprintf(stderr, "%s: [%s] %s: set twice%s%s\n",
			    pl->source, section, name,
			    strcmp(p->pair[i].name, name) != 0 ? ", as " : "",
			    strcmp(p->pair[i].name, name) != 0 ? p->pair[i].name
			                                       : "");
			pl->failed = 1;
			return 1;
		}
	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 8;

		if ((grown = realloc(p->pair, cap * sizeof(*grown))) == NULL) {
			pl->failed = 1;
			return 0;
		}
		p->pair = grown;
		p->cap = cap;
	}
	p->pair[p->n].section = strdup(section);
	p->pair[p->n].name = strdup(name);
	p->pair[p->n].value = strdup(value);
	if (p->pair[p->n].section == NULL || p->pair[p->n].name == NULL ||
	    p->pair[p->n].value == NULL) {
		p->n++;
		pl->failed = 1;
		return 0;
	}
	p->n++;
	return 1;
}

int
config_load_pairs(
    const char *file, const char *prefix, struct config_pairs *out)
{
	struct config_pairs_load pl = {prefix, file, out, 0, 0};
	char *abs, *slash;
	int rc;

	memset(out, 0, sizeof(*out));
	if ((abs = config_path_absolute(file)) == NULL) {
		fprintf(stderr, "%s: %s\n", file, strerror(errno));
		return -1;
	}
	rc = ini_parse(abs, config_pairs_handler, &pl);
	if (rc != 0 || pl.failed) {
		fprintf(
		    stderr, "%s: cannot read [%s...] sections\n", file, prefix);
		free(abs);
		config_pairs_free(out);
		return -1;
	}
	if ((out->source = strdup(file)) == NULL) {
		free(abs);
		config_pairs_free(out);
		return -1;
	}
	if ((slash = strrchr(abs, '/')) != NULL)
		*(slash == abs ? slash + 1 : slash) = '\0';
	out->basedir = abs;
	return 0;
}

const char *
config_pairs_get(
    const struct config_pairs *p, const char *section, const char *name)
{
	for (size_t i = 0; i < p->n; i++)
		if (strcasecmp(p->pair[i].section, section) == 0 &&
		    strcasecmp(p->pair[i].name, name) == 0)
			return p->pair[i].value;
	return NULL;
}

void
config_pairs_free(struct config_pairs *p)
{
	for (size_t i = 0; i < p->n; i++) {
		free(p->pair[i].section);
		free(p->pair[i].name);
		free(p->pair[i].value);
	}
	free(p->pair);
	free(p->basedir);
	free(p->source);
	memset(p, 0, sizeof(*p));
}

char *
config_path_absolute(const char *file)
{
	char *copy = strdup(file), *dir, *base, *out = NULL;
	size_t len;

	if (copy == NULL)
		return NULL;
	base = strrchr(copy, '/');
	if (base == NULL) {
		dir = realpath(".", NULL);
		base = copy;
	} else {
		*base++ = '\0';
		dir = realpath(copy[0] != '\0' ? copy : "/", NULL);
	}
	if (dir != NULL && base[0] != '\0') {
		len = strlen(dir) + strlen(base) + 2;
		if ((out = malloc(len)) != NULL)
			snprintf(out, len, "%s%s%s", dir,
			    strcmp(dir, "/") == 0 ? "" : "/", base);
	} else if (dir != NULL)
		errno = EISDIR;
	if (out != NULL && access(out, F_OK) != 0) {
		int e = errno;

		free(out);
		out = NULL;
		errno = e;
	}
	free(dir);
	free(copy);
	return out;
}

int
config_path_equal(const char *a, const char *b, int slash)
{
	size_t la = strlen(a), lb = strlen(b);

	if (slash && la > 1 && a[la - 1] == '/')
		la--;
	if (slash && lb > 1 && b[lb - 1] == '/')
		lb--;
	return la == lb && strncasecmp(a, b, la) == 0;
}
