/*
 * Signers: where a private key lives when it is not a file. A [signer.NAME]
 * section's Module is a plugin (lib/plugin.h, struct scepd_ca_signer)
 * handing over an EVP_PKEY whose private operations happen elsewhere: a
 * PKCS#11 token with the `pkcs11` plugin. The CA loads one for its key
 * ([ca] Signer), the RA one for each of its keys ([ra] SigningSigner,
 * EncryptionSigner); both before their sandbox.
 */
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/rsa.h>

#include "log.h"
#include "plugin_load.h"
#include "signer_load.h"

static struct signer *
signer_of(const struct scepd_plugin_host *host)
{
	return (struct signer *)((char *)host - offsetof(struct signer, host));
}

static const char *
signer_config_get(const struct scepd_plugin_host *host, const char *key)
{
	struct signer *s = signer_of(host);
	char section[128];

	snprintf(section, sizeof(section), CONFIG_SECTION_SIGNER "%s", s->name);
	return config_pairs_get(s->config, section, key);
}

static void
signer_log(
    const struct scepd_plugin_host *host, int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	plugin_log_v("signer ", host->instance, level, fmt, ap);
	va_end(ap);
}

/* The plugin's keys and the host's own (SandboxReadPaths). */
static int
signer_check_keys(const struct signer *s, const char *section)
{
	const char *keys[64];
	size_t n = 0;

	for (; s->p->keys[n] != NULL && n < 62; n++)
		keys[n] = s->p->keys[n];
	keys[n++] = "SandboxReadPaths";
	keys[n] = NULL;
	return plugin_check_keys(s->config, section, keys, s->who, s->p->name);
}

/* SandboxReadPaths = absolute paths, space separated. */
static int
signer_read_paths(struct signer *s, const char *section)
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
			    "%s: [%s] SandboxReadPaths: %s: give absolute "
			    "paths\n",
			    s->who, section, tok);
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

/*
 * One private-key operation now, in the loading thread, before any worker
 * exists: the pkcs11 engine (libp11) makes its key methods lazily on
 * first use, without a lock, which two RA workers using a token key for
 * the first time at once could both do. It also proves the key does what
 * the service will ask of it before the service says it serves: a
 * signature, or for the RA's encryption key a decryption (a token may
 * hold that key with CKA_DECRYPT but not CKA_SIGN).
 */
static int
signer_warm_up(EVP_PKEY *key, enum signer_use use)
{
	static const unsigned char digest[32];
	size_t len = (size_t)EVP_PKEY_get_size(key), clear_len = len;
	unsigned char *out = len > 0 ? malloc(len) : NULL;
	unsigned char *clear = len > 0 ? malloc(len) : NULL;
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(key, NULL);
	int ok;

	if (use == SIGNER_SIGNS)
		ok = out != NULL && ctx != NULL &&
		    EVP_PKEY_sign_init(ctx) == 1 &&
		    EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) == 1 &&
		    EVP_PKEY_sign(ctx, out, &len, digest, sizeof(digest)) == 1;
	else /* as an envelope's key is wrapped: RSA, PKCS#1 v1.5 */
		ok = out != NULL && clear != NULL && ctx != NULL &&
		    EVP_PKEY_encrypt_init(ctx) == 1 &&
		    EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) == 1 &&
		    EVP_PKEY_encrypt(ctx, out, &len, digest, sizeof(digest)) ==
		        1 &&
		    EVP_PKEY_decrypt_init(ctx) == 1 &&
		    EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) == 1 &&
		    EVP_PKEY_decrypt(ctx, clear, &clear_len, out, len) == 1 &&
		    clear_len == sizeof(digest) &&
		    memcmp(clear, digest, sizeof(digest)) == 0;
	EVP_PKEY_CTX_free(ctx);
	free(out);
	free(clear);
	if (ok)
		ERR_clear_error();
	return ok ? 0 : -1;
}

/* A plugin's init failed in this process (see signer_exit_status). */
static int signer_init_failed;

int
signer_exit_status(void)
{
	return signer_init_failed ? SIGNER_EXIT_NO_RESTART : 1;
}

int
signer_load(struct signer *s, const char *name, const char *config_file,
    const char *plugin_dir, const char *who, const char *setting,
    enum signer_use use, EVP_PKEY **key)
{
	const char *module;
	char section[128], err[512] = "", *path;

	memset(s, 0, sizeof(*s));
	*key = NULL;
	s->who = who;
	if (!plugin_instance_name_ok(name)) {
		fprintf(stderr,
		    "%s: %s: '%s': file, or the name of a [signer.NAME] "
		    "section (letters, digits, '-' and '_')\n",
		    who, setting, name);
		return -1;
	}
	snprintf(section, sizeof(section), CONFIG_SECTION_SIGNER "%s", name);
	if ((s->name = strdup(name)) == NULL ||
	    (s->config = calloc(1, sizeof(*s->config))) == NULL ||
	    config_load_pairs(config_file, CONFIG_SECTION_SIGNER, s->config) !=
	        0)
		return -1;
	module = config_pairs_get(s->config, section, "Module");
	if (module == NULL || module[0] == '\0') {
		fprintf(stderr, "%s: [%s] Module: is required (%s = %s)\n", who,
		    section, setting, name);
		return -1;
	}
	path = plugin_module_path(module, plugin_dir, s->config->basedir);
	if (path == NULL)
		return -1;
	s->p =
	    plugin_open(path, SCEPD_CA_SIGNER_SYMBOL, &s->dl, err, sizeof(err));
	free(path);
	if (s->p == NULL) {
		fprintf(stderr, "%s: [%s] Module = %s: %s\n", who, section,
		    module, err);
		return -1;
	}
	if (s->p->name == NULL || s->p->keys == NULL || s->p->init == NULL ||
	    s->p->key == NULL || s->p->destroy == NULL) {
		fprintf(stderr, "%s: [%s] Module = %s: incomplete table\n", who,
		    section, module);
		s->p = NULL;
		return -1;
	}
	if (signer_check_keys(s, section) != 0 ||
	    signer_read_paths(s, section) != 0) {
		s->p = NULL;
		return -1;
	}
	s->host.abi_version = SCEPD_PLUGIN_ABI_VERSION;
	s->host.size = sizeof(s->host);
	s->host.instance = s->name;
	s->host.config_get = signer_config_get;
	s->host.log = signer_log;
	if (s->p->init(&s->host, &s->state, err, sizeof(err)) != 0) {
		fprintf(stderr,
		    "%s: [%s] %s (not restarted: another start would try "
		    "the token's PIN again)\n",
		    who, section, err);
		s->p = NULL; /* no destroy for what did not start */
		signer_init_failed = 1;
		return -1;
	}
	if ((*key = s->p->key(s->state)) == NULL ||
	    EVP_PKEY_up_ref(*key) != 1) {
		*key = NULL;
		fprintf(stderr, "%s: [%s] the %s plugin gave no key\n", who,
		    section, s->p->name);
		return -1;
	}
	if (signer_warm_up(*key, use) != 0) {
		fprintf(stderr,
		    "%s: [%s] the key of the %s plugin cannot %s: %s\n", who,
		    section, s->p->name,
		    use == SIGNER_SIGNS ? "sign" : "decrypt",
		    ERR_reason_error_string(ERR_peek_last_error())
		        ? ERR_reason_error_string(ERR_peek_last_error())
		        : "no reason given");
		return -1;
	}
	log_info("%s: signer %s (%s): private key operations happen there, "
	         "no key file is read",
	    setting, name, s->p->name);
	return 0;
}

void
signer_free(struct signer *s)
{
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

int
signer_sandbox_allow(const struct signer *s, struct sandbox_policy *p)
{
	char shown[512] = "";
	int n = 0;

	if (s->p == NULL)
		return 0;
	for (size_t off = 0; off < s->read_paths_len;
	     off += strlen(s->read_paths + off) + 1, n++) {
		if (sandbox_policy_add_path(p, s->read_paths + off,
		        SANDBOX_FS_READ | SANDBOX_FS_OWN) != 0) {
			log_error("sandbox: too many paths");
			return -1;
		}
		snprintf(shown + strlen(shown), sizeof(shown) - strlen(shown),
		    "%s%s", shown[0] ? ", " : "", s->read_paths + off);
	}
	if (n > 0)
		log_info("sandbox: signer %s: file opens stay allowed, "
		         "read-only beneath %s (Landlock) for the token's "
		         "module",
		    s->name, shown);
	else
		log_info("sandbox: signer %s: nothing more allowed (no "
		         "SandboxReadPaths): the token's module may not open "
		         "files after start",
		    s->name);
	return n;
}
