/*
 * What a challenge validator is shown of a CSR: the subject as text in the
 * request's own RDN order (what the device asked for, not RFC 4514's
 * reversed order), and the requested subjectAltNames as "TYPE:value".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/buffer.h>
#include <openssl/x509v3.h>

#include "pki.h"
#include "ra.h"

char *
ra_csr_subject(X509_REQ *csr, struct rpc_arena *arena)
{
	BIO *b = BIO_new(BIO_s_mem());
	BUF_MEM *mem;
	char *out = NULL;
	/* RFC 2253 escaping and separators, without its reversal, and
	 * characters beyond ASCII as UTF-8 (RFC 4514 2.4), not \C3\AB: an
	 * MDM compares the name with its own record of the device
	 * ("Zoë’s iPad"). Every string type is converted to UTF-8. */
	unsigned long flags =
	    XN_FLAG_RFC2253 & ~XN_FLAG_DN_REV & ~ASN1_STRFLGS_ESC_MSB;

	if (b == NULL)
		return NULL;
	if (X509_NAME_print_ex(b, X509_REQ_get_subject_name(csr), 0, flags) >=
	        0 &&
	    BIO_get_mem_ptr(b, &mem) == 1) {
		out = rpc_alloc(arena, mem->length + 1);
		memcpy(out, mem->data, mem->length);
		out[mem->length] = '\0';
	}
	BIO_free(b);
	return out;
}

/* One GENERAL_NAME as "DNS:x" etc.; NULL for kinds not shown. */
static char *
ra_general_name(const GENERAL_NAME *gn, struct rpc_arena *arena)
{
	const char *kind = NULL;
	const ASN1_STRING *s = NULL;
	char ip[64], *out;
	size_t len;

	switch (gn->type) {
	case GEN_DNS:
		kind = "DNS", s = gn->d.dNSName;
		break;
	case GEN_EMAIL:
		kind = "email", s = gn->d.rfc822Name;
		break;
	case GEN_URI:
		kind = "URI", s = gn->d.uniformResourceIdentifier;
		break;
	case GEN_IPADD:
		memcpy(ip, "IP:", 3);
		if (pki_ip_text(gn->d.iPAddress, ip + 3, sizeof(ip) - 3) != 0)
			return NULL;
		return rpc_strdup(arena, ip);
	case GEN_OTHERNAME:
		if (OBJ_obj2nid(gn->d.otherName->type_id) == NID_ms_upn &&
		    gn->d.otherName->value->type == V_ASN1_UTF8STRING)
			kind = "UPN",
			s = gn->d.otherName->value->value.utf8string;
		break;
	default:
		break;
	}
	if (kind == NULL || s == NULL)
		return NULL;
	len = strlen(kind) + 1 + (size_t)ASN1_STRING_length(s) + 1;
	out = rpc_alloc(arena, len);
	snprintf(out, len, "%s:%.*s", kind, ASN1_STRING_length(s),
	    (const char *)ASN1_STRING_get0_data(s));
	/* An embedded NUL would shorten it; control bytes are masked. */
	for (char *p = out; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	return out;
}

size_t
ra_csr_sans(X509_REQ *csr, char ***out, struct rpc_arena *arena)
{
	STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(csr);
	GENERAL_NAMES *names = NULL;
	size_t n = 0;
	int at;

	*out = NULL;
	if (exts == NULL)
		return 0;
	at = X509v3_get_ext_by_NID(exts, NID_subject_alt_name, -1);
	if (at >= 0)
		names = X509V3_EXT_d2i(sk_X509_EXTENSION_value(exts, at));
	if (names != NULL && sk_GENERAL_NAME_num(names) > 0) {
		int count = sk_GENERAL_NAME_num(names);

		*out = rpc_alloc(arena, (size_t)count * sizeof(**out));
		for (int i = 0; i < count; i++) {
			char *s = ra_general_name(
			    sk_GENERAL_NAME_value(names, i), arena);

			if (s != NULL)
				(*out)[n++] = s;
		}
	}
	GENERAL_NAMES_free(names);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	return n;
}
