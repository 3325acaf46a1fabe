/*
 * A plugin built against another ABI version: the host must refuse it at
 * start, with a clear message, before calling anything in it.
 */
#include "plugin.h"

static int
wrong_init(const struct scepd_plugin_host *host, void **state, char *err,
    size_t errlen)
{
	(void)host;
	(void)state;
	(void)err;
	(void)errlen;
	__builtin_trap(); /* never called */
}

static const char *const wrong_keys[] = {NULL};

const struct scepd_issuance_policy scepd_issuance_policy_v1 = {
    99, /* no version this host speaks */
    "wrong-abi",
    wrong_keys,
    wrong_init,
    NULL,
    NULL,
};
