/*
 * Certificate templates: [template.NAME] sections of the configuration,
 * over three built in (NDES's default IPSECIntermediateOffline, and
 * client and server authentication). [ca] SignatureTemplate,
 * EncryptionTemplate and GeneralPurposeTemplate pick one from the key
 * usage the CSR asks for, as NDES does. Everything is checked at start: an
 * unknown template, key usage, EKU or SAN rule stops the service there.
 */
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "ca.h"
#include "log.h"

/* Shipped with scepd. A section of the same name in the file changes the
 * keys it sets and keeps the others. */
static const struct {
	const char *name;
	const char *key_usage;
	const char *extended_key_usage;
} builtin_templates[] = {
    /* NDES's default for all three: IPsec IKE intermediate. */
    {"IPSECIntermediateOffline", "digitalSignature,keyEncipherment",
        "1.3.6.1.5.5.8.2.2"},
    /* Wi-Fi (802.1X EAP-TLS) and VPN client certificates. */
    {"ClientAuth", "digitalSignature,keyEncipherment", "clientAuth"},
    /* Devices that serve TLS (printers, appliances). */
    {"ServerAuth", "digitalSignature,keyEncipherment", "serverAuth,clientAuth"},
};
#define NBUILTIN (sizeof(builtin_templates) / sizeof(builtin_templates[0]))

#define S(field) offsetof(struct ca_template_settings, field)
static const struct config_key template_config[] = {
    {"ValidityDays", CONFIG_INT, 0, 36500, "0", S(validity_days),
        "days (0: [ca] ValidityDays); never past the CA's own end"},
    {"KeyUsage", CONFIG_STRING, 0, 0, "digitalSignature,keyEncipherment",
        S(key_usage), "keyUsage of issued certificates"},
    {"ExtendedKeyUsage", CONFIG_STRING, 0, 0, "", S(extended_key_usage),
        "EKUs by name (clientAuth, serverAuth, ...) or OID"},
    {"KeyTypes", CONFIG_STRING, 0, 0, "RSA EC", S(key_types),
        "key types accepted: RSA, EC"},
    {"MinRSABits", CONFIG_INT, 2048, CA_RSA_MAX_BITS, "2048", S(min_rsa_bits),
        "smallest RSA key (never below 2048)"},
    {"ECCurves", CONFIG_STRING, 0, 0, "P-256 P-384", S(ec_curves),
        "EC curves accepted: P-256, P-384, P-521"},
    {"Subject", CONFIG_STRING, 0, 0, "request", S(subject),
        "request (as sent, RDN order kept) or a fixed DN + the CN sent"},
    {"AllowedSANs", CONFIG_STRING, 0, 0, "", S(allowed_sans),
        "TYPE:PATTERN ... (DNS, email, URI, IP, UPN); empty: none"},
    {"ApprovalRequired", CONFIG_BOOL, 0, 1, "0", S(approval_required),
        "an operator approves each request (scepctl approve)"},
    {"RenewalWindow", CONFIG_INT, 1, 100, "30", S(renewal_window),
        "renewal in the last N percent of a certificate's lifetime"},
    {"RenewalNewKey", CONFIG_BOOL, 0, 1, "0", S(renewal_new_key),
        "1: a renewal must bring a new key"},
    {"RenewOnce", CONFIG_BOOL, 0, 1, "1", S(renew_once),
        "a certificate renews once (0: again and again while valid)"},
    CONFIG_END,
};
#undef S

static const struct {
	const char *name;
	int nid;
} template_curves[] = {
    {"P-256", NID_X9_62_prime256v1},
    {"P-384", NID_secp384r1},
    {"P-521", NID_secp521r1},
};

static const struct {
	const char *name; /* as in AllowedSANs */
	const char *alias; /* RFC 5280's name */
	enum ca_san_type type;
} template_san_types[] = {
    {"DNS", "dNSName", CA_SAN_DNS},
    {"email", "rfc822Name", CA_SAN_EMAIL},
    {"URI", "uniformResourceIdentifier", CA_SAN_URI},
    {"IP", "iPAddress", CA_SAN_IP},
    {"UPN", "userPrincipalName", CA_SAN_UPN},
};

const char *
ca_san_type_name(enum ca_san_type type)
{
	for (size_t i = 0;
	     i < sizeof(template_san_types) / sizeof(template_san_types[0]);
	     i++)
		if (template_san_types[i].type == type)
			return template_san_types[i].name;
	return "?";
}

/* A SAN type by our name or RFC 5280's; 0, or -1 when unknown. */
static int
template_san_type(const char *name, size_t len, enum ca_san_type *type)
{
	for (size_t i = 0;
	     i < sizeof(template_san_types) / sizeof(template_san_types[0]);
	     i++) {
		const char *a = template_san_types[i].name;
		const char *b = template_san_types[i].alias;

		if ((strlen(a) == len && strncasecmp(name, a, len) == 0) ||
		    (strlen(b) == len && strncasecmp(name, b, len) == 0)) {
			*type = template_san_types[i].type;
			return 0;
		}
	}
	return -1;
}

/* The extension value is what OpenSSL's config syntax builds: try it. */
static int
template_ext_ok(int nid, const char *value)
{
	X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, NULL, nid, value);

	X509_EXTENSION_free(ext);
	ERR_clear_error();
	return ext != NULL;
}

/* t->serves_tls and serves_mail from its ExtendedKeyUsage as OpenSSL
 * reads it: names short or long ("TLS Web Server Authentication") or
 * OIDs. None at all: any purpose. */
static void
template_purposes(struct ca_template *t)
{
	X509_EXTENSION *ext;
	EXTENDED_KEY_USAGE *eku = NULL;

	t->serves_tls = t->serves_mail = t->s.extended_key_usage[0] == '\0';
	if ((ext = X509V3_EXT_nconf_nid(NULL, NULL, NID_ext_key_usage,
	         t->s.extended_key_usage)) != NULL)
		eku = X509V3_EXT_d2i(ext);
	for (int i = 0; i < sk_ASN1_OBJECT_num(eku); i++)
		switch (OBJ_obj2nid(sk_ASN1_OBJECT_value(eku, i))) {
		case NID_server_auth:
			t->serves_tls = 1;
			break;
		case NID_email_protect:
			t->serves_mail = 1;
			break;
		case NID_anyExtendedKeyUsage:
			t->serves_tls = t->serves_mail = 1;
			break;
		}
	EXTENDED_KEY_USAGE_free(eku);
	X509_EXTENSION_free(ext);
	ERR_clear_error();
}

/*
 * What a certificate issued with basicConstraints CA:FALSE may not say:
 * keyCertSign or cRLSign (RFC 5280 4.2.1.3: a CA's alone; a relying party
 * refuses the certificate, or takes it for a CA's). OCSPSigning makes
 * every device that enrolls a delegated OCSP responder of this CA, whose
 * "good" answers for revoked certificates are believed: logged, since an
 * OCSP responder enrolling by SCEP is the rare case it serves. Read as
 * OpenSSL reads them (names short or long, OIDs). The number of problems.
 */
static int
template_usage_of_an_end(const struct ca_template *t, const char *section)
{
	static const struct {
		int bit;
		const char *name;
	} ca_only[] = {{5, "keyCertSign"}, {6, "cRLSign"}};
	X509_EXTENSION *ext;
	ASN1_BIT_STRING *ku = NULL;
	EXTENDED_KEY_USAGE *eku = NULL;
	int errors = 0;

	if ((ext = X509V3_EXT_nconf_nid(
	         NULL, NULL, NID_key_usage, t->s.key_usage)) != NULL)
		ku = X509V3_EXT_d2i(ext);
	X509_EXTENSION_free(ext);
	for (size_t i = 0;
	     ku != NULL && i < sizeof(ca_only) / sizeof(ca_only[0]); i++)
		if (ASN1_BIT_STRING_get_bit(ku, ca_only[i].bit)) {
			fprintf(stderr,
			    "scepd-ca: [%s] KeyUsage = %s: %s is a CA's (RFC "
			    "5280 4.2.1.3), and scepd issues certificates of "
			    "CA:FALSE only\n",
			    section, t->s.key_usage, ca_only[i].name);
			errors++;
		}
	ASN1_BIT_STRING_free(ku);
	if ((ext = X509V3_EXT_nconf_nid(NULL, NULL, NID_ext_key_usage,
	         t->s.extended_key_usage)) != NULL)
		eku = X509V3_EXT_d2i(ext);
	X509_EXTENSION_free(ext);
	for (int i = 0; i < sk_ASN1_OBJECT_num(eku); i++)
		if (OBJ_obj2nid(sk_ASN1_OBJECT_value(eku, i)) == NID_OCSP_sign)
			log_warn("[%s] ExtendedKeyUsage = %s: every device "
			         "enrolling under it becomes an OCSP responder "
			         "for this CA, whose answers (a revoked "
			         "certificate 'good') relying parties believe",
			    section, t->s.extended_key_usage);
	EXTENDED_KEY_USAGE_free(eku);
	ERR_clear_error();
	return errors;
}

/* A copy of a setting to cut into words; NULL counted as a problem (at
 * start, out of memory: the CA does not start with a rule left out). */
static char *
template_copy(const char *setting, int *errors)
{
	char *copy = strdup(setting);

	if (copy == NULL) {
		fprintf(stderr, "scepd-ca: out of memory reading templates\n");
		(*errors)++;
	}
	return copy;
}

static int
template_prepare(struct ca_template *t, const char *section)
{
	char *copy, *tok, *save = NULL;
	size_t ncurves = 0;
	int errors = 0;

	if (!template_ext_ok(NID_key_usage, t->s.key_usage)) {
		fprintf(stderr,
		    "scepd-ca: [%s] KeyUsage = %s: not a key usage list "
		    "(digitalSignature, keyEncipherment, ...)\n",
		    section, t->s.key_usage);
		errors++;
	}
	if (t->s.extended_key_usage[0] != '\0' &&
	    !template_ext_ok(NID_ext_key_usage, t->s.extended_key_usage)) {
		fprintf(stderr,
		    "scepd-ca: [%s] ExtendedKeyUsage = %s: unknown name or "
		    "OID\n",
		    section, t->s.extended_key_usage);
		errors++;
	}
	errors += template_usage_of_an_end(t, section);
	template_purposes(t);
	copy = template_copy(t->s.key_usage, &errors);
	for (tok = copy ? strtok_r(copy, " ,", &save) : NULL; tok != NULL;
	     tok = strtok_r(NULL, " ,", &save))
		if (strcmp(tok, "critical") != 0 &&
		    strcmp(tok, "keyEncipherment") != 0)
			t->ec_usage_left = 1;
	free(copy);
	save = NULL;
	copy = template_copy(t->s.key_types, &errors);
	for (tok = copy ? strtok_r(copy, " ,", &save) : NULL; tok != NULL;
	     tok = strtok_r(NULL, " ,", &save)) {
		if (strcasecmp(tok, "RSA") == 0)
			t->allow_rsa = 1;
		else if (strcasecmp(tok, "EC") == 0)
			t->allow_ec = 1;
		else {
			fprintf(stderr,
			    "scepd-ca: [%s] KeyTypes: '%s' is not RSA or EC\n",
			    section, tok);
			errors++;
		}
	}
	free(copy);
	copy = template_copy(t->s.ec_curves, &errors);
	save = NULL;
	for (tok = copy ? strtok_r(copy, " ,", &save) : NULL; tok != NULL;
	     tok = strtok_r(NULL, " ,", &save)) {
		size_t i;

		for (i = 0;
		     i < sizeof(template_curves) / sizeof(template_curves[0]);
		     i++)
			if (strcasecmp(tok, template_curves[i].name) == 0)
				break;
		if (i == sizeof(template_curves) / sizeof(template_curves[0]) ||
		    ncurves + 1 >= sizeof(t->curves) / sizeof(t->curves[0])) {
			fprintf(stderr,
			    "scepd-ca: [%s] ECCurves: '%s' is not P-256, "
			    "P-384 or P-521\n",
			    section, tok);
			errors++;
			continue;
		}
		t->curves[ncurves++] = template_curves[i].nid;
	}
	free(copy);
	if (!t->allow_rsa && !t->allow_ec) {
		fprintf(stderr, "scepd-ca: [%s] KeyTypes: none\n", section);
		errors++;
	}
	if (strcasecmp(t->s.subject, "request") != 0) {
		t->fixed_subject = X509_NAME_new();
		copy = template_copy(t->s.subject, &errors);
		save = NULL;
		/* "O=Fabrikam,OU=Devices": RDNs in the order written. */
		for (tok = copy ? strtok_r(copy, ",", &save) : NULL;
		     tok != NULL; tok = strtok_r(NULL, ",", &save)) {
			char *eq = strchr(tok, '=');

			while (*tok == ' ')
				tok++;
			if (eq == NULL || eq == tok ||
			    X509_NAME_add_entry_by_txt(t->fixed_subject,
			        (*eq = '\0', tok), MBSTRING_UTF8,
			        (const unsigned char *)eq + 1, -1, -1,
			        0) != 1) {
				fprintf(stderr,
				    "scepd-ca: [%s] Subject: '%s' is not "
				    "request or a DN such as "
				    "O=Fabrikam,OU=IT\n",
				    section, t->s.subject);
				errors++;
				break;
			}
		}
		free(copy);
		ERR_clear_error();
	}
	copy = template_copy(t->s.allowed_sans, &errors);
	save = NULL;
	for (tok = copy ? strtok_r(copy, " ", &save) : NULL; tok != NULL;
	     tok = strtok_r(NULL, " ", &save)) {
		char *colon = strchr(tok, ':'), *pattern;
		struct ca_san_rule *more;
		enum ca_san_type type;

		if (colon == NULL || colon[1] == '\0' ||
		    template_san_type(tok, (size_t)(colon - tok), &type) != 0) {
			fprintf(stderr,
			    "scepd-ca: [%s] AllowedSANs: '%s' is not "
			    "TYPE:PATTERN "
			    "(DNS, email, URI, IP, UPN)\n",
			    section, tok);
			errors++;
			continue;
		}
		if ((more = realloc(
		         t->sans, (t->nsans + 1) * sizeof(*t->sans))) == NULL ||
		    (pattern = template_copy(colon + 1, &errors)) == NULL) {
			if (more != NULL)
				t->sans = more;
			errors += more == NULL;
			break;
		}
		t->sans = more;
		t->sans[t->nsans].type = type;
		t->sans[t->nsans].pattern = pattern;
		t->nsans++;
	}
	free(copy);
	return errors ? -1 : 0;
}

/* What a wildcard in a URI pattern's authority stands for: a host name's
 * characters (RFC 3986 unreserved). Not '@' (a userinfo before another
 * host), ':' (a port, which parsers split the host at), '%' (an escape
 * some decode), nor what ends the authority ('/', '?', '#'). */
static int
template_host_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
	    c == '~';
}

/* The length of the bracket expression ("[a-z]", "[![:digit:]]") that
 * `p` (n bytes) starts with, or 0 when its '[' is a plain character. */
static size_t
template_bracket_len(const char *p, size_t n)
{
	size_t i = 1;

	if (i < n && (p[i] == '!' || p[i] == '^'))
		i++;
	if (i < n && p[i] == ']')
		i++;
	while (i < n && p[i] != ']') {
		if (p[i] == '[' && i + 1 < n &&
		    (p[i + 1] == ':' || p[i + 1] == '.' || p[i + 1] == '=')) {
			size_t j = i + 2;

			while (
			    j + 1 < n && !(p[j] == p[i + 1] && p[j + 1] == ']'))
				j++;
			if (j + 1 >= n)
				return 0;
			i = j + 2;
		} else
			i++;
	}
	return i < n ? i + 1 : 0;
}

#define TEMPLATE_AUTHORITY_MAX 512

/*
 * Whether the authority `v` (vlen bytes) matches the pattern's `p` (plen
 * bytes): shell pattern syntax, where '*', '?' and a bracket expression
 * match host characters only (template_host_char), anything else only
 * as written. By rows of a table, not by backtracking: the value is the
 * device's, and "*a*a*a*b" against a long one must not take minutes.
 */
static int
template_authority_match(const char *p, size_t plen, const char *v, size_t vlen)
{
	unsigned char rows[2][TEMPLATE_AUTHORITY_MAX + 1];
	unsigned char *cur = rows[0], *next = rows[1], *swap;
	char bracket[64], one[2] = {0, 0};

	if (vlen > TEMPLATE_AUTHORITY_MAX)
		return 0;
	memset(cur, 0, vlen + 1);
	cur[0] = 1;
	for (size_t i = 0, len; i < plen; i += len) {
		int star = p[i] == '*', any = p[i] == '?';
		char literal = p[i];

		len = 1;
		bracket[0] = '\0';
		if (p[i] == '[' &&
		    (len = template_bracket_len(p + i, plen - i)) != 0) {
			if (len >= sizeof(bracket))
				return 0;
			memcpy(bracket, p + i, len);
			bracket[len] = '\0';
		} else if (p[i] == '\\' && i + 1 < plen) {
			literal = p[i + 1];
			len = 2;
		} else
			len = 1;
		next[0] = star && cur[0];
		for (size_t j = 1; j <= vlen; j++) {
			char c = v[j - 1];

			if (star)
				next[j] = cur[j] ||
				    (next[j - 1] && template_host_char(c));
			else if (any)
				next[j] = cur[j - 1] && template_host_char(c);
			else if (bracket[0] != '\0') {
				one[0] = c;
				next[j] = cur[j - 1] && template_host_char(c) &&
				    fnmatch(bracket, one, 0) == 0;
			} else
				next[j] = cur[j - 1] && c == literal;
		}
		swap = cur, cur = next, next = swap;
	}
	return cur[vlen];
}

/*
 * A URI against a URI pattern. With "://" in the pattern the scheme, the
 * authority (up to the first '/', '?' or '#') and the rest are matched
 * each on its own: one pattern over the whole URI let a '*' meant for a
 * host run into the path, a query or a userinfo (the pattern of https,
 * host *.example.com, any path allowed https://evil.net/.example.com/
 * and https://evil.net?.example.com/, both of host evil.net). In the
 * pattern's authority, which ends at its first '/' or '#', a '?' is a
 * wildcard as elsewhere. The rest is matched as before: a '*' in a path
 * spans '/'.
 */
static int
template_uri_match(const char *pattern, const char *value)
{
	const char *pa = strstr(pattern, "://"), *va = strstr(value, "://");
	char pscheme[64], vscheme[64];
	size_t plen, vlen;

	if (pa == NULL)
		return fnmatch(pattern, value, 0) == 0;
	/* RFC 3986 scheme: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) */
	if (va == NULL || va == value ||
	    (size_t)(va - value) >= sizeof(vscheme) ||
	    (size_t)(pa - pattern) >= sizeof(pscheme) ||
	    !((*value >= 'a' && *value <= 'z') ||
	        (*value >= 'A' && *value <= 'Z')) ||
	    strspn(value,
	        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	        "0123456789+-.") != (size_t)(va - value))
		return 0;
	memcpy(pscheme, pattern, (size_t)(pa - pattern));
	pscheme[pa - pattern] = '\0';
	memcpy(vscheme, value, (size_t)(va - value));
	vscheme[va - value] = '\0';
	if (fnmatch(pscheme, vscheme, 0) != 0)
		return 0;
	pa += 3;
	va += 3;
	/* A pattern's '?' is a wildcard: its authority ends at '/', '#' or
	 * an escaped "\?" (a query right after the host), a value's at
	 * '/', '?' or '#'. */
	for (plen = 0; pa[plen] != '\0' && pa[plen] != '/' && pa[plen] != '#' &&
	     !(pa[plen] == '\\' && pa[plen + 1] == '?');
	     plen++)
		;
	vlen = strcspn(va, "/?#");
	return template_authority_match(pa, plen, va, vlen) &&
	    fnmatch(pa + plen, va + vlen, 0) == 0;
}

int
ca_template_san_allowed(
    const struct ca_template *t, enum ca_san_type type, const char *value)
{
	for (size_t i = 0; i < t->nsans; i++) {
		if (t->sans[i].type != type)
			continue;
		if (type == CA_SAN_URI
		        ? template_uri_match(t->sans[i].pattern, value)
		        : fnmatch(t->sans[i].pattern, value, FNM_CASEFOLD) == 0)
			return 1;
	}
	return 0;
}

static struct ca_template *
template_find(struct ca *ca, const char *name)
{
	for (size_t i = 0; i < ca->ntemplates; i++)
		if (strcasecmp(ca->templates[i].name, name) == 0)
			return &ca->templates[i];
	return NULL;
}

static int
template_load(struct ca *ca, const struct config_pairs *file, const char *name,
    const char *builtin_ku, const char *builtin_eku)
{
	struct ca_template *t;
	char section[160];
	const char *before[5];
	size_t n = 0;
	int rc;

	if (template_find(ca, name) != NULL)
		return 0;
	/* The journal and renewal keep the name in CA_TEMPLATE_NAME_MAX:
	 * the INI reader's section names are shorter (lib/config.c). */
	snprintf(section, sizeof(section), CONFIG_SECTION_TEMPLATE "%s", name);
	t = &ca->templates[ca->ntemplates];
	memset(t, 0, sizeof(*t));
	if ((t->name = strdup(name)) == NULL)
		return -1;
	ca->ntemplates++;
	/* A built-in template's key usages, unless the file sets its own. */
	if (builtin_ku != NULL &&
	    config_pairs_get(file, section, "KeyUsage") == NULL) {
		before[n++] = "KeyUsage";
		before[n++] = builtin_ku;
	}
	if (builtin_eku != NULL &&
	    config_pairs_get(file, section, "ExtendedKeyUsage") == NULL) {
		before[n++] = "ExtendedKeyUsage";
		before[n++] = builtin_eku;
	}
	before[n] = NULL;
	rc = config_load_section(file, section, before, template_config, &t->s);
	if (rc != 0) {
		fprintf(stderr, "scepd-ca: [%s] is not usable (see above)\n",
		    section);
		t->s.key_usage = NULL; /* freed by config_load */
		return -1;
	}
	if (t->s.validity_days == 0)
		t->s.validity_days = ca->settings.validity_days;
	return template_prepare(t, section);
}

/* Whether `t` has an AllowedSANs rule of `type`. */
static int
template_has_rule(const struct ca_template *t, enum ca_san_type type)
{
	for (size_t i = 0; i < t->nsans; i++)
		if (t->sans[i].type == type)
			return 1;
	return 0;
}

/* A template in use whose certificates serve TLS or mail, without the
 * rule the subject's names are held to: said at start, not first by a
 * device's refusal (the CA took any subject before 2026-12). Once for a
 * template chosen by several usages. */
static void
template_subject_warn(const struct ca *ca, int usage)
{
	const struct ca_template *t = ca->by_usage[usage];

	for (int u = 0; u < usage; u++)
		if (ca->by_usage[u] == t)
			return;
	if (t->serves_tls && !template_has_rule(t, CA_SAN_DNS))
		log_warn("[template.%s]: its certificates serve TLS servers "
		         "and AllowedSANs has no DNS: rule, so a request whose "
		         "CN is a host name (with a dot) is refused: list the "
		         "names devices may claim (DNS:*.devices.example.com)",
		    t->name);
	if (t->serves_mail && t->fixed_subject == NULL &&
	    !template_has_rule(t, CA_SAN_EMAIL))
		log_warn(
		    "[template.%s]: its certificates serve mail and "
		    "AllowedSANs has no email: rule, so a request with an "
		    "emailAddress in its subject (E=) is refused: list the "
		    "addresses devices may claim (email:*@example.com)",
		    t->name);
}

int
ca_templates_load(struct ca *ca, const char *config_file)
{
	static const char *const want_keys[3] = {"SignatureTemplate",
	    "EncryptionTemplate", "GeneralPurposeTemplate"};
	const char *want[3] = {ca->settings.signature_template,
	    ca->settings.encryption_template,
	    ca->settings.general_purpose_template};
	struct config_pairs file;
	int rc = -1;

	if (config_load_pairs(config_file, CONFIG_SECTION_TEMPLATE, &file) != 0)
		return -1;
	ca->templates = calloc(file.n + NBUILTIN, sizeof(*ca->templates));
	if (ca->templates == NULL)
		goto out;
	for (size_t i = 0; i < NBUILTIN; i++)
		if (template_load(ca, &file, builtin_templates[i].name,
		        builtin_templates[i].key_usage,
		        builtin_templates[i].extended_key_usage) != 0)
			goto out;
	for (size_t i = 0; i < file.n; i++)
		if (template_load(ca, &file,
		        file.pair[i].section + strlen(CONFIG_SECTION_TEMPLATE),
		        NULL, NULL) != 0)
			goto out;
	for (size_t i = 0; i < ca->ntemplates; i++)
		if (!ca->templates[i].s.renew_once)
			log_warn("[template.%s] RenewOnce = 0: a certificate "
			         "may be renewed again and again while it is "
			         "valid, each time without a password",
			    ca->templates[i].name);
	for (int u = 0; u < 3; u++) {
		if ((ca->by_usage[u] = template_find(ca, want[u])) == NULL) {
			fprintf(stderr,
			    "scepd-ca: [ca] %s = %s: no such template (define "
			    "[template.%s], or use IPSECIntermediateOffline, "
			    "ClientAuth or ServerAuth)\n",
			    want_keys[u], want[u], want[u]);
			goto out;
		}
		log_info("%s = %s", want_keys[u], ca->by_usage[u]->name);
		template_subject_warn(ca, u);
	}
	rc = 0;
out:
	config_pairs_free(&file);
	return rc;
}

void
ca_templates_free(struct ca *ca)
{
	for (size_t i = 0; i < ca->ntemplates; i++) {
		struct ca_template *t = &ca->templates[i];

		if (t->s.key_usage != NULL)
			config_free(template_config, &t->s);
		X509_NAME_free(t->fixed_subject);
		for (size_t k = 0; k < t->nsans; k++)
			free(t->sans[k].pattern);
		free(t->sans);
		free(t->name);
	}
	free(ca->templates);
	ca->templates = NULL;
	ca->ntemplates = 0;
}

enum ca_usage
ca_csr_usage(X509_REQ *req)
{
	STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(req);
	ASN1_BIT_STRING *ku = NULL;
	int at, sig = 0, enc = 0;

	if (exts != NULL &&
	    (at = X509v3_get_ext_by_NID(exts, NID_key_usage, -1)) >= 0)
		ku = X509V3_EXT_d2i(sk_X509_EXTENSION_value(exts, at));
	if (ku != NULL) {
		sig = ASN1_BIT_STRING_get_bit(ku, 0); /* digitalSignature */
		enc = ASN1_BIT_STRING_get_bit(ku, 2); /* keyEncipherment */
	}
	ASN1_BIT_STRING_free(ku);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	ERR_clear_error();
	if (sig && !enc)
		return CA_USAGE_SIGNATURE;
	if (enc && !sig)
		return CA_USAGE_ENCRYPTION;
	return CA_USAGE_GENERAL;
}
