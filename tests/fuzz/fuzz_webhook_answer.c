/*
 * libFuzzer target: the webhook plugin's reading of the MDM's answer body
 * (judge_answer: JSON by jansson, "allow" and "reason"), which decides
 * whether a device enrolls and puts the MDM's reason in the device's
 * failInfoText; and, the same bytes as text, its URL and Timeout settings
 * (parse_url, parse_timeout). They are static: the plugin's file is
 * included, compiled here as it is in the plugin.
 */
#include "../../plugins/webhook/webhook.c"

#include <stdint.h>

/* `why` is for the device and the log: printable ASCII, terminated. */
static void
check_why(const char *why, size_t whylen)
{
	size_t n = strnlen(why, whylen);

	if (n == whylen)
		abort();
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)why[i] < 0x20 || why[i] == 0x7f)
			abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char answer[WEBHOOK_MAX_ANSWER + 1];
	struct webhook wh;
	enum scepd_verdict v;
	char why[512], err[256], *text;
	long timeout;

	if (size > WEBHOOK_MAX_ANSWER)
		return 0; /* answer_write stops the transfer there */
	memset(&wh, 0, sizeof(wh));
	memcpy(answer, data, size);
	wh.answer = answer;
	wh.answer_len = size;
	v = judge_answer(&wh, 200, why, sizeof(why));
	if (v != SCEPD_VERDICT_ALLOW && v != SCEPD_VERDICT_REFUSE)
		abort();
	if (v == SCEPD_VERDICT_ALLOW ? why[0] != '\0' : why[0] == '\0')
		abort();
	check_why(why, sizeof(why));
	/* Any other status is no verdict, whatever the body says. */
	if (judge_answer(&wh, 403, why, sizeof(why)) !=
	    SCEPD_VERDICT_UNAVAILABLE)
		abort();
	check_why(why, sizeof(why));

	if ((text = malloc(size + 1)) == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (parse_url(&wh, text, err, sizeof(err)) == 0) {
		if (wh.url == NULL || wh.url_shown == NULL ||
		    (strcmp(wh.protocols, "https") != 0 &&
		        (strcmp(wh.protocols, "http") != 0 || !wh.loopback)))
			abort();
	}
	free(wh.url);
	free(wh.url_shown);
	if (parse_timeout(text, &timeout, err, sizeof(err)) == 0 &&
	    (timeout < 1 || timeout > WEBHOOK_MAX_TIMEOUT))
		abort();
	free(text);
	return 0;
}
