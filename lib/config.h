/*
 * Configuration: one INI file (libinih), one section per service. Each
 * service describes its section as a table (name, type, bounds, default,
 * field), redis-style; NDES names are used where NDES has one.
 * Unknown keys and bad values are errors; every problem is printed before
 * config_load() fails. Relative paths and ipc:// endpoints are resolved
 * against the directory of the configuration file.
 */
#ifndef SCEPD_CONFIG_H
#define SCEPD_CONFIG_H

#include <stddef.h>

enum config_type {
	CONFIG_STRING, /* char *, malloc'ed */
	CONFIG_PATH, /* char *, made absolute; "" allowed when default is "" */
	CONFIG_ENDPOINT, /* char *, ZeroMQ endpoints, space separated */
	CONFIG_INT, /* long, within [min, max] */
	CONFIG_BOOL, /* int, 0 or 1 */
};

struct config_key {
	const char *name;
	enum config_type type;
	long min, max; /* CONFIG_INT only */
	const char *def; /* default as written in the file; NULL: required */
	size_t offset; /* of the field in the service's settings struct */
	const char *help; /* one line, for the example configuration */
};

#define CONFIG_END \
	{ \
		NULL, 0, 0, 0, NULL, 0, NULL \
	}

/*
 * Fills `settings` from [section] of `file` using `table`. Returns 0, or -1
 * after printing every problem to stderr as "FILE: [section] Key: reason".
 * The caller frees the strings with config_free().
 */
int config_load(const char *file, const char *section,
    const struct config_key *table, void *settings);
/* Same, from a string (tests, fuzzing); `basedir` resolves relative paths. */
int config_load_string(const char *text, const char *basedir,
    const char *section, const struct config_key *table, void *settings);
void config_free(const struct config_key *table, void *settings);
/* Sections read as [PREFIX.NAME] (a prefix ends in '.') or as a map. */
#define CONFIG_SECTION_TEMPLATE "template."
#define CONFIG_SECTION_POLICY "policy."
#define CONFIG_SECTION_VALIDATOR "validator."
#define CONFIG_SECTION_SIGNER "signer."
#define CONFIG_SECTION_PATHS "challenge.paths"
/*
 * Warns on stderr of each section of `file` holding keys that no service
 * reads (a misspelled [chalenge.paths] or [templates.X] would leave its
 * service on what it had without a word); the number of such sections,
 * or -1 when the file cannot be read.
 */
int config_unread_sections(const char *file);

/*
 * Free-form sections whose keys are not known in advance: a plugin's own
 * section, or a map such as [challenge.paths]. `prefix` ending in '.'
 * matches every [prefix.NAME]; otherwise exactly [prefix]. Keys keep the
 * file's order. 0, or -1 with the reason on stderr.
 */
struct config_pair {
	char *section, *name, *value;
};
struct config_pairs {
	struct config_pair *pair;
	size_t n, cap;
	char *basedir; /* the configuration file's directory */
	char *source; /* the file as named, for messages */
};
int config_load_pairs(
    const char *file, const char *prefix, struct config_pairs *out);
/* The value of `name` in `section`, or NULL. */
const char *config_pairs_get(
    const struct config_pairs *p, const char *section, const char *name);
void config_pairs_free(struct config_pairs *p);
/*
 * As config_load, from [section]'s pairs (config_load_pairs): a section
 * whose name is known only once the file is read ([template.NAME]).
 * `before`, NULL or name, value, ..., NULL: set first, as defaults of the
 * caller's own that the pairs may not set again. Problems name the file.
 */
int config_load_section(const struct config_pairs *pairs, const char *section,
    const char *const *before, const struct config_key *table, void *settings);

/* [frontend] Paths when unset; the challenge service checks the keys of
 * [challenge.paths] against the frontend's Paths. */
#define CONFIG_DEFAULT_SCEP_PATHS \
	"/certsrv/mscep/mscep.dll /scep /cgi-bin/pkiclient.exe"

/* Whether two URL paths are one, case aside as IIS (and NDES) has it, and
 * with `slash` one trailing '/' aside. */
int config_path_equal(const char *a, const char *b, int slash);

/* `file` as an absolute path through its directory, the file itself not
 * followed: a configuration that is a symbolic link (to a checkout, a
 * Kubernetes ConfigMap's ..data/) has its relative paths beside the link,
 * as README says. Allocated; NULL with errno when it does not exist. */
char *config_path_absolute(const char *file);

/* Resolves `path` against `basedir` unless absolute. Caller frees. */
char *config_resolve_path(const char *basedir, const char *path);

#endif
