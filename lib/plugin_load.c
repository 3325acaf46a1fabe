/*
 * Loading plugins (lib/plugin.h): where Module = NAME is found, opening the
 * shared object, and the checks every kind shares: the ABI version read
 * before anything else, and no configuration key the plugin does not read.
 */
#include <dlfcn.h>
#include <limits.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "log.h"
#include "plugin.h"
#include "plugin_load.h"
#include "rpc.h"

char *
plugin_module_path(
    const char *module, const char *plugin_dir, const char *basedir)
{
	char dir[PATH_MAX], *slash, *out;
	ssize_t n;
	size_t len;

	if (strchr(module, '/') != NULL)
		return config_resolve_path(basedir, module);
	if (plugin_dir != NULL && plugin_dir[0] != '\0')
		snprintf(dir, sizeof(dir), "%s", plugin_dir);
	else {
		/* Where `cmake --install` puts them, PREFIX/lib/scepd/plugins
		 * for programs in PREFIX/bin; else beside the executable (the
		 * build tree). */
		if ((n = readlink("/proc/self/exe", dir, sizeof(dir) - 1)) <=
		    0) {
			/* Callers say no more than that they failed. */
			fprintf(stderr,
			    "plugin %s: where the plugins are cannot be told "
			    "(/proc/self/exe: %s): set PluginDir\n",
			    module, strerror(errno));
			return NULL;
		}
		dir[n] = '\0';
		if ((slash = strrchr(dir, '/')) != NULL)
			*slash = '\0';
		len = strlen(dir);
		if (len >= 4 && strcmp(dir + len - 4, "/bin") == 0)
			snprintf(dir + len - 4, sizeof(dir) - (len - 4),
			    "/lib/scepd/plugins");
		else
			strncat(dir, "/plugins", sizeof(dir) - len - 1);
	}
	len = strlen(dir) + strlen(module) + 16;
	if ((out = malloc(len)) != NULL)
		snprintf(out, len, "%s/scepd-%s.so", dir, module);
	return out;
}

const void *
plugin_open(
    const char *path, const char *symbol, void **dl, char *err, size_t errlen)
{
	const unsigned *abi;

	if ((*dl = dlopen(path, RTLD_NOW | RTLD_LOCAL)) == NULL) {
		snprintf(err, errlen, "%s", dlerror());
		return NULL;
	}
	/* Every table starts with its ABI version (lib/plugin.h). */
	if ((abi = dlsym(*dl, symbol)) == NULL)
		snprintf(err, errlen, "%s exports no %s", path, symbol);
	else if (*abi != SCEPD_PLUGIN_ABI_VERSION) {
		snprintf(err, errlen,
		    "%s: plugin ABI version %u, this server speaks %d "
		    "(rebuild the plugin against this scepd's lib/plugin.h)",
		    path, *abi, SCEPD_PLUGIN_ABI_VERSION);
		abi = NULL;
	}
	if (abi == NULL) {
		dlclose(*dl);
		*dl = NULL;
	}
	return abi;
}

int
plugin_check_keys(const struct config_pairs *pairs, const char *section,
    const char *const *keys, const char *service, const char *plugin)
{
	int errors = 0;

	for (size_t i = 0; i < pairs->n; i++) {
		const struct config_pair *p = &pairs->pair[i];
		int known = strcasecmp(p->name, "Module") == 0;

		if (strcasecmp(p->section, section) != 0)
			continue;
		for (size_t k = 0; !known && keys[k] != NULL; k++)
			known = strcasecmp(p->name, keys[k]) == 0;
		if (!known) {
			fprintf(stderr,
			    "%s: [%s] %s: unknown key (the %s plugin does not "
			    "read it)\n",
			    service, section, p->name, plugin);
			errors++;
		}
	}
	return errors == 0 ? 0 : -1;
}

int
plugin_instance_name_ok(const char *name)
{
	return name[0] != '\0' &&
	    name[strspn(name,
	        "abcdefghijklmnopqrstuvwxyz"
	        "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")] == '\0';
}

void
plugin_log_v(const char *prefix, const char *instance, int level,
    const char *fmt, va_list ap)
{
	char line[1024];

	vsnprintf(line, sizeof(line), fmt, ap);
	/* The ABI counts up from DEBUG; lib/log.h counts up from ERROR. */
	if (level < SCEPD_PLUGIN_LOG_DEBUG || level > SCEPD_PLUGIN_LOG_ERROR)
		level = SCEPD_PLUGIN_LOG_INFO;
	log_event((enum log_level)(SCEPD_PLUGIN_LOG_ERROR - level), NULL, 0,
	    "%s%s: %s", prefix, instance, line);
}

/* Per thread: the hosts call plugins from several workers at once. */
static _Thread_local int64_t plugin_deadline_ms;

void
plugin_call_deadline(int64_t deadline_ms)
{
	plugin_deadline_ms = deadline_ms;
}

long long
plugin_time_left_ms(const struct scepd_plugin_host *host)
{
	(void)host;
	return plugin_deadline_ms > 0 ? plugin_deadline_ms - rpc_now_ms()
	                              : LLONG_MAX;
}
