/*
 * libFuzzer target: scep_envelope_open, the RA's decryption of a
 * pkcsPKIEnvelope, and scep_envelope_read, its reading of what the
 * decrypted content must hold (the kind chosen by the input's length),
 * with a fixed RA key (and, for the second, an earlier one). The keys
 * below were generated once for this target and are public; the corpus
 * holds envelopes encrypted to their certificates (AES-128/256, 3DES, DES)
 * so mutations reach the decryption.
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

/* An earlier RA encryption pair ([ra] PreviousEncryptionCertificate):
 * seeds encrypted to it reach its key's path. Public, as the one above. */
static const char previous_cert_pem[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIDIzCCAgugAwIBAgIUK+JiafiCWdup+RDdRSXEdcuQ7mswDQYJKoZIhvcNAQEL\n"
    "BQAwIDEeMBwGA1UEAwwVc2NlcGQgZnV6eiBlYXJsaWVyIFJBMCAXDTI2MTIwNjA3\n"
    "Mzc1NloYDzIxMjYxMTEyMDczNzU2WjAgMR4wHAYDVQQDDBVzY2VwZCBmdXp6IGVh\n"
    "cmxpZXIgUkEwggEiMA0GCSqGSIb3DQEBAQUAA4IBDwAwggEKAoIBAQCNEHJFhlSR\n"
    "jMNdypd6vTgWBsP4UWcK3cmydaHreU5Gmf1VLH5egaiI6rK5csCsHBUxYHa7el4E\n"
    "rGNW9pLIQCY7c9cJNrQuKG6CGdnNcrElMxksrzBdrV4tfmmHGxMTQDWRSfArUyZM\n"
    "OPj1qcBEFZsmWObzPMuUDXEYcDFFVt9/ZHx4/Jubde4cUVdhx90uVbugvvPkVv3A\n"
    "E2htgVzwqsyI3tId8fcxhkXElwmpZH7jaz8W5xEiuh345+xvEK1qXgSJdVjunfRe\n"
    "L60/gp99qZqtOj1aOyr4ZnubpaL1BhxKJzH+fX/tzCji7hlSJfmHrHAAZEc0hxsz\n"
    "TOYe984IoeIxAgMBAAGjUzBRMB0GA1UdDgQWBBSiD4Ve/Rolcn/0RwsdiWiWaAO4\n"
    "HDAfBgNVHSMEGDAWgBSiD4Ve/Rolcn/0RwsdiWiWaAO4HDAPBgNVHRMBAf8EBTAD\n"
    "AQH/MA0GCSqGSIb3DQEBCwUAA4IBAQBUx99KJnkE5FhVSfZBz+eIl0coNUVlOr+F\n"
    "zg56SFdnuxvRuo9NhV7MAVXLDlBET/hTsJa6KPpuMupJ8ma4hAinA64jCTyhT+Es\n"
    "MrKfizqf4PdY+rGSl36RYu64OO12rHzIcDJTGzsNOTwv4M39QHyVYv9iu9HHdApi\n"
    "XIWnZvUm02dKF4TdynIeOHl0NEsbJmY+/YwcCgQldZZ9Sh3oVhpcu9cyI7kuGqCh\n"
    "0fElXTkjUOz8hlrLOEIXYA5LG78v8ypX5gLCbG4OYrRcgtDrRvgXZZfZLTRldIbw\n"
    "HF87sNprEfoK79zdi01AVpVdUYQJOVowDJbz9ORR/v13M+zebVS/\n"
    "-----END CERTIFICATE-----\n";

static const char previous_key_pem[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQCNEHJFhlSRjMNd\n"
    "ypd6vTgWBsP4UWcK3cmydaHreU5Gmf1VLH5egaiI6rK5csCsHBUxYHa7el4ErGNW\n"
    "9pLIQCY7c9cJNrQuKG6CGdnNcrElMxksrzBdrV4tfmmHGxMTQDWRSfArUyZMOPj1\n"
    "qcBEFZsmWObzPMuUDXEYcDFFVt9/ZHx4/Jubde4cUVdhx90uVbugvvPkVv3AE2ht\n"
    "gVzwqsyI3tId8fcxhkXElwmpZH7jaz8W5xEiuh345+xvEK1qXgSJdVjunfReL60/\n"
    "gp99qZqtOj1aOyr4ZnubpaL1BhxKJzH+fX/tzCji7hlSJfmHrHAAZEc0hxszTOYe\n"
    "984IoeIxAgMBAAECggEAMUnk05wbInwvqy7lfNJurWuRv8sZmPdjyUJG4FMTYaHe\n"
    "nYsdYIInVCfFaPzKi5iIYydUdS9NeI6Pa0xefy/C7BUOtr5xeItSCY1kx99iPCA9\n"
    "lJpl6OVxua2oy7dPE/Pkg651B35XLFzfyF6WunNeMajwkV7VtxZ3RNW2sYaoMwdx\n"
    "dkOaNxL35Bw7cGUHWh/6A7JMizx+gSaO/+MCkLbDZIeLafAxyTIlkB7dCBSrbyhb\n"
    "gpPba/dGurubz9oIt87rqXasKTLbp0tpiGfQXahItTl7YgX/PmKOyhSPBDdhRBu6\n"
    "Xu37JQ6koqrW9bXD5HBsro2YpqjMTYG14MnM5u2cLQKBgQDGa1tIT9ZVguG12xx9\n"
    "2qTGeVKpC0RZHxpvOUNGch/9hDQ25xv6mrjlS3/jpdhKNk2K+0GtWWPpkJLDA5MZ\n"
    "Tx1Ie3XzGFQm/hJMAgt7UlM9kwj2s58spS6yur5+KLxjMt/6o0xCw7P8g8cSa6t5\n"
    "dD6Innryl6O7bUJPZgb7dNQppwKBgQC2ACh7AjpPWafNTE6bhAn9ZZ9V3W6yvcgP\n"
    "tBdsi9S82SUt5Tfx3RD7bfCOGIvR5VcXfqXZIPcamAsJEoaMoQ2x3adUZgA7PwLu\n"
    "VsWfxqtstAgmoIMjbPdxziPHyW7J93Bft9gmAAGBMs8jPtVZfjlKqCvycUtPg+F6\n"
    "MqfkCvXgZwKBgApFBDR57V3/qC8BaDgbWOvs25pkOuVh9rxK+nBq97znWsx8qbYO\n"
    "zAMSJUxjCQ7OQLUwy/Vs6v7rvKzbQoHM1ncp7LDoUXKzM787W9zGJgjJ02zxXwuw\n"
    "gPo/MBzXfuijeXQ/f3L1Lhujtmn9qKJgodvwV+y2bIMG5Ke3YCUjpteBAoGAHjCC\n"
    "hn0FHRp7GjPZKjTJz22m84BKl32hjPFLnWbIgBbo8ub907He2kYPTBLIRqXrP2tz\n"
    "qUOtmYy07+lRxkwE0Ic69WYCDdHS86QTHgC/eMWYQIgJmLu/g/I0vzQrm3be/hGp\n"
    "2gvQNBUwhOEsVK76Y+bne0zNuD/hC/sRHGOxC2sCgYBpKgQO46U6KTO07uYeWDLk\n"
    "RTbkmB0jPtFqmvf0aeI1dQYynkTWGg4YYRDKB2vSX2LSbO2xE8phTRauJiPMO8CZ\n"
    "bMoAmw/ln+uTU8F7yjgj9HLWv5xSKDigOHDe4gPfPphQJh5Kn0e6yxQ67Erw7nTF\n"
    "daYny2Zz6u4iru+8qmgZMA==\n"
    "-----END PRIVATE KEY-----\n";

static struct scep_ra_key keys[2]; /* the RA's, the earlier one */

/* The certificate and key in PEM `cert` and `key`; -1 if either fails. */
static int
load_pair(const char *cert, const char *key, struct scep_ra_key *out)
{
	BIO *b;

	if ((b = BIO_new_mem_buf(cert, -1)) == NULL)
		return -1;
	out->cert = PEM_read_bio_X509(b, NULL, NULL, NULL);
	BIO_free(b);
	if ((b = BIO_new_mem_buf(key, -1)) == NULL)
		return -1;
	out->key = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
	BIO_free(b);
	return out->cert != NULL && out->key != NULL ? 0 : -1;
}

static int
load_ra(void)
{
	if (keys[0].cert != NULL && keys[1].key != NULL)
		return 0;
	if (scep_init() != SCEP_OK || scep_load_single_des() != SCEP_OK ||
	    load_pair(ra_cert_pem, ra_key_pem, &keys[0]) != 0 ||
	    load_pair(previous_cert_pem, previous_key_pem, &keys[1]) != 0)
		return -1;
	return 0;
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
	if (scep_envelope_open(data, size, keys[0].cert, keys[0].key, &all,
	        &plain, &plain_len, &cipher, &failinfo, &why) == SCEP_OK) {
		if (plain == NULL || plain_len == 0)
			abort();
	} else if (plain != NULL || why == NULL) {
		abort();
	}
	free(plain);
	/* A memory of keys, its path run too (a key seen with other content
	 * fails as any envelope that does not open): one per input, so that
	 * a crash reproduces from its input alone. Read twice, the second
	 * time seen (the same content: it must open as it did). */
	struct scep_wrapped_keys *seen = scep_wrapped_keys_new(64);
	int rc[2];

	if (seen == NULL)
		abort();
	for (int i = 0; i < 2; i++) {
		rc[i] = scep_envelope_read(data, size, keys, 2, &all, seen,
		    kind, &content, &cipher, &failinfo, &why, &detail);
		if (rc[i] == SCEP_OK) {
			if (kind == SCEP_CONTENT_CSR ? content.csr == NULL
			                             : content.issuer == NULL)
				abort();
		} else if (content.csr != NULL || content.issuer != NULL ||
		    why == NULL || detail == NULL) {
			abort();
		}
		scep_content_clear(&content);
	}
	if (rc[0] != rc[1]) /* a resend refused, or a refusal undone */
		abort();
	scep_wrapped_keys_free(seen);
	return 0;
}
