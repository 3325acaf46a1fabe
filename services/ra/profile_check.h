#ifndef SCEPD_RA_PROFILE_CHECK_H
#define SCEPD_RA_PROFILE_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/x509.h>

/*
 * Whether the XML plist `xml` is a profile the frontend makes: one SCEP
 * payload, certificate payloads of `chain` (roots self-signed), no key
 * the frontend does not write. 0 if so, with the profile as read written
 * again in `out` (what to sign; it holds the password: wipe it, then
 * plist_to_xml_free); else -1 and why in `why`.
 */
int
ra_profile_check(const uint8_t *xml, size_t len, const STACK_OF(X509) * chain,
    char **out, uint32_t *out_len, char *why, size_t whylen);

#endif
