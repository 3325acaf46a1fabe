/*
 * SignProfile: signs an Apple configuration profile for the frontend, which
 * holds no key, if it is one the frontend makes (profile_check.c). CMS
 * SignedData over the profile as read and written again (binary, content
 * attached, as iOS wants it), SHA-256, by the RA signing certificate and
 * key, with that certificate and the CA chain included so a device can
 * show who signed it.
 */
#include <stdlib.h>

#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <plist/plist.h>

#include "log.h"
#include "profile_check.h"
#include "ra.h"

/* A profile is a few KiB; this bounds what the RA will read. */
#define RA_PROFILE_MAX (256 * 1024)

/* Frees a SignedData after wiping its attached content (the password). */
static void
ra_cms_free_wiped(CMS_ContentInfo *cms)
{
	ASN1_OCTET_STRING **content;

	if (cms == NULL)
		return;
	if ((content = CMS_get0_content(cms)) != NULL && *content != NULL &&
	    (*content)->data != NULL)
		OPENSSL_cleanse((*content)->data, (size_t)(*content)->length);
	CMS_ContentInfo_free(cms);
}

/* DER of the SignedData in a malloc'ed block, or NULL (logged). */
static uint8_t *
ra_sign_profile(
    const struct ra *ra, const uint8_t *content, size_t len, size_t *out_len)
{
	BIO *in = NULL;
	CMS_ContentInfo *cms = NULL;
	uint8_t *der = NULL, *p;
	unsigned int flags = CMS_BINARY | CMS_PARTIAL | CMS_NOSMIMECAP;
	int n;

	if ((in = BIO_new_mem_buf(content, (int)len)) == NULL ||
	    (cms = CMS_sign(NULL, NULL, NULL, NULL, flags)) == NULL ||
	    CMS_add1_signer(
	        cms, ra->sign_cert, ra->sign_key, EVP_sha256(), flags) == NULL)
		goto fail;
	/* The chain after the signer, which CMS_add1_signer added. */
	for (int i = 0; i < sk_X509_num(ra->ca_chain); i++) {
		X509 *c = sk_X509_value(ra->ca_chain, i);

		if (X509_cmp(c, ra->sign_cert) != 0 && !CMS_add1_cert(cms, c))
			goto fail;
	}
	if (!CMS_final(cms, in, NULL, flags) ||
	    (n = i2d_CMS_ContentInfo(cms, NULL)) <= 0 ||
	    (der = malloc((size_t)n)) == NULL)
		goto fail;
	p = der;
	*out_len = (size_t)i2d_CMS_ContentInfo(cms, &p);
	ra_cms_free_wiped(cms);
	BIO_free(in);
	return der;
fail:
	log_openssl(
	    LOG_LEVEL_ERROR, NULL, "cannot sign a configuration profile");
	free(der);
	ra_cms_free_wiped(cms);
	BIO_free(in);
	return NULL;
}

void
ra_handle_sign_profile(void *worker, const Scep__V1__Request *req,
    Scep__V1__Reply *reply, struct rpc_arena *arena)
{
	const struct ra *ra = ((struct ra_worker *)worker)->ra;
	const ProtobufCBinaryData *content = &req->sign_profile->content;
	Scep__V1__SignProfileReply *body;
	uint8_t *der;
	size_t der_len = 0;
	char why[160], *checked = NULL;
	uint32_t checked_len = 0;

	if (content->len == 0 || content->len > RA_PROFILE_MAX) {
		log_warn("refused to sign a profile of %zu bytes (1 to %d)",
		    content->len, RA_PROFILE_MAX);
		reply->status = SCEP__V1__STATUS__STATUS_BAD_REQUEST;
		reply->error = content->len == 0 ? "empty profile"
		                                 : "profile too large to sign";
		return;
	}
	/* Only a SCEP enrollment for this CA, as the frontend makes it: a
	 * frontend taken over gets no other profile signed (profile_check.c). */
	if (ra_profile_check(content->data, content->len, ra->ca_chain,
	        &checked, &checked_len, why, sizeof(why)) != 0) {
		log_event(LOG_LEVEL_WARN, NULL, req->id,
		    "refused to sign a configuration profile from %s: %s",
		    req->origin != NULL ? req->origin : "a caller", why);
		reply->status = SCEP__V1__STATUS__STATUS_REFUSED;
		reply->error = rpc_strdup(arena, why);
		return;
	}
	der = ra_sign_profile(
	    ra, (const uint8_t *)checked, checked_len, &der_len);
	OPENSSL_cleanse(checked, checked_len);
	plist_to_xml_free(checked);
	if (der == NULL) {
		reply->status = SCEP__V1__STATUS__STATUS_INTERNAL;
		reply->error = "cannot sign the profile";
		return;
	}
	/* The profile carries a one-time password in clear. */
	rpc_adopt_secret(arena, der, der_len);
	body = rpc_alloc(arena, sizeof(*body));
	scep__v1__sign_profile_reply__init(body);
	body->signed_data.data = der;
	body->signed_data.len = der_len;
	reply->body_case = SCEP__V1__REPLY__BODY_SIGN_PROFILE;
	reply->sign_profile = body;
	log_event(LOG_LEVEL_INFO, NULL, req->id,
	    "signed a configuration profile of %u bytes", checked_len);
}
