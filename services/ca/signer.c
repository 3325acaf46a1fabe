/*
 * CA signers: where the CA key lives. `file` ([ca] Key, the default) is
 * built in (main.c); any other [ca] Signer = NAME is a [signer.NAME]
 * section whose Module is a plugin (lib/plugin.h, struct scepd_ca_signer)
 * handing over an EVP_PKEY whose private operations happen elsewhere: a
 * PKCS#11 token with the `pkcs11` plugin. Loaded like the issuance
 * policies (policy.c), before the sandbox.
 */
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ca.h"
#include "log.h"
#include "plugin_load.h"

#define SIGNER_SECTION "signer."

static struct ca_signer *
signer_of(const struct scepd_plugin_host *host)
{
	return (struct ca_signer *)((char *)host -
	    offsetof(struct ca_signer, host));
}

static const char *
signer_config_get(const struct scepd_plugin_host *host, const char *key)
{
	struct ca_signer *s = signer_of(host);
	char section[128];

	snprintf(section, sizeof(section), SIGNER_SECTION "%s", s->name);
	return config_pairs_get(s->config, section, key);
}

static void
signer_log(
    const struct scepd_plugin_host *host, int level, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (level < SCEPD_PLUGIN_LOG_DEBUG || level > SCEPD_PLUGIN_LOG_ERROR)
		level = SCEPD_PLUGIN_LOG_INFO;
	log_event((enum log_level)(SCEPD_PLUGIN_LOG_ERROR - level), NULL, 0,
	    "signer %s: %s", host->instance, line);
}

/* The plugin's keys and the host's own (SandboxReadPaths). */
static int
signer_check_keys(const struct ca_signer *s, const char *section)
{
	const char *keys[64];
	size_t n = 0;

	for (; s->p->keys[n] != NULL && n < 62; n++)
		keys[n] = s->p->keys[n];
	keys[n++] = "SandboxReadPaths";
	keys[n] = NULL;
	return plugin_check_keys(
	    s->config, section, keys, "scepd-ca", s->p->name);
}

/* SandboxReadPaths = absolute paths, space separated. */
static int
signer_read_paths(struct ca_signer *s, const char *section)
{
	const char *v =
	    config_pairs_get(s->config, section, "SandboxReadPaths");
	char *save = NULL, *tok, *copy;
	size_t used = 0;

	if (v == NULL || v[0] == '\0')
		return 0;
	if ((copy = strdup(v)) == NULL ||
	    (s->read_paths = calloc(1, strlen(v) + 2)) == NULL) {
		free(copy);
		return -1;
	}
	for (tok = strtok_r(copy, " \t,", &save); tok != NULL;
	     tok = strtok_r(NULL, " \t,", &save)) {
		if (tok[0] != '/') {
			fprintf(stderr,
			    "scepd-ca: [%s] SandboxReadPaths: %s: give "
			    "absolute paths\n",
			    section, tok);
			free(copy);
			return -1;
		}
		memcpy(s->read_paths + used, tok, strlen(tok) + 1);
		used += strlen(tok) + 1;
	}
	s->read_paths_len = used;
	free(copy);
	return 0;
}

int
ca_signer_load(struct ca *ca, const char *config_file)
{
	struct ca_signer *s = &ca->signer;
	const char *name = ca->settings.signer, *module;
	char section[128], err[512] = "", *path;
	EVP_PKEY *key;

	memset(s, 0, sizeof(*s));
	if (!plugin_instance_name_ok(name)) {
		fprintf(stderr,
		    "scepd-ca: [ca] Signer: '%s': file, or the name of a "
		    "[signer.NAME] section (letters, digits, '-' and '_')\n",
		    name);
		return -1;
	}
	snprintf(section, sizeof(section), SIGNER_SECTION "%s", name);
	if ((s->name = strdup(name)) == NULL ||
	    (s->config = calloc(1, sizeof(*s->config))) == NULL ||
	    config_load_pairs(config_file, SIGNER_SECTION, s->config) != 0)
		return -1;
	module = config_pairs_get(s->config, section, "Module");
	if (module == NULL || module[0] == '\0') {
		fprintf(stderr,
		    "scepd-ca: [%s] Module: is required ([ca] Signer = %s)\n",
		    section, name);
		return -1;
	}
	path = plugin_module_path(
	    module, ca->settings.plugin_dir, s->config->basedir);
	if (path == NULL)
		return -1;
	s->p =
	    plugin_open(path, SCEPD_CA_SIGNER_SYMBOL, &s->dl, err, sizeof(err));
	free(path);
	if (s->p == NULL) {
		fprintf(stderr, "scepd-ca: [%s] Module = %s: %s\n", section,
		    module, err);
		return -1;
	}
	if (s->p->name == NULL || s->p->keys == NULL || s->p->init == NULL ||
	    s->p->key == NULL || s->p->destroy == NULL) {
		fprintf(stderr,
		    "scepd-ca: [%s] Module = %s: incomplete table\n", section,
		    module);
		s->p = NULL;
		return -1;
	}
	if (signer_check_keys(s, section) != 0 ||
	    signer_read_paths(s, section) != 0) {
		s->p = NULL;
		return -1;
	}
	s->host.abi_version = SCEPD_PLUGIN_ABI_VERSION;
	s->host.instance = s->name;
	s->host.config_get = signer_config_get;
	s->host.log = signer_log;
	if (s->p->init(&s->host, &s->state, err, sizeof(err)) != 0) {
		fprintf(stderr, "scepd-ca: [%s] %s\n", section, err);
		s->p = NULL; /* no destroy for what did not start */
		return -1;
	}
	if ((key = s->p->key(s->state)) == NULL || EVP_PKEY_up_ref(key) != 1) {
		fprintf(stderr, "scepd-ca: [%s] the %s plugin gave no key\n",
		    section, s->p->name);
		return -1;
	}
	ca->key = key;
	log_info("CA key: signer %s (%s): private key operations happen "
	         "there, [ca] Key is not read",
	    name, s->p->name);
	return 0;
}

void
ca_signer_free(struct ca *ca)
{
	struct ca_signer *s = &ca->signer;

	if (s->p != NULL)
		s->p->destroy(s->state);
	if (s->dl != NULL)
		dlclose(s->dl);
	if (s->config != NULL) {
		config_pairs_free(s->config);
		free(s->config);
	}
	free(s->name);
	free(s->read_paths);
	memset(s, 0, sizeof(*s));
}
