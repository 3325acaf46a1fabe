#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/asn1.h>
#include <openssl/err.h>
#include <openssl/objects.h>

#include "subject.h"

const char *
subject_strerror(int err)
{
	switch (err) {
	case SUBJECT_EINVAL:
		return "not a subject";
	case SUBJECT_ENOMEM:
		return "out of memory";
	}
	return err >= 0 ? "ok" : "unknown subject error";
}

int
subject_text_ok(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	while (i < len) {
		unsigned long cp;
		/* OpenSSL's decoder refuses overlong forms, surrogates and
		 * what lies past U+10FFFF. */
		int n = UTF8_getc(p + i, len - i > 4 ? 4 : (int)(len - i), &cp);

		/* Controls (C0, DEL, C1) and the non-characters U+FFFE and
		 * U+FFFF. */
		if (n <= 0 || cp < 0x20 || (cp >= 0x7f && cp < 0xa0) ||
		    cp == 0xfffe || cp == 0xffff)
			return 0;
		i += (size_t)n;
	}
	return 1;
}

static int __attribute__((format(printf, 3, 4)))
subject_fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return SUBJECT_EINVAL;
}

/*
 * An attribute type as iOS wants it: its six short names (C, L, ST, O, OU,
 * CN) whatever the case or spelling ("commonName", "2.5.4.3"), any other
 * type OpenSSL knows ("emailAddress", "E", "serialNumber", "DC") as a
 * dotted OID, which iOS takes as is. -1 for anything else.
 */
static int
subject_type(const char *in, size_t n, char *out, size_t outlen)
{
	static const struct {
		int nid;
		const char *apple;
	} apple_names[] = {
	    {NID_countryName, "C"},
	    {NID_localityName, "L"},
	    {NID_stateOrProvinceName, "ST"},
	    {NID_organizationName, "O"},
	    {NID_organizationalUnitName, "OU"},
	    {NID_commonName, "CN"},
	};
	char name[SUBJECT_TYPE_MAX];
	ASN1_OBJECT *obj;
	int nid, len;

	if (n == 0 || n >= sizeof(name))
		return -1;
	memcpy(name, in, n);
	name[n] = '\0';
	for (size_t i = 0; i < sizeof(apple_names) / sizeof(*apple_names); i++)
		if (strcasecmp(name, apple_names[i].apple) == 0) {
			snprintf(out, outlen, "%s", apple_names[i].apple);
			return 0;
		}
	if (strcasecmp(name, "E") == 0 || strcasecmp(name, "EMAIL") == 0)
		snprintf(name, sizeof(name), "emailAddress");
	if ((obj = OBJ_txt2obj(name, 0)) == NULL) {
		ERR_clear_error();
		return -1;
	}
	nid = OBJ_obj2nid(obj);
	for (size_t i = 0; i < sizeof(apple_names) / sizeof(*apple_names); i++)
		if (nid != NID_undef && nid == apple_names[i].nid) {
			ASN1_OBJECT_free(obj);
			snprintf(out, outlen, "%s", apple_names[i].apple);
			return 0;
		}
	len = OBJ_obj2txt(out, (int)outlen, obj, 1);
	ASN1_OBJECT_free(obj);
	return len > 0 && (size_t)len < outlen ? 0 : -1;
}

static int
hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int
is_type_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '.' || c == '-';
}

/*
 * One attribute's value from s[*i] up to the next unescaped ',' or '+' (or
 * the end), unescaped into v; its length, with trailing unescaped spaces
 * dropped, or -1 after subject_fail().
 */
static long
subject_value(const char *s, size_t len, size_t *i, const char *type, char *v,
    char *err, size_t errlen)
{
	size_t vlen = 0, keep = 0;

	while (*i < len && s[*i] != ',' && s[*i] != '+') {
		unsigned char ch = (unsigned char)s[(*i)++];
		int hi, lo;

		if (ch != '\\') {
			v[vlen++] = (char)ch;
			if (ch != ' ')
				keep = vlen;
			continue;
		}
		if (*i == len)
			return subject_fail(err, errlen,
			    "subject: the value of %s ends with '\\'", type);
		ch = (unsigned char)s[*i];
		if (ch != '\0' && strchr(",+\"\\<>;=# ", ch) != NULL) {
			(*i)++;
		} else if (*i + 1 < len && (hi = hexval(ch)) >= 0 &&
		    (lo = hexval((unsigned char)s[*i + 1])) >= 0) {
			ch = (unsigned char)(hi << 4 | lo);
			*i += 2;
		} else if (ch > 0x20 && ch < 0x7f) {
			return subject_fail(err, errlen,
			    "subject: '\\%c' in the value of %s: escape only "
			    ", + \" \\ < > ; = # space, or two hex digits",
			    ch, type);
		} else {
			return subject_fail(err, errlen,
			    "subject: '\\' before byte 0x%02X in the value of "
			    "%s: escape only , + \" \\ < > ; = # space, or two "
			    "hex digits",
			    ch, type);
		}
		v[vlen++] = (char)ch;
		keep = vlen;
	}
	return (long)keep;
}

int
subject_parse(
    const char *s, size_t len, struct subject **out, char *err, size_t errlen)
{
	struct subject *subj = NULL;
	char *v = NULL;
	size_t i = 0, rdn = 0;
	int rc = SUBJECT_ENOMEM;

	*out = NULL;
	if (errlen > 0)
		err[0] = '\0';
	if (len == 0) {
		rc = subject_fail(err, errlen,
		    "subject is empty; give it as e.g. "
		    "O=Fabrikam,OU=IT,CN=Robs IPad");
		goto out;
	}
	if (len > SUBJECT_TEXT_MAX) {
		rc = subject_fail(err, errlen,
		    "subject is longer than %d bytes", SUBJECT_TEXT_MAX);
		goto out;
	}
	/* Unescaping only shortens: one scratch buffer fits every value. */
	if ((subj = calloc(1, sizeof(*subj))) == NULL ||
	    (v = malloc(len + 1)) == NULL)
		goto out;
	for (;;) {
		struct subject_attr *a;
		size_t t0, t1;
		long vlen;

		if (subj->nattrs == SUBJECT_ATTRS_MAX) {
			rc = subject_fail(err, errlen,
			    "subject has more than %d attributes",
			    SUBJECT_ATTRS_MAX);
			goto out;
		}
		while (i < len && s[i] == ' ')
			i++;
		t0 = i;
		while (i < len && is_type_char((unsigned char)s[i]))
			i++;
		t1 = i;
		while (i < len && s[i] == ' ')
			i++;
		if (t1 == t0 || i == len || s[i] != '=') {
			rc = subject_fail(err, errlen,
			    "subject: attribute %zu is not TYPE=value (as in "
			    "O=Fabrikam,OU=IT,CN=Robs IPad; a ',' or '+' in a "
			    "value is written '\\,' or '\\+')",
			    subj->nattrs + 1);
			goto out;
		}
		i++;
		a = &subj->attrs[subj->nattrs];
		if (subject_type(s + t0, t1 - t0, a->type, sizeof(a->type)) !=
		    0) {
			/* Type characters are printable ASCII. */
			rc = subject_fail(err, errlen,
			    "subject: unknown attribute type '%.*s%s' (C, L, "
			    "ST, O, OU, CN, another name OpenSSL knows, or a "
			    "dotted OID)",
			    t1 - t0 > 64 ? 64 : (int)(t1 - t0), s + t0,
			    t1 - t0 > 64 ? "..." : "");
			goto out;
		}
		while (i < len && s[i] == ' ')
			i++;
		if ((vlen = subject_value(
		         s, len, &i, a->type, v, err, errlen)) < 0) {
			rc = SUBJECT_EINVAL;
			goto out;
		}
		if (vlen == 0) {
			rc = subject_fail(err, errlen,
			    "subject: %s has an empty value", a->type);
			goto out;
		}
		if (!subject_text_ok(v, (size_t)vlen)) {
			rc = subject_fail(err, errlen,
			    "subject: the value of %s is not UTF-8 text",
			    a->type);
			goto out;
		}
		if ((a->value = strndup(v, (size_t)vlen)) == NULL)
			goto out;
		a->value_len = (size_t)vlen;
		a->rdn = rdn;
		subj->nattrs++;
		if (i == len)
			break;
		if (s[i] == ',')
			rdn++;
		if (++i == len) {
			rc = subject_fail(
			    err, errlen, "subject ends with '%c'", s[i - 1]);
			goto out;
		}
	}
	subj->nrdns = rdn + 1;
	*out = subj;
	subj = NULL;
	rc = 0;
out:
	free(v);
	subject_free(subj);
	return rc;
}

void
subject_free(struct subject *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->nattrs; i++)
		free(s->attrs[i].value);
	free(s);
}
