/*
 * Addresses and networks for TrustedProxies, and the client address read
 * from X-Forwarded-For. The header is untrusted bytes: tests/fuzz/
 * fuzz_forwarded.c.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "netaddr.h"

static const uint8_t v4_mapped_prefix[12] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static void
netaddr_set(struct netaddr *out, int family, const void *bytes)
{
	memset(out, 0, sizeof(*out));
	if (family == AF_INET6 &&
	    memcmp(bytes, v4_mapped_prefix, sizeof(v4_mapped_prefix)) == 0) {
		out->family = AF_INET;
		memcpy(out->addr, (const uint8_t *)bytes + 12, 4);
		return;
	}
	out->family = family;
	memcpy(out->addr, bytes, family == AF_INET ? 4 : 16);
}

int
netaddr_parse(const char *s, size_t len, struct netaddr *out)
{
	char text[INET6_ADDRSTRLEN];
	uint8_t bytes[16];

	if (len == 0 || len >= sizeof(text) || memchr(s, '\0', len) != NULL)
		return -1;
	memcpy(text, s, len);
	text[len] = '\0';
	if (inet_pton(AF_INET, text, bytes) == 1)
		netaddr_set(out, AF_INET, bytes);
	else if (inet_pton(AF_INET6, text, bytes) == 1)
		netaddr_set(out, AF_INET6, bytes);
	else
		return -1;
	return 0;
}

int
netaddr_from_sockaddr(const void *sa, struct netaddr *out)
{
	const struct sockaddr *s = sa;

	if (s == NULL)
		return -1;
	if (s->sa_family == AF_INET) {
		const struct sockaddr_in *sin = sa;

		netaddr_set(out, AF_INET, &sin->sin_addr);
		return 0;
	}
	if (s->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = sa;

		netaddr_set(out, AF_INET6, &sin6->sin6_addr);
		return 0;
	}
	return -1;
}

void
netaddr_format(const struct netaddr *a, char *out, size_t outlen)
{
	if (outlen == 0)
		return;
	if (inet_ntop(a->family, a->addr, out, (socklen_t)outlen) == NULL)
		snprintf(out, outlen, "?");
}

int
netaddr_counts_by_64(const struct netaddr *a)
{
	static const uint8_t nat64[12] = {0x00, 0x64, 0xff, 0x9b};
	static const uint8_t zero[8];

	return a->family == AF_INET6 && memcmp(a->addr, nat64, 12) != 0 &&
	    memcmp(a->addr, zero, 8) != 0;
}

int
netaddr_is_loopback(const struct netaddr *a)
{
	static const uint8_t v6_loopback[16] = {
	    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};

	if (a->family == AF_INET)
		return a->addr[0] == 127;
	return a->family == AF_INET6 &&
	    memcmp(a->addr, v6_loopback, sizeof(v6_loopback)) == 0;
}

/* Do the first `bits` bits of a and b agree? */
static int
prefix_equal(const uint8_t *a, const uint8_t *b, unsigned int bits)
{
	unsigned int whole = bits / 8, rest = bits % 8;

	if (memcmp(a, b, whole) != 0)
		return 0;
	if (rest == 0)
		return 1;
	return ((a[whole] ^ b[whole]) & (0xff00 >> rest)) == 0;
}

static int
netmask_parse(const char *s, size_t len, struct netmask *out)
{
	const char *slash = memchr(s, '/', len);
	unsigned int max, bits = 0;

	if (netaddr_parse(s, slash ? (size_t)(slash - s) : len, &out->net) != 0)
		return -1;
	max = out->net.family == AF_INET ? 32 : 128;
	if (slash == NULL) {
		out->bits = max;
		return 0;
	}
	/* 1 to 3 digits, no sign, no spaces: strtoul would take " +7". */
	if (len - (size_t)(slash - s) - 1 == 0 ||
	    len - (size_t)(slash - s) - 1 > 3)
		return -1;
	for (const char *p = slash + 1; p < s + len; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		bits = bits * 10 + (unsigned int)(*p - '0');
	}
	if (bits > max)
		return -1;
	/* Host bits set (10.1.2.3/8) is almost always a typo: refuse it. */
	for (unsigned int i = bits; i < max; i++)
		if (out->net.addr[i / 8] & (0x80 >> (i % 8)))
			return -1;
	out->bits = bits;
	return 0;
}

int
netmask_list_parse(
    const char *spec, struct netmask_list *out, char *err, size_t errlen)
{
	static const char separators[] = " \t,";
	const char *p = spec;

	memset(out, 0, sizeof(*out));
	while (*(p += strspn(p, separators)) != '\0') {
		size_t len = strcspn(p, separators);
		struct netmask *v;

		if ((v = realloc(out->v, (out->n + 1) * sizeof(*v))) == NULL) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
		out->v = v;
		if (netmask_parse(p, len, &out->v[out->n]) != 0) {
			snprintf(err, errlen,
			    "'%.*s' is not an address or a network "
			    "(ADDRESS/BITS, host bits zero)",
			    (int)(len > 64 ? 64 : len), p);
			goto fail;
		}
		out->n++;
		p += len;
	}
	return 0;
fail:
	netmask_list_free(out);
	return -1;
}

int
netmask_list_contains(const struct netmask_list *list, const struct netaddr *a)
{
	for (size_t i = 0; list != NULL && i < list->n; i++)
		if (list->v[i].net.family == a->family &&
		    prefix_equal(list->v[i].net.addr, a->addr, list->v[i].bits))
			return 1;
	return 0;
}

void
netmask_list_free(struct netmask_list *list)
{
	free(list->v);
	list->v = NULL;
	list->n = 0;
}

/* A port: 1 to 5 digits, at most 65535. */
static int
port_valid(const char *s, size_t len)
{
	unsigned long port = 0;

	if (len == 0 || len > 5)
		return 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return 0;
		port = port * 10 + (unsigned long)(s[i] - '0');
	}
	return port <= 65535;
}

/* One X-Forwarded-For entry, blanks trimmed: an address, with a port or
 * not; an IPv6 address with a port is bracketed. */
static int
forwarded_entry(const char *s, size_t len, struct netaddr *out)
{
	const char *colon;

	while (len > 0 && (*s == ' ' || *s == '\t'))
		s++, len--;
	while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
		len--;
	if (len > 0 && s[0] == '[') {
		const char *close = memchr(s, ']', len);
		size_t after;

		if (close == NULL)
			return -1;
		after = len - (size_t)(close - s) - 1;
		if (after > 0 &&
		    (close[1] != ':' || !port_valid(close + 2, after - 1)))
			return -1;
		return netaddr_parse(s + 1, (size_t)(close - s - 1), out);
	}
	/* One colon: IPv4 with a port. More: IPv6 without one. */
	colon = memchr(s, ':', len);
	if (colon != NULL &&
	    memchr(colon + 1, ':', len - (size_t)(colon - s) - 1) == NULL) {
		if (!port_valid(colon + 1, len - (size_t)(colon - s) - 1))
			return -1;
		len = (size_t)(colon - s);
	}
	return netaddr_parse(s, len, out);
}

int
forwarded_client(const struct netmask_list *trusted, const char *xff,
    size_t len, struct netaddr *client)
{
	size_t end = len;

	if (len == 0)
		return -1;
	for (;;) {
		size_t start = end;

		while (start > 0 && xff[start - 1] != ',')
			start--;
		if (forwarded_entry(xff + start, end - start, client) != 0)
			return -1;
		if (start == 0 || !netmask_list_contains(trusted, client))
			return 0;
		end = start - 1; /* before the comma */
	}
}

int
host_header_name(const char *host, char *out, size_t outlen)
{
	size_t len, i;
	const char *colon;

	if (host[0] == '[') {
		const char *close = strchr(host, ']');

		if (close == NULL || close - host < 2 ||
		    (close[1] != '\0' && close[1] != ':'))
			return -1;
		len = (size_t)(close - host) + 1;
	} else {
		colon = strchr(host, ':');
		len = colon != NULL ? (size_t)(colon - host) : strlen(host);
		if (colon != NULL && strchr(colon + 1, ':') != NULL)
			return -1; /* an IPv6 literal without brackets */
	}
	if (len == 0 || len >= outlen)
		return -1;
	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)host[i];

		if (!isalnum(ch) && ch != '-' && ch != '.' && ch != '_' &&
		    !(host[0] == '[' && (ch == '[' || ch == ']' || ch == ':')))
			return -1;
		out[i] = (char)tolower(ch);
	}
	out[len] = '\0';
	return 0;
}

int
host_name_is_loopback(const char *name)
{
	struct netaddr a;
	size_t len = strlen(name);

	if (strcmp(name, "localhost") == 0 || strcmp(name, "localhost.") == 0)
		return 1;
	if (name[0] == '[' && len > 2)
		return netaddr_parse(name + 1, len - 2, &a) == 0 &&
		    netaddr_is_loopback(&a);
	return strchr(name, ':') == NULL && netaddr_parse(name, len, &a) == 0 &&
	    netaddr_is_loopback(&a);
}

int
netaddr_split_listen(
    const char *spec, char *host, size_t hostlen, const char **port)
{
	const char *colon;
	size_t n;

	if (spec[0] == '[') {
		const char *close = strchr(spec, ']');

		if (close == NULL || close[1] != ':')
			return -1;
		n = (size_t)(close - spec - 1);
		colon = close + 1;
		spec++;
	} else {
		if ((colon = strrchr(spec, ':')) == NULL)
			return -1;
		n = (size_t)(colon - spec);
	}
	if (n >= hostlen || colon[1] == '\0' ||
	    strspn(colon + 1, "0123456789") != strlen(colon + 1) ||
	    strlen(colon + 1) > 5 || atol(colon + 1) > 65535)
		return -1;
	memcpy(host, spec, n);
	host[n] = '\0';
	if (strcmp(host, "*") == 0)
		host[0] = '\0';
	*port = colon + 1;
	return 0;
}
