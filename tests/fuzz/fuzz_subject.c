/*
 * The subject= text of a profile download, as libmicrohttpd hands it over
 * (percent-decoded): parsed, its invariants checked, then written back with
 * every special character escaped and parsed again to the same RDNs.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "subject.h"

/* s as subject text again: every value byte that could be syntax escaped. */
static size_t
reescape(const struct subject *s, char *out)
{
	size_t n = 0;

	for (size_t i = 0; i < s->nattrs; i++) {
		const struct subject_attr *a = &s->attrs[i];

		if (i > 0)
			out[n++] = a->rdn == s->attrs[i - 1].rdn ? '+' : ',';
		n += (size_t)(stpcpy(out + n, a->type) - (out + n));
		out[n++] = '=';
		for (size_t k = 0; k < a->value_len; k++) {
			if (strchr(",+\"\\<>;=# ", a->value[k]) != NULL)
				out[n++] = '\\';
			out[n++] = a->value[k];
		}
	}
	return n;
}

static void
check(const struct subject *s)
{
	if (s->nattrs == 0 || s->nattrs > SUBJECT_ATTRS_MAX ||
	    s->attrs[0].rdn != 0 || s->nrdns != s->attrs[s->nattrs - 1].rdn + 1)
		abort();
	for (size_t i = 0; i < s->nattrs; i++) {
		const struct subject_attr *a = &s->attrs[i];

		if (a->type[0] == '\0' || a->value == NULL ||
		    a->value_len == 0 || strlen(a->value) != a->value_len ||
		    !subject_text_ok(a->value, a->value_len))
			abort();
		if (i > 0 && a->rdn != s->attrs[i - 1].rdn &&
		    a->rdn != s->attrs[i - 1].rdn + 1)
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct subject *s = NULL, *again = NULL;
	char err[256], *text;
	size_t n;
	int rc;

	rc = subject_parse((const char *)data, size, &s, err, sizeof(err));
	if (rc != 0) {
		if (s != NULL || (rc == SUBJECT_EINVAL && err[0] == '\0') ||
		    memchr(err, '\0', sizeof(err)) == NULL)
			abort();
		return 0;
	}
	check(s);
	/* Escaping at most doubles a value; types are short. */
	text = malloc(2 * size + s->nattrs * (SUBJECT_TYPE_MAX + 2) + 1);
	if (text == NULL)
		abort();
	n = reescape(s, text);
	/* Longer than the limit only through escapes the input did not
	 * need; the round trip is for the rest. */
	if (n <= SUBJECT_TEXT_MAX) {
		if (subject_parse(text, n, &again, err, sizeof(err)) != 0 ||
		    again->nattrs != s->nattrs || again->nrdns != s->nrdns)
			abort();
		for (size_t i = 0; i < s->nattrs; i++)
			if (strcmp(again->attrs[i].type, s->attrs[i].type) !=
			        0 ||
			    strcmp(again->attrs[i].value, s->attrs[i].value) !=
			        0 ||
			    again->attrs[i].rdn != s->attrs[i].rdn)
				abort();
	}
	free(text);
	subject_free(again);
	subject_free(s);
	return 0;
}
