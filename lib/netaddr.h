/*
 * Client addresses behind reverse proxies: the frontend's TrustedProxies
 * (a list of networks) and the X-Forwarded-For header those proxies add.
 */
#ifndef SCEPD_NETADDR_H
#define SCEPD_NETADDR_H

#include <stddef.h>
#include <stdint.h>

/* An IPv4 or IPv6 address; IPv4-mapped IPv6 addresses are kept as IPv4,
 * so that 10.0.0.1 and ::ffff:10.0.0.1 are one client. */
struct netaddr {
	int family; /* AF_INET or AF_INET6 */
	uint8_t addr[16];
};

/* A network: an address and the number of leading bits that count. */
struct netmask {
	struct netaddr net;
	unsigned int bits;
};

struct netmask_list {
	struct netmask *v;
	size_t n;
};

/* The text form of one address, exactly (no port, no brackets). */
int netaddr_parse(const char *s, size_t len, struct netaddr *out);
/* From a struct sockaddr (IPv4 or IPv6); -1 for other families. */
int netaddr_from_sockaddr(const void *sa, struct netaddr *out);
void netaddr_format(const struct netaddr *a, char *out, size_t outlen);
int netaddr_is_loopback(const struct netaddr *a);
/* Whether a limit counts `a` by its /64 (a host picks any address of the
 * /64 it is given): an IPv6 address outside NAT64's 64:ff9b::/96 (RFC
 * 6052, each address an IPv4 host) and ::/64 (::1). Link-local fe80::/10
 * and Teredo's 2001::/32 are counted by /64 too: a host on the link, or
 * one Teredo client, may take many of their addresses, and per address
 * they would multiply the guesses WrongPasswordLimit allows; the devices
 * sharing one then share its count (README). */
int netaddr_counts_by_64(const struct netaddr *a);

/*
 * "10.0.0.0/8 192.0.2.7, 2001:db8::/32": addresses or networks separated
 * by spaces or commas. On error returns -1 with the offending entry
 * named in err.
 */
int netmask_list_parse(
    const char *spec, struct netmask_list *out, char *err, size_t errlen);
int
netmask_list_contains(const struct netmask_list *list, const struct netaddr *a);
void netmask_list_free(struct netmask_list *list);

/*
 * The client behind a chain of proxies. `xff` is every X-Forwarded-For
 * value the request carried, joined with commas in the order received;
 * each proxy appends the address it was connected from, so the list is
 * read from the right: the first address not in `trusted` is the client
 * (further left, anyone could have written anything). When every entry
 * is trusted, the leftmost is. An entry may carry a port ("192.0.2.1:80",
 * "[2001:db8::1]:80"). Returns 0, or -1 when an entry it had to read is
 * not an address, or the list is empty.
 */
int forwarded_client(const struct netmask_list *trusted, const char *xff,
    size_t len, struct netaddr *client);

/*
 * The host a Host header names, without its port, lower-case ("[::1]" keeps
 * its brackets) into out. -1 when it is empty, longer than outlen - 1, or
 * holds anything but letters, digits, '-', '.', '_', and an IPv6 literal's
 * brackets and colons.
 */
int host_header_name(const char *host, char *out, size_t outlen);
/* localhost, 127.0.0.0/8 or [::1]: a name that is this machine's own. */
int host_name_is_loopback(const char *name);
/* A Listen value, "HOST:PORT", "[V6]:PORT", ":PORT" or "*:PORT" (every
 * address: host ""), split; *port points into `spec`. 0, or -1 when it is
 * none of these or the host does not fit `hostlen`. */
int netaddr_split_listen(
    const char *spec, char *host, size_t hostlen, const char **port);

#endif
