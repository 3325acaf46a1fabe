/* The configuration loader on arbitrary text, with a table of every type. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

struct fuzz_settings {
	char *s, *p, *e;
	long n;
	int b;
};

#define F(x) offsetof(struct fuzz_settings, x)
static const struct config_key table[] = {
    {"Listen", CONFIG_ENDPOINT, 0, 0, "ipc://run/x.sock", F(e), NULL},
    {"Database", CONFIG_PATH, 0, 0, "db", F(p), NULL},
    {"Name", CONFIG_STRING, 0, 0, NULL, F(s), NULL},
    {"PasswordMax", CONFIG_INT, 1, 100000, "5", F(n), NULL},
    {"AllowDES", CONFIG_BOOL, 0, 1, "0", F(b), NULL},
    CONFIG_END,
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_settings s;
	char *text = malloc(size + 1);

	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	memset(&s, 0, sizeof(s));
	/* stderr noise from config errors is expected here. */
	if (config_load_string(text, "/fuzz", "ra", table, &s) == 0)
		config_free(table, &s);
	free(text);
	return 0;
}
