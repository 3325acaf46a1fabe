/*
 * X-Forwarded-For as a trusted proxy passes it on: the client wrote the
 * left part, so anything may stand there. The first line of the input is
 * the TrustedProxies list, the rest the header value, also read as a Host
 * header (the admin page's and /metrics' check of this server's names).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "netaddr.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	size_t spec_len = nl != NULL ? (size_t)(nl - data) : 0;
	const char *xff = (const char *)data + (nl != NULL ? spec_len + 1 : 0);
	size_t xff_len = size - (size_t)(xff - (const char *)data);
	struct netmask_list trusted = {NULL, 0};
	struct netaddr client;
	char *spec, err[160], text[64];

	if ((spec = malloc(spec_len + 1)) == NULL)
		return 0;
	memcpy(spec, data, spec_len);
	spec[spec_len] = '\0';
	if (netmask_list_parse(spec, &trusted, err, sizeof(err)) != 0 &&
	    (trusted.v != NULL || trusted.n != 0))
		abort();
	if (forwarded_client(&trusted, xff, xff_len, &client) == 0) {
		if (client.family != AF_INET && client.family != AF_INET6)
			abort();
		netaddr_format(&client, text, sizeof(text));
		/* What is logged and compared must read back the same. */
		struct netaddr again;
		if (netaddr_parse(text, strlen(text), &again) != 0 ||
		    memcmp(&again, &client, sizeof(client)) != 0)
			abort();
	}
	netmask_list_free(&trusted);
	free(spec);

	char *host = malloc(xff_len + 1), name[256];

	if (host == NULL)
		return 0;
	memcpy(host, xff, xff_len);
	host[xff_len] = '\0';
	if (host_header_name(host, name, sizeof(name)) == 0) {
		if (strlen(name) >= sizeof(name) || name[0] == '\0')
			abort();
		(void)host_name_is_loopback(name);
	}
	free(host);
	return 0;
}
