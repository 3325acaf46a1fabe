/*
 * The host side of lib/plugin.h: finding, opening and checking plugins.
 * Kinds differ in their table; these steps are the same for all.
 */
#ifndef SCEPD_PLUGIN_LOAD_H
#define SCEPD_PLUGIN_LOAD_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "plugin.h"

/* Module = NAME -> PLUGIN_DIR/scepd-NAME.so (PLUGIN_DIR "" means
 * "plugins" beside the executable); a value with '/' is a path, relative
 * to `basedir`. Caller frees; NULL when out of memory. */
char *plugin_module_path(
    const char *module, const char *plugin_dir, const char *basedir);
/* dlopen()s `path` and returns its table `symbol` once its ABI version
 * (the table's first field) is this host's; else NULL, *dl NULL and the
 * reason in err. */
const void *plugin_open(
    const char *path, const char *symbol, void **dl, char *err, size_t errlen);
/* Every key of [section] is Module or one of `keys`; each other one is
 * printed as "SERVICE: [section] Key: unknown key". 0 or -1. */
int plugin_check_keys(const struct config_pairs *pairs, const char *section,
    const char *const *keys, const char *service, const char *plugin);
/* A plugin's host->log: one line "PREFIXINSTANCE: text" at the ABI's
 * level (SCEPD_PLUGIN_LOG_*; anything else is INFO). */
void plugin_log_v(const char *prefix, const char *instance, int level,
    const char *fmt, va_list ap);
/* The deadline (wall clock, rpc_now_ms) of the call into a plugin this
 * thread is about to make, 0 for none, which plugin_time_left_ms (the
 * hosts' time_left_ms) tells the plugin. */
void plugin_call_deadline(int64_t deadline_ms);
long long plugin_time_left_ms(const struct scepd_plugin_host *host);
/* Letters, digits, '-' and '_': a name that is safe in logs and labels. */
int plugin_instance_name_ok(const char *name);

#endif
