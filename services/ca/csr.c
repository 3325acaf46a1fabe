/*
 * The request policy, applied to the CSR bytes as the RA forwarded them:
 * readable, a key of a type and size we can weigh (checked before any
 * signature math), self-signature valid (ca_csr_read); then the
 * template's rules: a key it accepts, a subject, and only the
 * subjectAltNames its SAN policy allows (ca_csr_rules). Whatever the RA
 * decided, this is checked.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <ctype.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>

#include "ca.h"
#include "pki.h"
#include "x509parse.h"

static int ca_refuse(struct ca_refusal *refusal, int fail_info, const char *fmt,
    ...) __attribute__((format(printf, 3, 4)));

static int
ca_refuse(struct ca_refusal *refusal, int fail_info, const char *fmt, ...)
{
	va_list ap;

	refusal->fail_info = fail_info;
	va_start(ap, fmt);
	vsnprintf(refusal->why, sizeof(refusal->why), fmt, ap);
	va_end(ap);
	ERR_clear_error();
	return -1;
}

/* What any template could accept, checked before the signature's math:
 * RSA up to CA_RSA_MAX_BITS, EC on a named curve. The parameters as
 * written, too: OpenSSL names the curve of explicit parameters that equal
 * one, and reads an RSA key whatever its parameters, but the certificate
 * carries the key as written (ca_issue_copy_pubkey): NULL or absent for
 * RSA, a curve's OID for EC. */
static int
ca_csr_key_weighable(const struct ca_template *t, X509_REQ *req, EVP_PKEY *key,
    struct ca_refusal *r)
{
	X509_ALGOR *algor = NULL;
	char group[80];
	int bits, ptype = V_ASN1_UNDEF;

	if (X509_PUBKEY_get0_param(
	        NULL, NULL, NULL, &algor, X509_REQ_get_X509_PUBKEY(req)) == 1)
		X509_ALGOR_get0(NULL, &ptype, NULL, algor);
	switch (EVP_PKEY_get_base_id(key)) {
	case EVP_PKEY_RSA:
		if (ptype != V_ASN1_NULL && ptype != V_ASN1_UNDEF)
			return ca_refuse(r, SCEP__V1__FAIL_INFO__FAIL_BAD_ALG,
			    "the RSA key's algorithm parameters are not NULL "
			    "(RFC 3279)");
		if ((bits = EVP_PKEY_get_bits(key)) > CA_RSA_MAX_BITS)
			return ca_refuse(r,
			    SCEP__V1__FAIL_INFO__FAIL_BAD_REQUEST,
			    "RSA key of %d bits is over %d, the most scepd "
			    "accepts (their checks cost seconds)",
			    bits, CA_RSA_MAX_BITS);
		return 0;
	case EVP_PKEY_EC:
		if (ptype != V_ASN1_OBJECT ||
		    EVP_PKEY_get_group_name(key, group, sizeof(group), NULL) !=
		        1)
			return ca_refuse(r, SCEP__V1__FAIL_INFO__FAIL_BAD_ALG,
			    "EC key without a named curve is not accepted "
			    "(ECCurves = %s)",
			    t->s.ec_curves);
		return 0;
	default:
		return ca_refuse(r, SCEP__V1__FAIL_INFO__FAIL_BAD_ALG,
		    "%s keys are not accepted (RSA or EC)",
		    EVP_PKEY_get0_type_name(key) ? EVP_PKEY_get0_type_name(key)
		                                 : "these");
	}
}

/* What the template accepts: RSA of at least its MinRSABits and of
 * [ca] MinRSABits, EC on its curves (after ca_csr_key_weighable). */
static int
ca_csr_check_key(const struct ca *ca, const struct ca_template *t,
    EVP_PKEY *key, struct ca_refusal *r)
{
	char group[80] = "";
	long min;
	int bits, nid;

	switch (EVP_PKEY_get_base_id(key)) {
	case EVP_PKEY_RSA:
		bits = EVP_PKEY_get_bits(key);
		if (!t->allow_rsa)
			return ca_refuse(r, SCEP__V1__FAIL_INFO__FAIL_BAD_ALG,
			    "RSA keys are not accepted by template %s "
			    "(KeyTypes = %s)",
			    t->name, t->s.key_types);
		min = t->s.min_rsa_bits > ca->settings.min_rsa_bits
		    ? t->s.min_rsa_bits
		    : ca->settings.min_rsa_bits;
		if (bits < min)
			return ca_refuse(r,
			    SCEP__V1__FAIL_INFO__FAIL_BAD_REQUEST,
			    "RSA key of %d bits is below MinRSABits = %ld "
			    "(template %s)",
			    bits, min, t->name);
		return 0;
	case EVP_PKEY_EC:
		if (!t->allow_ec)
			return ca_refuse(r, SCEP__V1__FAIL_INFO__FAIL_BAD_ALG,
			    "EC keys are not accepted by template %s "
			    "(KeyTypes = %s)",
			    t->name, t->s.key_types);
		if (!t->ec_usage_left)
			return ca_refuse(r, SCEP__V1__FAIL_INFO__FAIL_BAD_ALG,
			    "an EC key cannot do what template %s is for "
			    "(KeyUsage = %s; keyEncipherment is RSA's): use an "
			    "RSA key",
			    t->name, t->s.key_usage);
		EVP_PKEY_get_group_name(key, group, sizeof(group), NULL);
		nid = OBJ_sn2nid(group);
		if (nid == NID_undef)
			nid = EC_curve_nist2nid(group);
		for (int i = 0; t->curves[i] != 0; i++)
			if (t->curves[i] == nid)
				return 0;
		return ca_refuse(r, SCEP__V1__FAIL_INFO__FAIL_BAD_ALG,
		    "EC curve %s is not accepted by template %s (ECCurves = "
		    "%s)",
		    group, t->name, t->s.ec_curves);
	default: /* ca_csr_key_weighable refuses it first */
		return ca_refuse(r, SCEP__V1__FAIL_INFO__FAIL_BAD_ALG,
		    "%s keys are not accepted by template %s (RSA or EC)",
		    EVP_PKEY_get0_type_name(key) ? EVP_PKEY_get0_type_name(key)
		                                 : "these",
		    t->name);
	}
}

/* One GeneralName as the policy sees it; -1 for kinds never allowed, -2
 * for a name holding bytes its type may not (CA_SAN_BAD_BYTES). */
#define CA_SAN_BAD_BYTES (-2)
static int
ca_general_name(
    const GENERAL_NAME *gn, enum ca_san_type *type, char *out, size_t outlen)
{
	const ASN1_STRING *s = NULL;

	switch (gn->type) {
	case GEN_DNS:
		*type = CA_SAN_DNS, s = gn->d.dNSName;
		break;
	case GEN_EMAIL:
		*type = CA_SAN_EMAIL, s = gn->d.rfc822Name;
		break;
	case GEN_URI:
		*type = CA_SAN_URI, s = gn->d.uniformResourceIdentifier;
		break;
	case GEN_IPADD:
		*type = CA_SAN_IP;
		return pki_ip_text(gn->d.iPAddress, out, outlen);
	case GEN_OTHERNAME:
		if (OBJ_obj2nid(gn->d.otherName->type_id) != NID_ms_upn ||
		    gn->d.otherName->value->type != V_ASN1_UTF8STRING)
			return -1;
		*type = CA_SAN_UPN,
		s = gn->d.otherName->value->value.utf8string;
		break;
	default:
		return -1;
	}
	/* An embedded NUL or control byte would fool a pattern: refused. */
	if (s == NULL || ASN1_STRING_length(s) <= 0 ||
	    (size_t)ASN1_STRING_length(s) >= outlen)
		return -1;
	memcpy(out, ASN1_STRING_get0_data(s), (size_t)ASN1_STRING_length(s));
	out[ASN1_STRING_length(s)] = '\0';
	for (const char *c = out; *c != '\0'; c++)
		if ((unsigned char)*c < 0x21 || *c == 0x7f)
			return -1;
	if (strlen(out) != (size_t)ASN1_STRING_length(s))
		return -1;
	/* DNS, email and URI names are IA5Strings, ASCII (RFC 5280); a UPN
	 * is UTF-8, which OpenSSL's conversion checks. Else the certificate
	 * would break the standard, and the ledger could not record it. */
	if (*type == CA_SAN_UPN) {
		unsigned char *utf8 = NULL;
		int n = ASN1_STRING_to_UTF8(&utf8, s);

		OPENSSL_free(utf8);
		ERR_clear_error();
		return n < 0 ? CA_SAN_BAD_BYTES : 0;
	}
	for (const char *c = out; *c != '\0'; c++)
		if ((unsigned char)*c >= 0x80)
			return CA_SAN_BAD_BYTES;
	return 0;
}

/*
 * Whether a requested name is a name and not a pattern. AllowedSANs are
 * fnmatch(3) patterns: DNS:*.devices.example.com also matches the value
 * "*.devices.example.com", a wildcard certificate for every other device,
 * and email:*@example.com "a@b@example.com". DNS names: letters, digits,
 * '-', '_', dots between labels of 1 to 63 characters; email and UPN:
 * one '@', no wildcard; URI: no '*', '[' or '\\' (a '?' begins a query).
 */
static int
ca_san_plain(enum ca_san_type type, const char *v)
{
	size_t label = 0;

	switch (type) {
	case CA_SAN_DNS:
		if (v[0] == '.' || v[strlen(v) - 1] == '.')
			return 0;
		for (const char *c = v; *c != '\0'; c++) {
			if (*c == '.') {
				if (label == 0)
					return 0;
				label = 0;
			} else if (isalnum((unsigned char)*c) || *c == '-' ||
			    *c == '_') {
				if (++label > 63)
					return 0;
			} else
				return 0;
		}
		return 1;
	case CA_SAN_EMAIL:
	case CA_SAN_UPN: {
		const char *at = strchr(v, '@');

		return at != NULL && at != v && at[1] != '\0' &&
		    strchr(at + 1, '@') == NULL && strpbrk(v, "*?[\\") == NULL;
	}
	case CA_SAN_URI:
		return strpbrk(v, "*[\\") == NULL;
	case CA_SAN_IP:
		return 1;
	}
	return 0;
}

int
ca_csr_san_names(X509_REQ *req, GENERAL_NAMES **names)
{
	STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(req);
	int at, rc = 0;

	*names = NULL;
	if (exts != NULL &&
	    (at = X509v3_get_ext_by_NID(exts, NID_subject_alt_name, -1)) >= 0) {
		X509_EXTENSION *ext = sk_X509_EXTENSION_value(exts, at);
		const ASN1_OCTET_STRING *v = X509_EXTENSION_get_data(ext);
		const unsigned char *p = ASN1_STRING_get0_data(v);
		long len = ASN1_STRING_length(v);

		/* Whole, and once: bytes OpenSSL skips or cannot read are
		 * names another parser may read. */
		if ((*names = d2i_GENERAL_NAMES(NULL, &p, len)) == NULL ||
		    p != ASN1_STRING_get0_data(v) + len ||
		    X509v3_get_ext_by_NID(exts, NID_subject_alt_name, at) >=
		        0) {
			GENERAL_NAMES_free(*names);
			*names = NULL;
			rc = -1;
		}
	}
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	ERR_clear_error();
	return rc;
}

char **
ca_csr_sans(X509_REQ *req)
{
	GENERAL_NAMES *names;
	char **out = NULL, value[512];
	enum ca_san_type type;
	int n;
	size_t k = 0;

	if (ca_csr_san_names(req, &names) != 0 || names == NULL ||
	    (n = sk_GENERAL_NAME_num(names)) <= 0 ||
	    (out = calloc((size_t)n + 1, sizeof(*out))) == NULL) {
		GENERAL_NAMES_free(names);
		ERR_clear_error();
		return NULL;
	}
	for (int i = 0; i < n; i++) {
		char line[600];

		int got = ca_general_name(sk_GENERAL_NAME_value(names, i),
		    &type, value, sizeof(value));

		if (got == CA_SAN_BAD_BYTES)
			snprintf(line, sizeof(line), "%s:(not %s)",
			    ca_san_type_name(type),
			    type == CA_SAN_UPN ? "UTF-8" : "ASCII");
		else if (got != 0)
			snprintf(line, sizeof(line), "other:(type %d)",
			    sk_GENERAL_NAME_value(names, i)->type);
		else
			snprintf(line, sizeof(line), "%s:%s",
			    ca_san_type_name(type), value);
		if ((out[k] = strdup(line)) != NULL)
			k++;
	}
	GENERAL_NAMES_free(names);
	return out;
}

void
ca_strings_free(char **v)
{
	for (size_t i = 0; v != NULL && v[i] != NULL; i++)
		free(v[i]);
	free(v);
}

/* extensionRequest attributes (PKCS#9's and Microsoft's) and the values
 * in them: X509_REQ_get_extensions reads only the first of each. */
static int
ca_csr_ext_req_count(const X509_REQ *req)
{
	static const int nids[] = {NID_ext_req, NID_ms_ext_req};
	int n = 0;

	for (size_t i = 0; i < sizeof(nids) / sizeof(nids[0]); i++)
		for (int at = -1;
		     (at = X509_REQ_get_attr_by_NID(req, nids[i], at)) >= 0;)
			n += X509_ATTRIBUTE_count(X509_REQ_get_attr(req, at));
	return n;
}

/* The extensionRequest is readable, and every SAN in it is one the
 * template allows: none are dropped silently, none copied unchecked. */
static int
ca_csr_check_extensions(
    const struct ca_template *t, X509_REQ *req, struct ca_refusal *r)
{
	STACK_OF(X509_EXTENSION) * exts;
	GENERAL_NAMES *names;
	char value[512];
	enum ca_san_type type;
	int rc = -1;

	if (ca_csr_ext_req_count(req) > 1)
		return ca_refuse(r, SCEP__V1__FAIL_INFO__FAIL_BAD_REQUEST,
		    "the request carries more than one extensionRequest: "
		    "OpenSSL reads the first, another reader may read "
		    "another");
	if ((exts = X509_REQ_get_extensions(req)) == NULL) {
		if (X509_REQ_get_attr_by_NID(req, NID_ext_req, -1) >= 0 ||
		    X509_REQ_get_attr_by_NID(req, NID_ms_ext_req, -1) >= 0)
			return ca_refuse(r,
			    SCEP__V1__FAIL_INFO__FAIL_BAD_REQUEST,
			    "the request's extensionRequest cannot be read");
		ERR_clear_error();
		return 0;
	}
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	if (ca_csr_san_names(req, &names) != 0)
		return ca_refuse(r, SCEP__V1__FAIL_INFO__FAIL_BAD_REQUEST,
		    "the request's subjectAltName cannot be read (or comes "
		    "twice)");
	if (names == NULL)
		return 0;
	for (int i = 0; i < sk_GENERAL_NAME_num(names); i++) {
		int got = ca_general_name(sk_GENERAL_NAME_value(names, i),
		    &type, value, sizeof(value));

		if (got == CA_SAN_BAD_BYTES) {
			ca_refuse(r, SCEP__V1__FAIL_INFO__FAIL_BAD_REQUEST,
			    "subjectAltName %s holds bytes such a name may "
			    "not (%s): refused",
			    ca_san_type_name(type),
			    type == CA_SAN_UPN ? "a UPN is UTF-8"
			                       : "DNS, email and URI names "
			                         "are ASCII");
			goto out;
		}
		if (got != 0) {
			ca_refuse(r, SCEP__V1__FAIL_INFO__FAIL_BAD_REQUEST,
			    "subjectAltName of a kind no template allows "
			    "(only DNS, email, URI, IP, UPN may be)");
			goto out;
		}
		if (!ca_san_plain(type, value)) {
			ca_refuse(r, SCEP__V1__FAIL_INFO__FAIL_BAD_REQUEST,
			    "subjectAltName %s:%s is a pattern, not a name "
			    "(a wildcard, or a character no %s name holds): "
			    "refused",
			    ca_san_type_name(type), value,
			    ca_san_type_name(type));
			goto out;
		}
		if (!ca_template_san_allowed(t, type, value)) {
			ca_refuse(r, SCEP__V1__FAIL_INFO__FAIL_BAD_REQUEST,
			    "subjectAltName %s:%s is refused by template %s "
			    "(AllowedSANs = %s)",
			    ca_san_type_name(type), value, t->name,
			    t->nsans ? t->s.allowed_sans : "none");
			goto out;
		}
	}
	rc = 0;
out:
	GENERAL_NAMES_free(names);
	return rc;
}

int
ca_csr_read(const struct ca *ca, const uint8_t *der, size_t len, int as_sent,
    X509_REQ **out, const struct ca_template **tpl, struct ca_refusal *refusal)
{
	const unsigned char *p = der;
	X509_REQ *req = NULL;
	EVP_PKEY *key = NULL;
	int rc = -1;

	*out = NULL;
	if (len == 0 || len > LONG_MAX ||
	    (req = x509parse_req(&p, (long)len, &key)) == NULL ||
	    p != der + len) {
		ca_refuse(refusal, SCEP__V1__FAIL_INFO__FAIL_BAD_REQUEST,
		    "the CSR is not a readable PKCS#10 request");
		goto out;
	}
	if (key == NULL) {
		ca_refuse(refusal, SCEP__V1__FAIL_INFO__FAIL_BAD_ALG,
		    "the CSR's public key cannot be read");
		goto out;
	}
	*tpl = ca->by_usage[ca_csr_usage(req)];
	/* The key first: no signature work for keys we refuse anyway. */
	if (ca_csr_key_weighable(*tpl, req, key, refusal) != 0)
		goto out;
	if (as_sent && X509_REQ_verify(req, key) != 1) {
		ca_refuse(refusal, SCEP__V1__FAIL_INFO__FAIL_BAD_MESSAGE_CHECK,
		    "the CSR's signature does not verify with its key");
		goto out;
	}
	/* Verified (as_sent = 0: when it came): the key goes in, the key's
	 * encoding kept as the device sent it. */
	if ((req = x509parse_req_keyed(req, key, der, (long)len)) == NULL) {
		ca_refuse(refusal, SCEP__V1__FAIL_INFO__FAIL_BAD_ALG,
		    "the CSR's public key cannot be read");
		goto out;
	}
	*out = req;
	req = NULL;
	rc = 0;
out:
	X509_REQ_free(req);
	EVP_PKEY_free(key);
	ERR_clear_error();
	return rc;
}

/* A CN a TLS client may take for a host name: letters, digits, '-', '_',
 * with a dot or a wildcard (a device's "Robs iPad" or UDID is none; nor
 * an IP address, which clients match against IP SANs only). */
static int
ca_cn_is_host(const char *cn)
{
	unsigned char ip[16];
	int dotted = 0;

	if (inet_pton(AF_INET, cn, ip) == 1)
		return 0;
	for (const char *c = cn; *c != '\0'; c++)
		if (*c == '.' || *c == '*')
			dotted = 1;
		else if (!isalnum((unsigned char)*c) && *c != '-' && *c != '_')
			return 0;
	return dotted;
}

/*
 * The names in the subject that clients read as SANs where a certificate
 * has none: a CN as a host name (OpenSSL's X509_check_host, Java and many
 * embedded TLS stacks fall back to it), emailAddress as a mail address
 * (S/MIME clients). Under a template whose certificates serve for that,
 * they must pass the template's AllowedSANs as a DNS or email SAN would:
 * otherwise `CN=mail.example.com` with no SAN was a server certificate
 * for that host, whatever AllowedSANs said.
 */
static int
ca_csr_check_subject_names(
    const struct ca_template *t, X509_REQ *req, struct ca_refusal *r)
{
	const X509_NAME *subject = X509_REQ_get_subject_name(req);
	const struct {
		int nid;
		enum ca_san_type type;
		int concerned;
		const char *eku, *how;
	} kinds[] = {
	    {NID_commonName, CA_SAN_DNS, t->serves_tls, "serverAuth",
	        "TLS clients take it as the host name where no DNS "
	        "subjectAltName is"},
	    /* A fixed Subject does not copy the request's emailAddress. */
	    {NID_pkcs9_emailAddress, CA_SAN_EMAIL,
	        t->serves_mail && t->fixed_subject == NULL, "emailProtection",
	        "mail clients take it as the address where no email "
	        "subjectAltName is"},
	};
	unsigned char *utf8;
	int len, rc = 0;

	for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]) && rc == 0;
	     k++) {
		if (!kinds[k].concerned)
			continue;
		for (int at = -1; rc == 0 &&
		     (at = X509_NAME_get_index_by_NID(
		          subject, kinds[k].nid, at)) >= 0;) {
			if ((len = ASN1_STRING_to_UTF8(&utf8,
			         X509_NAME_ENTRY_get_data(
			             X509_NAME_get_entry(subject, at)))) < 0) {
				rc = ca_refuse(r,
				    SCEP__V1__FAIL_INFO__FAIL_BAD_REQUEST,
				    "the subject's %s cannot be read",
				    OBJ_nid2sn(kinds[k].nid));
				break;
			}
			/* "mail.example.com\0.x": read as C strings, the
			 * name before the NUL. */
			if ((size_t)len != strlen((char *)utf8)) {
				OPENSSL_free(utf8);
				rc = ca_refuse(r,
				    SCEP__V1__FAIL_INFO__FAIL_BAD_REQUEST,
				    "the subject's %s holds a NUL byte: "
				    "refused",
				    OBJ_nid2sn(kinds[k].nid));
				break;
			}
			if (kinds[k].type == CA_SAN_DNS &&
			    !ca_cn_is_host((char *)utf8)) {
				OPENSSL_free(utf8);
				continue;
			}
			if (!ca_san_plain(kinds[k].type, (char *)utf8))
				rc = ca_refuse(r,
				    SCEP__V1__FAIL_INFO__FAIL_BAD_REQUEST,
				    "the subject's %s \"%.200s\" is a pattern, "
				    "not "
				    "a name (%s): refused",
				    OBJ_nid2sn(kinds[k].nid), (char *)utf8,
				    kinds[k].how);
			else if (!ca_template_san_allowed(
			             t, kinds[k].type, (char *)utf8))
				rc = ca_refuse(r,
				    SCEP__V1__FAIL_INFO__FAIL_BAD_REQUEST,
				    "the subject's %s \"%.200s\" is refused by "
				    "template %s, whose AllowedSANs must allow "
				    "%s:%s (%s, and its certificates serve for "
				    "%s); AllowedSANs = %s",
				    OBJ_nid2sn(kinds[k].nid), (char *)utf8,
				    t->name, ca_san_type_name(kinds[k].type),
				    (char *)utf8, kinds[k].how, kinds[k].eku,
				    t->nsans ? t->s.allowed_sans : "none");
			OPENSSL_free(utf8);
		}
	}
	return rc;
}

/*
 * Each value of the subject a string (RFC 5280's DirectoryString, and
 * IA5String, PrintableString or NumericString where an attribute asks
 * for one): OpenSSL reads any value, a SEQUENCE too, which the
 * certificate would carry as sent and no relying party reads as a name.
 * 0, or -1 with the refusal.
 */
static int
ca_csr_subject_strings(const X509_NAME *subject, struct ca_refusal *r)
{
	static const int strings[] = {V_ASN1_UTF8STRING, V_ASN1_PRINTABLESTRING,
	    V_ASN1_T61STRING, V_ASN1_BMPSTRING, V_ASN1_UNIVERSALSTRING,
	    V_ASN1_IA5STRING, V_ASN1_NUMERICSTRING, V_ASN1_VISIBLESTRING};

	for (int i = 0; i < X509_NAME_entry_count(subject); i++) {
		const X509_NAME_ENTRY *e = X509_NAME_get_entry(subject, i);
		int type = ASN1_STRING_type(X509_NAME_ENTRY_get_data(e)),
		    ok = 0;
		const ASN1_OBJECT *obj;
		char attr[80];

		for (size_t k = 0; k < sizeof(strings) / sizeof(strings[0]);
		     k++)
			ok |= type == strings[k];
		if (ok)
			continue;
		obj = X509_NAME_ENTRY_get_object(e);
		if (OBJ_obj2nid(obj) != NID_undef)
			snprintf(attr, sizeof(attr), "%s",
			    OBJ_nid2sn(OBJ_obj2nid(obj)));
		else
			OBJ_obj2txt(attr, sizeof(attr), obj, 1);
		return ca_refuse(r, SCEP__V1__FAIL_INFO__FAIL_BAD_REQUEST,
		    "the subject's %s is a %s, not a string (RFC 5280: a "
		    "DirectoryString): refused",
		    attr, ASN1_tag2str(type));
	}
	return 0;
}

int
ca_csr_rules(const struct ca *ca, const struct ca_template *tpl, X509_REQ *req,
    struct ca_refusal *refusal)
{
	int rc = -1;

	if (ca_csr_check_key(ca, tpl, X509_REQ_get0_pubkey(req), refusal) != 0)
		goto out;
	if (X509_NAME_entry_count(X509_REQ_get_subject_name(req)) == 0) {
		ca_refuse(refusal, SCEP__V1__FAIL_INFO__FAIL_BAD_REQUEST,
		    "the CSR has an empty subject");
		goto out;
	}
	if (ca_csr_subject_strings(X509_REQ_get_subject_name(req), refusal) !=
	    0)
		goto out;
	if (tpl->fixed_subject != NULL &&
	    X509_NAME_get_index_by_NID(
	        X509_REQ_get_subject_name(req), NID_commonName, -1) < 0) {
		ca_refuse(refusal, SCEP__V1__FAIL_INFO__FAIL_BAD_REQUEST,
		    "template %s takes the CN from the request, and it has "
		    "none",
		    tpl->name);
		goto out;
	}
	if (ca_csr_check_subject_names(tpl, req, refusal) != 0 ||
	    ca_csr_check_extensions(tpl, req, refusal) != 0)
		goto out;
	rc = 0;
out:
	ERR_clear_error();
	return rc;
}

int
ca_csr_check(const struct ca *ca, const uint8_t *der, size_t len, int as_sent,
    X509_REQ **out, const struct ca_template **tpl, struct ca_refusal *refusal)
{
	if (ca_csr_read(ca, der, len, as_sent, out, tpl, refusal) != 0)
		return -1;
	if (ca_csr_rules(ca, *tpl, *out, refusal) != 0) {
		X509_REQ_free(*out);
		*out = NULL;
		return -1;
	}
	return 0;
}

int
ca_names_within(const GENERAL_NAMES *a, const GENERAL_NAMES *b)
{
	for (int i = 0; i < sk_GENERAL_NAME_num(a); i++) {
		int found = 0;

		for (int j = 0; !found && j < sk_GENERAL_NAME_num(b); j++)
			found = GENERAL_NAME_cmp(sk_GENERAL_NAME_value(a, i),
			            sk_GENERAL_NAME_value(b, j)) == 0;
		if (!found)
			return 0;
	}
	return 1;
}
