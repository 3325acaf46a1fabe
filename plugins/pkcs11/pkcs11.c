/*
 * The `pkcs11` signer: a key stays in a PKCS#11 token (an HSM, SoftHSM2
 * for tests); the CA signs, and the RA signs and decrypts, through
 * OpenSSL's PKCS#11 engine (libp11's, Debian's libengine-pkcs11-openssl).
 * Everything that touches a file happens in init, before the service
 * sandboxes itself: the engine and the token's module are loaded, a
 * session is opened and logged in, and the private key object found;
 * afterwards each operation is a C_Sign or C_Decrypt in the token.
 *
 *   [ca]
 *   Signer = hsm
 *   [signer.hsm]
 *   Module = pkcs11
 *   ModulePath = /usr/lib/softhsm/libsofthsm2.so
 *   KeyURI = pkcs11:token=scepd;object=ca;type=private
 *   PINFile = /var/lib/scepd/ca/token.pin     ; mode 0600, first line
 *
 * One process may load several sections (the RA's two keys): they share
 * OpenSSL's one pkcs11 engine, hence one ModulePath and one token login
 * (libp11 starts once, with the first section's module; a later PIN would
 * replace the first). A section asking another module or PIN is refused.
 * Paths are absolute: the plugin does not know the configuration's
 * directory. The PIN is read with read(2) and wiped once handed to the
 * engine (which keeps its own copy to log in again if the token asks).
 */
#define OPENSSL_SUPPRESS_DEPRECATED /* the ENGINE API: libp11's interface */
#include <dlfcn.h> /* dladdr, RTLD_NODELETE: the build sets _GNU_SOURCE */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/engine.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "plugin.h"

#define PKCS11_ENGINE_ID "pkcs11"

struct pkcs11_signer {
	const struct scepd_plugin_host *host;
	ENGINE *engine;
	int engine_init; /* ENGINE_init succeeded: ENGINE_finish owed */
	int counted; /* in pkcs11_engine_use.instances */
	EVP_PKEY *key;
};

/*
 * What the process's one engine was started with: the first section's
 * ModulePath (as written, and the file it names) and a SHA-256 of its PIN
 * (not the PIN). Sections load at start, one at a time; forgotten when
 * the last instance is destroyed (the engine is then finished, and the
 * next ENGINE_init starts it anew).
 */
static struct {
	int instances;
	char section[128];
	char module[PATH_MAX], module_file[PATH_MAX];
	unsigned char pin_sha256[SHA256_DIGEST_LENGTH];
} pkcs11_engine_use;

/* 0 when `module` and `pin` are the engine's (or it has none yet), or -1
 * with the reason in err. */
static int
pkcs11_engine_same(const struct scepd_plugin_host *host, const char *module,
    const char *pinfile, const char *pin, char *err, size_t errlen)
{
	unsigned char md[SHA256_DIGEST_LENGTH];
	char file[PATH_MAX];
	int rc = -1;

	if (SHA256((const unsigned char *)pin, strlen(pin), md) == NULL) {
		snprintf(err, errlen, "cannot hash the PIN (SHA-256)");
		goto out;
	}
	if (strlen(module) >= sizeof(file)) {
		snprintf(err, errlen, "ModulePath: too long");
		goto out;
	}
	/* Two spellings of one file (a symbolic link) are one module. */
	if (realpath(module, file) == NULL)
		snprintf(file, sizeof(file), "%s", module);
	if (pkcs11_engine_use.instances == 0) {
		snprintf(pkcs11_engine_use.section,
		    sizeof(pkcs11_engine_use.section), "%s", host->instance);
		snprintf(pkcs11_engine_use.module,
		    sizeof(pkcs11_engine_use.module), "%s", module);
		memcpy(pkcs11_engine_use.module_file, file, sizeof(file));
		memcpy(pkcs11_engine_use.pin_sha256, md, sizeof(md));
	} else if (strcmp(file, pkcs11_engine_use.module_file) != 0) {
		snprintf(err, errlen,
		    "ModulePath: %s: [signer.%s] of this process uses %s; the "
		    "sections one process loads share OpenSSL's one pkcs11 "
		    "engine: one ModulePath and one PIN per process",
		    module, pkcs11_engine_use.section,
		    pkcs11_engine_use.module);
		goto out;
	} else if (CRYPTO_memcmp(
	               md, pkcs11_engine_use.pin_sha256, sizeof(md)) != 0) {
		snprintf(err, errlen,
		    "PINFile: %s: not the PIN of [signer.%s] of this process; "
		    "the sections one process loads share OpenSSL's one "
		    "pkcs11 engine: one ModulePath and one PIN per process",
		    pinfile, pkcs11_engine_use.section);
		goto out;
	}
	pkcs11_engine_use.instances++;
	rc = 0;
out:
	OPENSSL_cleanse(md, sizeof(md));
	return rc;
}

/* The last OpenSSL error (the engine's reason), or `fallback`. */
static const char *
pkcs11_ssl_error(char *buf, size_t len, const char *fallback)
{
	unsigned long e, last = 0;

	while ((e = ERR_get_error()) != 0)
		last = e;
	if (last == 0)
		return fallback;
	ERR_error_string_n(last, buf, len);
	return buf;
}

/* The first line of `path` into pin (pinlen bytes): a regular file for
 * its owner alone. 0, or -1 with the reason in err. */
static int
pkcs11_read_pin(
    const char *path, char *pin, size_t pinlen, char *err, size_t errlen)
{
	struct stat st;
	ssize_t n;
	size_t got = 0;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0) {
		snprintf(err, errlen, "PINFile: %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "PINFile: %s: not a regular file", path);
		close(fd);
		return -1;
	}
	if ((st.st_mode & 077) != 0) {
		snprintf(err, errlen,
		    "PINFile: %s: mode %04o gives group or others access; it "
		    "must be for its owner only (chmod 600 %s)",
		    path, (unsigned)(st.st_mode & 07777), path);
		close(fd);
		return -1;
	}
	while (got < pinlen - 1 &&
	    (n = read(fd, pin + got, pinlen - 1 - got)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			snprintf(err, errlen, "PINFile: %s: %s", path,
			    strerror(errno));
			close(fd);
			OPENSSL_cleanse(pin, pinlen);
			return -1;
		}
		got += (size_t)n;
	}
	pin[got] = '\0';
	/* A first line longer than the buffer: cut, it would be tried
	 * against the token, counting towards its lock-out. */
	if (got == pinlen - 1 && strcspn(pin, "\r\n") == got) {
		char more;

		while ((n = read(fd, &more, 1)) < 0 && errno == EINTR)
			;
		if (n != 0 && more != '\n' && more != '\r') {
			snprintf(err, errlen,
			    "PINFile: %s: its first line is longer than %zu "
			    "bytes",
			    path, pinlen - 1);
			close(fd);
			OPENSSL_cleanse(pin, pinlen);
			return -1;
		}
	}
	close(fd);
	pin[strcspn(pin, "\r\n")] = '\0';
	if (pin[0] == '\0') {
		snprintf(
		    err, errlen, "PINFile: %s: no PIN on its first line", path);
		OPENSSL_cleanse(pin, pinlen);
		return -1;
	}
	return 0;
}

static const char *
pkcs11_required(const struct scepd_plugin_host *host, const char *key, int path,
    char *err, size_t errlen)
{
	const char *v = host->config_get(host, key);

	if (v == NULL || v[0] == '\0') {
		snprintf(err, errlen, "%s: is required", key);
		return NULL;
	}
	if (path && v[0] != '/') {
		snprintf(err, errlen, "%s: %s: give an absolute path", key, v);
		return NULL;
	}
	return v;
}

static void
pkcs11_free(struct pkcs11_signer *s)
{
	if (s == NULL)
		return;
	if (s->counted && --pkcs11_engine_use.instances == 0)
		memset(&pkcs11_engine_use, 0, sizeof(pkcs11_engine_use));
	EVP_PKEY_free(s->key);
	if (s->engine != NULL) {
		if (s->engine_init)
			ENGINE_finish(s->engine);
		ENGINE_free(s->engine);
	}
	free(s);
}

/*
 * Keeps the engine's shared object (engines-3/pkcs11.so) loaded until the
 * process ends. libp11 builds its RSA, EC and EVP_PKEY methods once, kept
 * in static variables and never freed; when the last engine reference
 * went, OpenSSL unloaded the object with those variables and the methods
 * became leaks (LeakSanitizer reported them at exit, depending on the
 * order in which keys, engines and OPENSSL_cleanup let go).
 */
static void
pkcs11_engine_pin(ENGINE *engine)
{
	ENGINE_GEN_INT_FUNC_PTR init = ENGINE_get_init_function(engine);
	Dl_info where;
	void *handle;

	if (init == NULL || dladdr((void *)init, &where) == 0 ||
	    where.dli_fname == NULL)
		return;
	handle =
	    dlopen(where.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
	if (handle != NULL)
		dlclose(handle); /* RTLD_NODELETE stays */
}

static int
pkcs11_init(const struct scepd_plugin_host *host, void **state, char *err,
    size_t errlen)
{
	struct pkcs11_signer *s;
	const char *module, *uri, *pinfile;
	char pin[256], ssl[256];
	int type, ok;

	*state = NULL;
	if ((module = pkcs11_required(host, "ModulePath", 1, err, errlen)) ==
	        NULL ||
	    (uri = pkcs11_required(host, "KeyURI", 0, err, errlen)) == NULL ||
	    (pinfile = pkcs11_required(host, "PINFile", 1, err, errlen)) ==
	        NULL)
		return -1;
	/* The URI is logged; a PIN in it would be too. Not echoed here. */
	if (strcasestr(uri, "pin-value") != NULL ||
	    strcasestr(uri, "pin-source") != NULL) {
		snprintf(err, errlen,
		    "KeyURI: holds pin-value or pin-source: the PIN belongs in "
		    "PINFile (mode 0600), not in the URI, which is logged");
		return -1;
	}
	if (strncmp(uri, "pkcs11:", 7) != 0) {
		snprintf(err, errlen,
		    "KeyURI: %s: not a pkcs11: URI (RFC 7512), e.g. "
		    "pkcs11:token=scepd;object=ca;type=private",
		    uri);
		return -1;
	}
	if (access(module, R_OK) != 0) {
		snprintf(
		    err, errlen, "ModulePath: %s: %s", module, strerror(errno));
		return -1;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	s->host = host;
	if (pkcs11_read_pin(pinfile, pin, sizeof(pin), err, errlen) != 0) {
		pkcs11_free(s);
		return -1;
	}
	if (pkcs11_engine_same(host, module, pinfile, pin, err, errlen) != 0) {
		OPENSSL_cleanse(pin, sizeof(pin));
		pkcs11_free(s);
		return -1;
	}
	s->counted = 1;
	ERR_clear_error();
	if ((s->engine = ENGINE_by_id(PKCS11_ENGINE_ID)) == NULL) {
		OPENSSL_cleanse(pin, sizeof(pin));
		snprintf(err, errlen,
		    "OpenSSL has no \"pkcs11\" engine (install "
		    "libengine-pkcs11-openssl): %s",
		    pkcs11_ssl_error(ssl, sizeof(ssl), "not found"));
		pkcs11_free(s);
		return -1;
	}
	pkcs11_engine_pin(s->engine);
	ok = ENGINE_ctrl_cmd_string(s->engine, "MODULE_PATH", module, 0) == 1 &&
	    ENGINE_ctrl_cmd_string(s->engine, "PIN", pin, 0) == 1;
	OPENSSL_cleanse(pin, sizeof(pin));
	if (!ok) {
		snprintf(err, errlen,
		    "the pkcs11 engine refused its settings: %s",
		    pkcs11_ssl_error(ssl, sizeof(ssl), "unknown error"));
		pkcs11_free(s);
		return -1;
	}
	if (ENGINE_init(s->engine) != 1) {
		snprintf(err, errlen, "ModulePath: %s: cannot start it: %s",
		    module,
		    pkcs11_ssl_error(ssl, sizeof(ssl), "unknown error"));
		pkcs11_free(s);
		return -1;
	}
	s->engine_init = 1;
	/* Logs in (the PIN above) and finds the object: the session stays. */
	if ((s->key = ENGINE_load_private_key(s->engine, uri, NULL, NULL)) ==
	    NULL) {
		snprintf(err, errlen,
		    "KeyURI: %s: no private key could be used (wrong PIN in "
		    "%s, no such token or object?): %s",
		    uri, pinfile,
		    pkcs11_ssl_error(ssl, sizeof(ssl), "no reason given"));
		pkcs11_free(s);
		return -1;
	}
	type = EVP_PKEY_get_base_id(s->key);
	host->log(host, SCEPD_PLUGIN_LOG_INFO,
	    "key %s (%s %d bits) is in the token of %s: its private "
	    "operations happen there, logged in at start",
	    uri,
	    type == EVP_PKEY_RSA      ? "RSA"
	        : type == EVP_PKEY_EC ? "EC"
	                              : "other",
	    EVP_PKEY_get_bits(s->key), module);
	ERR_clear_error();
	*state = s;
	return 0;
}

static struct evp_pkey_st *
pkcs11_key(void *state)
{
	return ((struct pkcs11_signer *)state)->key;
}

static void
pkcs11_destroy(void *state)
{
	pkcs11_free(state);
}

static const char *const pkcs11_keys[] = {
    "ModulePath", "KeyURI", "PINFile", NULL};

__attribute__((visibility("default")))
const struct scepd_ca_signer scepd_ca_signer_v1 = {
    .abi_version = SCEPD_PLUGIN_ABI_VERSION,
    .name = "pkcs11",
    .keys = pkcs11_keys,
    .init = pkcs11_init,
    .key = pkcs11_key,
    .destroy = pkcs11_destroy,
};
