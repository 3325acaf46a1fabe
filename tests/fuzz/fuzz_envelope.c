/*
 * libFuzzer target: scep_envelope_open, the RA's decryption of a
 * pkcsPKIEnvelope, and scep_envelope_read, its reading of what the
 * decrypted content must hold (the kind chosen by the input's length),
 * with a fixed RA key. The key below was generated once for
 * this target and is public; the corpus holds envelopes encrypted to its
 * certificate (AES-128/256, 3DES, DES) so mutations reach the decryption.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <openssl/bio.h>
#include <openssl/pem.h>

#include "scep.h"

static const char ra_cert_pem[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIDEzCCAfugAwIBAgIUWXNGgJt+fh05osGN9bU1pbcaO+AwDQYJKoZIhvcNAQEL\n"
    "BQAwGDEWMBQGA1UEAwwNc2NlcGQgZnV6eiBSQTAgFw0yNjExMjUwNjQ4MTVaGA8y\n"
    "MTI2MTEwMTA2NDgxNVowGDEWMBQGA1UEAwwNc2NlcGQgZnV6eiBSQTCCASIwDQYJ\n"
    "KoZIhvcNAQEBBQADggEPADCCAQoCggEBAIzBwopNPLvdBceBgRZD5Y5G2kCssGBO\n"
    "v7oAUGtJfSiH4B/XXrhJVIu/qBEHZCxqcv4WdZLbxyhSHJrKaGZe7D3PG4OwEHMY\n"
    "AEvSBZtaHGlTK5DF2SaiwJ/UQAO0UBgFBTiUOZqwVoQBRGaKM6P+gR2DIa5W+l3Q\n"
    "GQFVDu1eMuOruZcV3S6eVPqSUCDbyNjsWZ8vP5D8medPdDMvL34TWWLobDK8sy83\n"
    "jlku2uo00rnwq8Wtj5J++xiPENemqUqRFVDjJ+MKGrFRRfdRIuDiojIO3ZPnWCAE\n"
    "FZ0/oUWhHXh4fP0ZAbQcmZv9Ht9vCHhSUhEF0PQXTg5GwuVyNFSdJhMCAwEAAaNT\n"
    "MFEwHQYDVR0OBBYEFI9MdNQQYpF2Ew/XEKSwH2X7PNHPMB8GA1UdIwQYMBaAFI9M\n"
    "dNQQYpF2Ew/XEKSwH2X7PNHPMA8GA1UdEwEB/wQFMAMBAf8wDQYJKoZIhvcNAQEL\n"
    "BQADggEBAHR7AEdNwLhI6z/R4oYtWVyDZb9PyktroBwBZThFMLbJEBQTo8AvzcmI\n"
    "ID5A9cXiph/03OEbJcYpJqOtm5gXT5UcvV5gIYYK+kldGg62/o94/tk1mBVj42SY\n"
    "9WN60ruYdsSQ6vzQS0W1oKkfXUl9vC49Uy4oPGFk+gXheLCZhb+uQ2I6I0FMLQ9t\n"
    "djladAT5UYzg6JuBlf4HUfGzzdd88iKzcrHoxnYd+8uSWsk8WEg4149h0HZxm8XM\n"
    "26HARGuWgZ//uXKG/1tClBhNvgAjtt5Grx8umxuuQwo8K4rnWaD5Ie9D3Jx/fO1d\n"
    "2k3dLe64UX3+MCadQXGFexDsYApdsQA=\n"
    "-----END CERTIFICATE-----\n";

static const char ra_key_pem[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQCMwcKKTTy73QXH\n"
    "gYEWQ+WORtpArLBgTr+6AFBrSX0oh+Af1164SVSLv6gRB2QsanL+FnWS28coUhya\n"
    "ymhmXuw9zxuDsBBzGABL0gWbWhxpUyuQxdkmosCf1EADtFAYBQU4lDmasFaEAURm\n"
    "ijOj/oEdgyGuVvpd0BkBVQ7tXjLjq7mXFd0unlT6klAg28jY7FmfLz+Q/JnnT3Qz\n"
    "Ly9+E1li6GwyvLMvN45ZLtrqNNK58KvFrY+SfvsYjxDXpqlKkRVQ4yfjChqxUUX3\n"
    "USLg4qIyDt2T51ggBBWdP6FFoR14eHz9GQG0HJmb/R7fbwh4UlIRBdD0F04ORsLl\n"
    "cjRUnSYTAgMBAAECggEAKtIZXlyv8NEFHJQT0tO2BsocRJekkq/yWOIWlQUG2+k2\n"
    "MEmjabn5TAhy1zdh7Lc3o3/upc5RsL0GMbsI9rfC8+zJSI8r+e+fy3EpvoCz6wDf\n"
    "3IusC7pwkk8OaHIW+a+xTmydd6dUspT2G6HIowfefL1zZifUw+x2Zvba8zB4l9Un\n"
    "JWKyHOwriFlmdoVhR1szYKCz9+vfNfZQ9FeQ+YkXeVaRjOpTvnJFuF9uFZMCV006\n"
    "U9x1+mrGfBLMwJn09jGzCMXgT0US1hevpL3oNa7hAhFzWs9JbMQHhwlyI1gKxNqO\n"
    "RvfFnyFab58grDg0iQ89Pp4Rqj53Sgr2ZS69/2+WIQKBgQDGUWJKd2tHuqeeBtWf\n"
    "SiIuwucgSkPdC7mpwte8hKVKNCP/XtPhBs2xgrubsXt/WvRBbdSgw074D/ut6eHP\n"
    "/bJXN428na3W9jFX3oxqUvI69PP0RDfDdDRLAyTWZhcfUpUgW+vPgaGAQoQY3Nzu\n"
    "kjHW9mMubFGkN6gxLjUx47CU8wKBgQC1smu7jVfo8AN3eye8RBlWLciMQVZV8j9i\n"
    "XHVZhh5KN0/U74sApFvqh6K0YZlpob9SB3vYEIpgIFh3IKh4qd559pOb7uI3wwcM\n"
    "nmAu8HKHcUF9kqbXDCh8u3AeiSX6xbsOFG9v6Hh/f9uELDMwquEHCZ47x5ef7p1H\n"
    "kZBJzD3yYQKBgHFLjRt9nYwc1iUxQlj9wQl1zxRjWOGvESIqbZUFMmhx4R7CzciA\n"
    "WoJObV9ExYi8LU4zsIUnDrYoa1+vfZGVHY0174MRkX58pzPLr+wN9tQ3nCav0iuW\n"
    "90jjQug46ny6cPdLjCu/osPjPBP4GT8xxcdIeuDKgNmP8kYmX71glkCBAoGAXzPc\n"
    "lQoLTOctudYSzOeVqv0UPsEhXqkuovg1GLJYfqSatMTKvYxhCPMGwqL9AkcY+v8m\n"
    "2eBY0ONB1zGKdKb1Bky3rRWu/G6469i0JwQfzm3+VbCYsMcTE8AWkDlmaA5g45C7\n"
    "jxRsxsmUmJ2cONzgSZK1kTcUcF1TlaNkyfY1YyECgYBEzz4FNKzx2cTR94vX7tI1\n"
    "a5cAASAFleHRwfJuBMDVsyiiOmT8LZVkR9a6iQrJrlk07p966izFnJq0PJjGJCRY\n"
    "q3NJW73EvWWW7vJ/qqd4j9Dd+sAPpWbFE7VgUWvlDCd2hHDY9n3rwAAX545Yq2ny\n"
    "V45EPaiassThkT6aVw9qwg==\n"
    "-----END PRIVATE KEY-----\n";

static X509 *ra_cert;
static EVP_PKEY *ra_key;

static int
load_ra(void)
{
	BIO *b;

	if (ra_cert != NULL && ra_key != NULL)
		return 0;
	if (scep_init() != SCEP_OK || scep_load_single_des() != SCEP_OK)
		return -1;
	if ((b = BIO_new_mem_buf(ra_cert_pem, -1)) == NULL)
		return -1;
	ra_cert = PEM_read_bio_X509(b, NULL, NULL, NULL);
	BIO_free(b);
	if ((b = BIO_new_mem_buf(ra_key_pem, -1)) == NULL)
		return -1;
	ra_key = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
	BIO_free(b);
	return ra_cert != NULL && ra_key != NULL ? 0 : -1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Everything allowed, so the decryption code is reached for all. */
	static const struct scep_alg_policy all = {1, 1, 1};
	uint8_t *plain = NULL;
	size_t plain_len = 0;
	const char *why = NULL, *detail = NULL;
	struct scep_content content;
	enum scep_content_kind kind =
	    (enum scep_content_kind)(size % SCEP_CONTENT_KINDS);
	int cipher, failinfo;

	if (load_ra() != 0)
		abort();
	if (scep_envelope_open(data, size, ra_cert, ra_key, &all, &plain,
	        &plain_len, &cipher, &failinfo, &why) == SCEP_OK) {
		if (plain == NULL || plain_len == 0)
			abort();
	} else if (plain != NULL || why == NULL) {
		abort();
	}
	free(plain);
	if (scep_envelope_read(data, size,
	        &(const struct scep_ra_key){ra_cert, ra_key}, 1, &all, kind,
	        &content, &cipher, &failinfo, &why, &detail) == SCEP_OK) {
		if (kind == SCEP_CONTENT_CSR ? content.csr == NULL
		                             : content.issuer == NULL)
			abort();
	} else if (content.csr != NULL || content.issuer != NULL ||
	    why == NULL || detail == NULL) {
		abort();
	}
	scep_content_clear(&content);
	return 0;
}
