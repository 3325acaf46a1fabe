/*
 * The host side of signer plugins (lib/plugin.h, struct scepd_ca_signer):
 * a [signer.NAME] section whose Module keeps a private key elsewhere (an
 * HSM through the `pkcs11` plugin). The CA's key and the RA's two keys
 * may each come from one.
 */
#ifndef SCEPD_SIGNER_LOAD_H
#define SCEPD_SIGNER_LOAD_H

#include <stddef.h>

#include <openssl/evp.h>

#include "config.h"
#include "plugin.h"
#include "sandbox.h"

struct signer {
	char *name; /* NAME of [signer.NAME] */
	const char *who; /* the program, for messages */
	const struct scepd_ca_signer *p; /* NULL: none loaded */
	void *state;
	void *dl;
	struct scepd_plugin_host host;
	struct config_pairs *config; /* [signer.*] of the file */
	/* [signer.NAME] SandboxReadPaths: what the token's module reads
	 * after start (SoftHSM2's token directory), NUL-separated. */
	char *read_paths;
	size_t read_paths_len;
};

/*
 * Loads [signer.NAME] of config_file and starts its plugin (PLUGIN_DIR as
 * plugin_module_path takes it). *key gets a reference of the caller's own
 * to the plugin's key, tried once for `use`. `setting` names what chose
 * the signer ("[ca] Signer") in messages. 0, or -1 with the reason on
 * stderr; signer_free in either case.
 */
enum signer_use { SIGNER_SIGNS, SIGNER_DECRYPTS };
int signer_load(struct signer *s, const char *name, const char *config_file,
    const char *plugin_dir, const char *who, const char *setting,
    enum signer_use use, EVP_PKEY **key);
/*
 * A service whose signer plugin failed to start (a token's login or key
 * refused: a wrong PIN, say) exits with this status, which the launcher
 * (and the systemd units' RestartPreventExitStatus) never restarts: each
 * start tries the PIN again, and tokens lock it after a few tries.
 */
#define SIGNER_EXIT_NO_RESTART 78 /* sysexits' EX_CONFIG */
/* The status a service that failed at start exits with: 1, or
 * SIGNER_EXIT_NO_RESTART after a signer plugin's init failed. */
int signer_exit_status(void);
/* After the caller's last use of the key: the plugin may close its token. */
void signer_free(struct signer *s);
/*
 * The signer's SandboxReadPaths into the service's Landlock policy, read-
 * only, and what was allowed logged. Returns how many paths were added
 * (then the service allows sandbox_syscalls_token_files too), or -1.
 */
int signer_sandbox_allow(const struct signer *s, struct sandbox_policy *p);

#endif
