/*
 * The NDES-style admin page (/certsrv/mscep_admin/): after HTTP Basic
 * authentication against AdminPasswordFile, a fresh one-time challenge
 * password from the challenge service and the CA certificate's thumbprints,
 * as HTML (holding NDES's own lines for scripts written for NDES) or
 * (Accept: application/json) as JSON.
 *
 * Answers: 401 without valid credentials; 403 for a client that is not on
 * loopback (plain HTTP would carry the password in clear, so no credentials
 * are even asked for) and for a user without the "enroll" right; 429 with
 * Retry-After while ADMIN_CHECKS_AT_ONCE password checks run or after
 * ADMIN_FAIL_LIMIT failed logins from the address (struct admin_guard);
 * 503 with Retry-After when the challenge service does not answer. "The
 * password cache is full." is shown on the HTML page with status 200, as
 * NDES does, and is a 429 {"error": ...} in JSON; any other refusal of the
 * challenge service (its configuration's, not to be waited out) is a 409.
 */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>
#include <openssl/asn1.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "frontend.h"
#include "log.h"
#include "passwd.h"

/* The challenge service's refusal that empties as passwords are used or
 * expire (services/challenge/issue.c): the only one answered 429. */
#define ADMIN_CACHE_FULL "The password cache is full."

static const struct http_header admin_headers[] = {
    {"Cache-Control", "no-store"},
    {"Content-Security-Policy",
        "default-src 'none'; style-src 'unsafe-inline'; "
        "form-action 'self'"},
    {"X-Frame-Options", "DENY"},
    {"Referrer-Policy", "no-referrer"},
    {NULL, NULL},
};

/* What the page shows. Thumbprints are "" when the RA did not answer. */
struct admin_page {
	const char *user;
	char sha256[65], sha1[41], md5[33];
	const char *password; /* NULL: refused, see error */
	const char *error;
	int cache_full; /* the refusal is ADMIN_CACHE_FULL */
	int64_t expires_at;
	unsigned int validity_minutes;
	const char *single_set_by; /* UseSinglePassword: who set it */
};

static void
thumbprint(
    const EVP_MD *md, const uint8_t *der, size_t len, char *out, size_t outlen)
{
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	out[0] = '\0';
	if (EVP_Digest(der, len, d, &n, md, NULL) != 1) {
		log_openssl(
		    LOG_LEVEL_WARN, NULL, "cannot hash the CA certificate");
		return;
	}
	for (unsigned int i = 0; i < n && 2 * i + 2 < outlen; i++)
		snprintf(out + 2 * i, 3, "%02X", d[i]);
}

static int
has_right(const char *rights, const char *want)
{
	size_t n = strlen(want);

	for (const char *p = rights; *p != '\0';) {
		size_t len = strcspn(p, ",");
		const char *q = p;

		while (len > 0 && *q == ' ')
			q++, len--;
		while (len > 0 && q[len - 1] == ' ')
			len--;
		if (len == n && strncmp(q, want, n) == 0)
			return 1;
		p += strcspn(p, ",");
		if (*p == ',')
			p++;
	}
	return 0;
}

static void
html_escape(FILE *f, const char *s)
{
	for (; *s != '\0'; s++) {
		switch (*s) {
		case '<':
			fputs("&lt;", f);
			break;
		case '>':
			fputs("&gt;", f);
			break;
		case '&':
			fputs("&amp;", f);
			break;
		case '"':
			fputs("&quot;", f);
			break;
		case '\'':
			fputs("&#39;", f);
			break;
		default:
			fputc(*s, f);
		}
	}
}

/* Hex in groups of `group` digits: "AB CD EF ..." (2) for scepd's
 * thumbprints, "E79F8AD3 73F7D8E0 ..." (8) as NDES prints its own. */
static void
html_hex_grouped(FILE *f, const char *hex, size_t group)
{
	for (size_t i = 0; hex[i] != '\0'; i++) {
		if (i > 0 && i % group == 0)
			fputc(' ', f);
		fputc(hex[i], f);
	}
}

static const char admin_style[] =
    "body{font-family:system-ui,-apple-system,\"Segoe UI\",Roboto,"
    "sans-serif;max-width:46rem;margin:2.5rem auto;padding:0 1rem;"
    "color:#1b1b1b;line-height:1.5}"
    "h1{font-size:1.4rem;font-weight:600;border-bottom:3px solid #0067b8;"
    "padding-bottom:.4rem}"
    "dt{font-weight:600;margin-top:1.2rem}"
    "dd{margin:.3rem 0 0 0}"
    "code,.ndes b{font-family:ui-monospace,Consolas,monospace;"
    "background:#f2f2f2;padding:.15rem .4rem;border-radius:4px;"
    "word-break:break-all}"
    /* NDES's "<P> label: <B> value </B>" lines look like the form's
     * <dt> and <dd>: the empty ::after item takes a row of its own, so
     * the value (an .alg before it) goes below the label. */
    ".ndes p{display:flex;flex-wrap:wrap;align-items:baseline;"
    "column-gap:.3rem;margin:1.2rem 0 0;font-weight:600}"
    ".ndes p::after{content:\"\";flex-basis:100%;order:1}"
    ".ndes .alg{order:2;font-weight:400}"
    ".ndes b{order:3;font-weight:400;margin-top:.3rem}"
    ".fp{margin:.3rem 0 0}"
    ".pw b{font-size:1.7rem;letter-spacing:.06em;padding:.3rem .7rem}"
    ".alg{display:inline-block;min-width:5rem;color:#555}"
    ".err{background:#fde7e9;border-left:4px solid #c50f1f;"
    "padding:.6rem 1rem}"
    ".note{color:#555;font-size:.9rem;margin-top:2rem}";

static char *
admin_html(const struct admin_page *pg, size_t *len)
{
	char *buf = NULL, when[32];
	FILE *f = open_memstream(&buf, len);
	time_t t = (time_t)pg->expires_at;
	struct tm tm;

	if (f == NULL)
		return NULL;
	fprintf(f,
	    "<!DOCTYPE html>\n<html lang=\"en\"><head>"
	    "<meta name=\"viewport\" content=\"width=device-width, "
	    "initial-scale=1\"><title>Network Device Enrollment Service"
	    "</title><style>%s</style></head><body>\n" NDES_PAGE_INTRO,
	    admin_style);
	if (pg->single_set_by != NULL) {
		fputs("<p>This server uses a single password for every device "
		      "(UseSinglePassword = 1). It was set by ",
		    f);
		html_escape(f, pg->single_set_by);
		fputs(" and is stored only as a keyed hash, so it cannot be "
		      "shown here.</p>\n",
		    f);
	} else if (pg->password == NULL) {
		fputs("<p class=\"err\">", f);
		html_escape(f, pg->error);
		fputs("</p>\n", f);
		if (pg->cache_full)
			fputs("<p>You can wait until a password is used or "
			      "expires, then refresh this page.</p>\n",
			    f);
	} else
		fputs("<p>To complete certificate enrollment for your network "
		      "device you will need the following information:</p>\n",
		    f);
	/*
	 * The thumbprint and the password in NDES's own lines, byte for byte
	 * up to their </B> ("<P> The enrollment challenge password is: <B>
	 * ... </B>"), which scripts written for NDES look for (Fleet's NDES
	 * proxy, for one).
	 * NDES's thumbprint is the MD5 of the CA certificate: only a display
	 * thumbprint of a public certificate, to compare with what such a
	 * script or an NDES guide expects; SHA-256 and SHA-1 follow it.
	 */
	if (pg->sha256[0] != '\0') {
		fputs("<div class=\"ndes\">\n<P> The thumbprint (hash value) "
		      "for the CA certificate is: <B> ",
		    f);
		html_hex_grouped(f, pg->md5, 8);
		fputs(" </B> <span class=\"alg\">MD5</span></P>\n</div>\n"
		      "<p class=\"fp\"><span class=\"alg\">SHA-256</span> "
		      "<code>",
		    f);
		html_hex_grouped(f, pg->sha256, 2);
		fputs("</code></p>\n<p class=\"fp\"><span class=\"alg\">"
		      "SHA-1</span> <code>",
		    f);
		html_hex_grouped(f, pg->sha1, 2);
		fputs("</code></p>\n", f);
	} else
		fputs("<div class=\"ndes\"><p>The thumbprint (hash value) for "
		      "the CA certificate is:</p></div>\n<p class=\"fp\">"
		      "unavailable: the RA did not answer; refresh in a "
		      "moment.</p>\n",
		    f);
	if (pg->password != NULL && pg->single_set_by == NULL) {
		fputs("<div class=\"ndes pw\">\n<P> The enrollment challenge "
		      "password is: <B> ",
		    f);
		html_escape(f, pg->password);
		fputs(" </B></P>\n</div>\n", f);
		gmtime_r(&t, &tm);
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M UTC", &tm);
		fprintf(f,
		    "<p>This password can be used only once and will expire "
		    "within %u minutes.</p>\n<p>Each enrollment requires a new "
		    "challenge password. You can refresh this web page to "
		    "obtain a new challenge password.</p>\n",
		    pg->validity_minutes);
		/* A plain GET form (no script) with the profile's own query
		 * parameters, relative to AdminPath (which ends in '/'). */
		fputs("<form method=\"get\" action=\"profile.mobileconfig\">"
		      "<dl>\n<dt>Download an Apple configuration profile"
		      "</dt>\n<dd>For an iPhone, iPad or Mac: the SCEP "
		      "settings, this CA to trust, and a one-time password "
		      "of its own (not the one above).</dd>\n"
		      "<dd><label><span class=\"alg\">Subject</span> <input "
		      "name=\"subject\" value=\"CN=device\" size=\"36\" "
		      "required></label></dd>\n<dd><label><span class=\"alg\">"
		      "Key size</span> <select name=\"keysize\"><option "
		      "selected>2048</option><option>"
		      "4096</option></select></label></dd>\n<dd><label><span "
		      "class=\"alg\">Key usage</span> <select name=\"usage\">"
		      "<option value=\"5\" selected>signing and encryption"
		      "</option><option value=\"1\">signing</option>"
		      "<option value=\"4\">encryption</option></select>"
		      "</label></dd>\n<dd><button type=\"submit\" "
		      "id=\"profile\">Download an Apple configuration "
		      "profile</button></dd>\n</dl></form>\n",
		    f);
		fprintf(f, "<p class=\"note\">Expires at %s. Issued to ", when);
		html_escape(f, pg->user);
		fputs(".</p>\n", f);
	}
	fputs("</body></html>\n", f);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

/*
 * The page as NDES serves it: UTF-16, little-endian, after a byte-order
 * mark. Scripts written for NDES decode it so (Fleet's NDES proxy, and
 * others' `decode("UTF-16")`): UTF-8 read as UTF-16 is nothing they can
 * match. `html` (*len bytes; it holds the password) is wiped and freed;
 * a byte that begins no UTF-8 character (an account name from a
 * hand-edited passwd file) becomes U+FFFD. NULL when out of memory.
 */
static char *
admin_utf16(char *html, size_t *len)
{
	size_t n = *len, o = 0;
	/* Each UTF-8 byte gives at most 2 bytes (a 4-byte character, a
	 * surrogate pair: 4). */
	unsigned char *out = n < (SIZE_MAX - 2) / 2 ? malloc(2 + 2 * n) : NULL;

	if (out != NULL) {
		out[o++] = 0xFF;
		out[o++] = 0xFE;
	}
	for (size_t i = 0; out != NULL && i < n;) {
		unsigned long cp, unit[2];
		int k = UTF8_getc((const unsigned char *)html + i,
		        n - i > INT_MAX ? INT_MAX : (int)(n - i), &cp),
		    units = 1;

		if (k <= 0 || cp > 0x10FFFF) {
			cp = 0xFFFD;
			k = 1;
		}
		i += (size_t)k;
		unit[0] = cp;
		if (cp >= 0x10000) {
			unit[0] = 0xD800 + ((cp - 0x10000) >> 10);
			unit[1] = 0xDC00 + ((cp - 0x10000) & 0x3FF);
			units = 2;
		}
		for (int u = 0; u < units; u++) {
			out[o++] = (unsigned char)(unit[u] & 0xFF);
			out[o++] = (unsigned char)(unit[u] >> 8);
		}
	}
	OPENSSL_cleanse(html, n);
	free(html);
	*len = o;
	return (char *)out;
}

static char *
admin_json(const struct admin_page *pg)
{
	json_t *o;
	char when[32], *out;
	time_t t = (time_t)pg->expires_at;
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (pg->single_set_by != NULL)
		o = json_pack("{s:b, s:s, s:s?, s:s?, s:s?}", "single", 1,
		    "set_by", pg->single_set_by, "ca_thumbprint_sha256",
		    pg->sha256[0] ? pg->sha256 : NULL, "ca_thumbprint_sha1",
		    pg->sha1[0] ? pg->sha1 : NULL, "ca_thumbprint_md5",
		    pg->md5[0] ? pg->md5 : NULL);
	else
		o = json_pack("{s:s, s:s, s:i, s:s?, s:s?, s:s?}", "password",
		    pg->password, "expires_at", when, "validity_minutes",
		    (int)pg->validity_minutes, "ca_thumbprint_sha256",
		    pg->sha256[0] ? pg->sha256 : NULL, "ca_thumbprint_sha1",
		    pg->sha1[0] ? pg->sha1 : NULL, "ca_thumbprint_md5",
		    pg->md5[0] ? pg->md5 : NULL);
	if (o == NULL)
		return NULL;
	out = json_dumps(o, JSON_INDENT(2));
	json_decref(o);
	return out;
}

enum MHD_Result
admin_json_error_after(struct MHD_Connection *c, struct request *r,
    unsigned int status, unsigned int retry_after_s, const char *error)
{
	char secs[16];
	const struct http_header retry[] = {
	    {"Retry-After", secs}, {"Cache-Control", "no-store"}, {NULL, NULL}};
	json_t *o = json_pack("{s:s}", "error", error);
	char *s = o != NULL ? json_dumps(o, JSON_INDENT(2)) : NULL;
	enum MHD_Result ret;

	json_decref(o);
	if (s == NULL)
		return MHD_NO;
	snprintf(secs, sizeof(secs), "%u", retry_after_s);
	ret = http_respond(c, r, status, "application/json", s, strlen(s),
	    retry_after_s > 0 ? retry : admin_headers);
	free(s);
	return ret;
}

enum MHD_Result
admin_json_error(struct MHD_Connection *c, struct request *r,
    unsigned int status, const char *error)
{
	return admin_json_error_after(c, r, status,
	    status == MHD_HTTP_SERVICE_UNAVAILABLE ? 5 : 0, error);
}

/* `error` (one line) as JSON or as text. */
static enum MHD_Result
admin_error(struct MHD_Connection *c, struct request *r, int json,
    unsigned int status, const char *error)
{
	char text[512];

	if (json)
		return admin_json_error(c, r, status, error);
	snprintf(text, sizeof(text), "%s\n", error);
	return http_text(c, r, status, text);
}

/* Asks the challenge service; fills pg, or answers the error itself. */
static int
admin_issue(struct frontend *fe, struct MHD_Connection *c, struct request *r,
    struct admin_page *pg, int json, const char *pool, Scep__V1__Reply **rep,
    enum MHD_Result *ret)
{
	Scep__V1__Request req = SCEP__V1__REQUEST__INIT;
	Scep__V1__ChallengeIssueRequest body =
	    SCEP__V1__CHALLENGE_ISSUE_REQUEST__INIT;
	enum upstream_result res;
	const char *error;

	body.issued_by = (char *)pg->user;
	body.client_addr = r->client;
	body.pool = (char *)pool;
	req.body_case = SCEP__V1__REQUEST__BODY_CHALLENGE_ISSUE;
	req.challenge_issue = &body;
	res = upstream_call(fe, UPSTREAM_CHALLENGE, &req,
	    SCEP__V1__REPLY__BODY_CHALLENGE_ISSUE, rep);
	switch (res) {
	case UPSTREAM_OK:
		if ((*rep)->challenge_issue->has_single &&
		    (*rep)->challenge_issue->single) {
			pg->single_set_by =
			    (*rep)->challenge_issue->single_set_by != NULL
			    ? (*rep)->challenge_issue->single_set_by
			    : "?";
			pg->password = "";
			return 0;
		}
		pg->password = (*rep)->challenge_issue->password;
		pg->expires_at = (*rep)->challenge_issue->expires_at;
		pg->validity_minutes =
		    (*rep)->challenge_issue->validity_minutes;
		log_info("admin: %s from %s got a challenge password valid %u "
		         "minutes",
		    pg->user, r->client, pg->validity_minutes);
		return 0;
	case UPSTREAM_REFUSED:
		/* Shown on the page; the caller picks the status. */
		pg->error = (*rep)->error != NULL ? (*rep)->error
		                                  : "No password was issued.";
		pg->cache_full = strcmp(pg->error, ADMIN_CACHE_FULL) == 0;
		log_warn("admin: no challenge password for %s: %s", pg->user,
		    pg->error);
		return 0;
	case UPSTREAM_RATE_LIMITED:
		error = (*rep)->error != NULL ? (*rep)->error
		                              : "Too many requests.";
		log_warn(
		    "admin: no challenge password for %s: %s", pg->user, error);
		*ret = http_too_many(c, r,
		    (*rep)->has_retry_after_s ? (*rep)->retry_after_s : 60,
		    error);
		return -1;
	case UPSTREAM_BAD_REQUEST:
		error = (*rep)->error != NULL ? (*rep)->error
		                              : "The request was refused.";
		log_warn(
		    "admin: no challenge password for %s: %s", pg->user, error);
		*ret = admin_error(c, r, json, MHD_HTTP_BAD_REQUEST, error);
		return -1;
	case UPSTREAM_UNAVAILABLE:
		*ret = json
		    ? admin_json_error(c, r, MHD_HTTP_SERVICE_UNAVAILABLE,
		          "The challenge service did not answer; retry "
		          "in a few seconds.")
		    : http_unavailable(c, r,
		          "The challenge service did not answer; retry "
		          "in a few seconds.\n");
		return -1;
	default:
		*ret = http_text(c, r, MHD_HTTP_INTERNAL_SERVER_ERROR,
		    "Internal server error; the server log says more.\n");
		return -1;
	}
}

int
admin_wants_json(struct MHD_Connection *c)
{
	const char *accept = MHD_lookup_connection_value(
	    c, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT);

	return accept != NULL && strcasestr(accept, "application/json") != NULL;
}

int
admin_answers_json(
    const struct frontend *fe, struct MHD_Connection *c, const char *url)
{
	const char *sub = admin_subpath(fe, url);

	if (sub == NULL)
		return 0;
	return strncmp(sub, "api/", 4) == 0 ||
	    (sub[0] == '\0' && admin_wants_json(c));
}

static enum MHD_Result
admin_unauthorized(struct MHD_Connection *c, struct request *r)
{
	static const struct http_header h[] = {
	    {"WWW-Authenticate", "Basic realm=\"scepd\", charset=\"UTF-8\""},
	    {"Cache-Control", "no-store"},
	    {NULL, NULL},
	};
	static const char text[] = "Authentication required.\n";

	return http_respond(c, r, MHD_HTTP_UNAUTHORIZED,
	    "text/plain; charset=utf-8", text, sizeof(text) - 1, h);
}

/* A fresh password and the CA thumbprints, as a page or JSON. */
static enum MHD_Result
admin_password(struct frontend *fe, struct MHD_Connection *c, struct request *r,
    const char *user, const char *pool, int json)
{
	struct admin_page pg;
	struct cacert cc = {0};
	Scep__V1__Reply *rep = NULL;
	char err[256], *out = NULL;
	size_t len = 0;
	unsigned int status = MHD_HTTP_OK;
	int handed_out = 0;
	enum MHD_Result ret = MHD_NO;

	memset(&pg, 0, sizeof(pg));
	pg.user = user;
	if (cache_get_cacert(fe, &cc, CACERT_CERTS, 1, err, sizeof(err)) ==
	    UPSTREAM_OK) {
		thumbprint(EVP_sha256(), cc.ca_der, cc.ca_der_len, pg.sha256,
		    sizeof(pg.sha256));
		thumbprint(EVP_sha1(), cc.ca_der, cc.ca_der_len, pg.sha1,
		    sizeof(pg.sha1));
		thumbprint(EVP_md5(), cc.ca_der, cc.ca_der_len, pg.md5,
		    sizeof(pg.md5));
	} else
		log_warn("admin: no CA thumbprint to show: %s", err);
	if (admin_issue(fe, c, r, &pg, json, pool, &rep, &ret) != 0)
		goto out;
	if (pg.single_set_by != NULL && strcmp(pool, "mdm") == 0) {
		/* An MDM asked for a password to push: a 200 without one
		 * would be pushed as "null". */
		ret = admin_json_error(c, r, MHD_HTTP_CONFLICT,
		    "UseSinglePassword = 1: every device uses the single "
		    "password, no one-time password is issued");
		goto out;
	}
	/* A full cache empties as passwords are used or expire (NDES shows
	 * it on a page of status 200); any other refusal is the
	 * configuration's: no point in coming back. */
	if (pg.password == NULL && json) {
		ret = pg.cache_full
		    ? admin_json_error_after(
		          c, r, MHD_HTTP_TOO_MANY_REQUESTS, 60, pg.error)
		    : admin_json_error(c, r, MHD_HTTP_CONFLICT, pg.error);
		goto out;
	}
	if (pg.password == NULL && !pg.cache_full)
		status = MHD_HTTP_CONFLICT;
	out = json ? admin_json(&pg) : admin_html(&pg, &len);
	if (out != NULL && !json)
		out = admin_utf16(out, &len);
#ifdef SCEPD_TEST_HOOKS
	/* Test builds only: the answer not made, as with no memory
	 * (test_admin_api). */
	if (out != NULL && getenv("SCEPD_TEST_ADMIN_RENDER_FAIL") != NULL) {
		OPENSSL_cleanse(out, json ? strlen(out) : len);
		free(out);
		out = NULL;
	}
#endif
	if (out == NULL) {
		ret = http_text(
		    c, r, MHD_HTTP_INTERNAL_SERVER_ERROR, "Out of memory.\n");
		goto out;
	}
	if (json)
		len = strlen(out);
	ret = http_respond_secret(c, r, status,
	    json ? "application/json" : "text/html; charset=utf-16", out, len,
	    admin_headers);
	handed_out = ret == MHD_YES;
out:
	/* A one-time password issued, not the single one (shown as ""). */
	if (pg.password != NULL && pg.password[0] != '\0' &&
	    pg.single_set_by == NULL && !handed_out)
		admin_withdraw(fe, user, pg.password,
		    json ? "the MDM API" : "the admin page");
	if (out != NULL) {
		OPENSSL_cleanse(out, len);
		free(out);
	}
	if (rep != NULL) {
		if (rep->body_case == SCEP__V1__REPLY__BODY_CHALLENGE_ISSUE &&
		    rep->challenge_issue->password != NULL)
			OPENSSL_cleanse(rep->challenge_issue->password,
			    strlen(rep->challenge_issue->password));
		scep__v1__reply__free_unpacked(rep, NULL);
	}
	cacert_clear(&cc);
	return ret;
}

void
admin_withdraw(struct frontend *fe, const char *user, const char *password,
    const char *what)
{
	Scep__V1__Request req = SCEP__V1__REQUEST__INIT;
	Scep__V1__ChallengeRevokeRequest body =
	    SCEP__V1__CHALLENGE_REVOKE_REQUEST__INIT;
	Scep__V1__Reply *rep = NULL;
	char by[160];

	snprintf(
	    by, sizeof(by), "frontend (%s for %s not handed out)", what, user);
	body.password = (char *)password;
	body.revoked_by = by;
	req.body_case = SCEP__V1__REQUEST__BODY_CHALLENGE_REVOKE;
	req.challenge_revoke = &body;
	if (upstream_call(fe, UPSTREAM_CHALLENGE, &req,
	        SCEP__V1__REPLY__BODY_CHALLENGE_REVOKE, &rep) == UPSTREAM_OK)
		log_info("admin: the password issued for %s for %s, not handed "
		         "out, is withdrawn",
		    what, user);
	else
		log_warn("admin: the password issued for %s for %s, not handed "
		         "out, could not be withdrawn (%s): it stays "
		         "outstanding until it expires",
		    what, user,
		    rep != NULL && rep->error != NULL ? rep->error
		                                      : "no answer");
	if (rep != NULL)
		scep__v1__reply__free_unpacked(rep, NULL);
}

/* The admin page itself: NDES's "fresh password and thumbprint". */
static enum MHD_Result
admin_page_handle(struct frontend *fe, struct MHD_Connection *c,
    struct request *r, const char *user)
{
	if (strcmp(r->method, "GET") != 0)
		return http_not_allowed(c, r, "GET");
	return admin_password(fe, c, r, user, "admin", admin_wants_json(c));
}

/* POST api/challenges: the same for an MDM, counted against its own
 * MdmPasswordMax so a fleet rollout is not throttled to PasswordMax. */
static enum MHD_Result
admin_api_challenges(struct frontend *fe, struct MHD_Connection *c,
    struct request *r, const char *user)
{
	if (strcmp(r->method, "POST") != 0)
		return http_not_allowed(c, r, "POST");
	return admin_password(fe, c, r, user, "mdm", 1);
}

/* POST api/single-password {"password": "..."} sets the UseSinglePassword
 * password; without one the server makes one and returns it once. */
static enum MHD_Result
admin_api_single_password(struct frontend *fe, struct MHD_Connection *c,
    struct request *r, const char *user)
{
	Scep__V1__Request req = SCEP__V1__REQUEST__INIT;
	Scep__V1__ChallengeSetSingleRequest body =
	    SCEP__V1__CHALLENGE_SET_SINGLE_REQUEST__INIT;
	Scep__V1__Reply *rep = NULL;
	json_t *in = NULL, *o = NULL;
	json_error_t jerr;
	const char *password = NULL;
	char *text = NULL;
	enum upstream_result res;
	enum MHD_Result ret;

	if (strcmp(r->method, "POST") != 0)
		return http_not_allowed(c, r, "POST");
	if (r->body_len > 0) {
		in = json_loadb((const char *)r->body, r->body_len, 0, &jerr);
		/* Strict: a mistyped key ({"Password": ...}) made a random
		 * password replace the one every device was given. */
		if (!json_is_object(in) ||
		    json_unpack(in, "{s?s!}", "password", &password) != 0 ||
		    (password != NULL && password[0] == '\0')) {
			json_decref(in);
			return admin_json_error(c, r, MHD_HTTP_BAD_REQUEST,
			    "expected {\"password\": \"...\"} (not empty), "
			    "or no body to have one made");
		}
	}
	body.password = (char *)password;
	body.set_by = (char *)user;
	body.client_addr = r->client;
	req.body_case = SCEP__V1__REQUEST__BODY_CHALLENGE_SET_SINGLE;
	req.challenge_set_single = &body;
	res = upstream_call(fe, UPSTREAM_CHALLENGE, &req,
	    SCEP__V1__REPLY__BODY_CHALLENGE_SET_SINGLE, &rep);
	json_decref(in); /* after the call: `password` points into it */
	switch (res) {
	case UPSTREAM_OK:
		if (rep->challenge_set_single->password != NULL)
			o = json_pack("{s:s, s:s}", "password",
			    rep->challenge_set_single->password, "set_by",
			    user);
		else
			o = json_pack("{s:s}", "set_by", user);
		text = o != NULL ? json_dumps(o, JSON_INDENT(2)) : NULL;
		json_decref(o);
		log_warn("admin: %s from %s set the single password", user,
		    r->client);
		ret = text != NULL
		    ? http_respond_secret(c, r, MHD_HTTP_OK, "application/json",
		          text, strlen(text), admin_headers)
		    : http_text(c, r, MHD_HTTP_INTERNAL_SERVER_ERROR,
		          "Out of memory.\n");
		if (text != NULL) {
			OPENSSL_cleanse(text, strlen(text));
			free(text);
		}
		break;
	case UPSTREAM_REFUSED:
	case UPSTREAM_BAD_REQUEST:
		ret = admin_json_error(c, r, MHD_HTTP_CONFLICT,
		    rep->error != NULL ? rep->error : "refused");
		break;
	case UPSTREAM_UNAVAILABLE:
		ret = admin_json_error(c, r, MHD_HTTP_SERVICE_UNAVAILABLE,
		    "The challenge service did not answer; retry in a few "
		    "seconds.");
		break;
	default:
		ret = http_text(c, r, MHD_HTTP_INTERNAL_SERVER_ERROR,
		    "Internal server error; the server log says more.\n");
	}
	if (rep != NULL) {
		if (rep->body_case ==
		        SCEP__V1__REPLY__BODY_CHALLENGE_SET_SINGLE &&
		    rep->challenge_set_single->password != NULL)
			OPENSSL_cleanse(rep->challenge_set_single->password,
			    strlen(rep->challenge_set_single->password));
		scep__v1__reply__free_unpacked(rep, NULL);
	}
	return ret;
}

/*
 * What lives under AdminPath, and the right each needs. "enroll" is NDES's
 * enroll permission; "mdm" is for MDM servers that mint passwords by API;
 * "admin" manages the server.
 */
static const struct admin_route {
	const char *subpath; /* after AdminPath; "" is the page itself */
	const char *right;
	admin_handler handler;
	int json_body; /* a POST body, if any, is JSON (admin_json_type) */
} admin_routes[] = {
    {"", "enroll", admin_page_handle, 0},
    {"api/challenges", "mdm", admin_api_challenges, 0},
    {"api/single-password", "admin", admin_api_single_password, 1},
    {"profile.mobileconfig", "enroll", profile_handle, 0},
    {NULL, NULL, NULL, 0},
};

const char *
admin_subpath(const struct frontend *fe, const char *url)
{
	const char *base = fe->settings.admin_path;
	size_t n = strlen(base);

	if (n == 0)
		return NULL;
	if (base[n - 1] == '/')
		n--;
	if (strncasecmp(url, base, n) != 0)
		return NULL;
	if (url[n] == '\0')
		return "";
	if (url[n] != '/')
		return NULL;
	return url + n + 1;
}

/*
 * A browser's request made by another site's page (cross-site request
 * forgery: a form posting a new single password, an image minting
 * passwords up to PasswordMax) with the credentials it holds for this
 * page. Browsers say where a request comes from (Sec-Fetch-Site; Origin
 * on every cross-origin POST); scripts and MDMs send neither. NULL when
 * the request may go on, else what to log.
 */
static const char *
admin_cross_site(struct MHD_Connection *c)
{
	const char *site =
	    MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Sec-Fetch-Site");
	const char *origin =
	    MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
	const char *host =
	    MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host");

	if (site != NULL && strcmp(site, "same-origin") != 0 &&
	    strcmp(site, "none") != 0)
		return "Sec-Fetch-Site";
	if (origin != NULL &&
	    (strncasecmp(origin, "http://", 7) != 0 || host == NULL ||
	        strcasecmp(origin + 7, host) != 0))
		return "Origin";
	return NULL;
}

/*
 * Whether a POST to an API that reads JSON says its body is JSON
 * ("application/json", parameters such as charset allowed; no
 * Content-Type only without a body). A browser posts another site's form
 * as text/plain, urlencoded or multipart (a text/plain body can be made
 * to parse as JSON), and only a script may send application/json across
 * sites, after a CORS preflight this server never answers.
 */
static int
admin_json_type(struct MHD_Connection *c, const struct request *r)
{
	static const char want[] = "application/json";
	const char *type = MHD_lookup_connection_value(
	    c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
	size_t n = sizeof(want) - 1;

	if (type == NULL)
		return r->body_len == 0;
	type += strspn(type, " \t");
	if (strncasecmp(type, want, n) != 0)
		return 0;
	type += n;
	type += strspn(type, " \t");
	return *type == '\0' || *type == ';';
}

/* --- the guard against password guessing (struct admin_guard) -------- */

void
admin_guard_init(struct admin_guard *g)
{
	memset(g->slots, 0, sizeof(g->slots));
	atomic_init(&g->checking, 0);
	pthread_mutex_init(&g->lock, NULL);
	g->seen = passwd_seen_new(); /* NULL: every login checked in full */
}

void
admin_guard_free(struct admin_guard *g)
{
	pthread_mutex_destroy(&g->lock);
	passwd_seen_free(g->seen);
}

/* A free slot or one whose window is over, or NULL. */
static int
admin_fail_slot_free(const struct admin_fail_slot *s, int64_t now)
{
	return s->account[0] == '\0' ||
	    s->window_start + ADMIN_FAIL_WINDOW_MS <= now;
}

/* The slot counting `account`'s failures, or NULL; with `create`, a new
 * one in a free slot, and when none is free, NULL and every login not
 * seen lately is locked out for a window. Under g->lock. */
static struct admin_fail_slot *
admin_fail_slot(
    struct admin_guard *g, const char *account, int64_t now, int create)
{
	struct admin_fail_slot *pick = NULL;
	char key[sizeof(pick->account)];

	snprintf(key, sizeof(key), "%s", account);
	for (size_t i = 0; i < ADMIN_FAIL_SLOTS; i++) {
		struct admin_fail_slot *s = &g->slots[i];

		if (s->account[0] != '\0' && strcmp(s->account, key) == 0)
			return s;
		if (create && pick == NULL && admin_fail_slot_free(s, now))
			pick = s;
	}
	if (create && pick == NULL) {
		if (g->full_until <= now)
			log_warn("security: admin: failed logins for %d "
			         "account names within %d s: every login gets "
			         "429 for %d s",
			    ADMIN_FAIL_SLOTS, ADMIN_FAIL_WINDOW_MS / 1000,
			    ADMIN_FAIL_WINDOW_MS / 1000);
		g->full_until = now + ADMIN_FAIL_WINDOW_MS;
	}
	if (pick != NULL) {
		memset(pick, 0, sizeof(*pick));
		snprintf(pick->account, sizeof(pick->account), "%s", key);
		pick->window_start = now;
	}
	return pick;
}

/* Seconds until `account` may log in again; 0: now. */
static unsigned int
admin_fail_wait(struct admin_guard *g, const char *account)
{
	struct admin_fail_slot *s;
	int64_t now = clock_monotonic_ms(), end = 0;
	unsigned int wait = 0;

	pthread_mutex_lock(&g->lock);
	if ((s = admin_fail_slot(g, account, now, 0)) != NULL &&
	    s->count >= ADMIN_FAIL_LIMIT)
		end = s->window_start + ADMIN_FAIL_WINDOW_MS;
	if (g->full_until > end)
		end = g->full_until;
	if (end > now)
		wait = (unsigned int)((end - now + 999) / 1000);
	pthread_mutex_unlock(&g->lock);
	return wait;
}

/* A failed login for `account` (from `client`). A good one resets
 * nothing: a guess that happens to be right is no reason to allow more
 * guesses. */
static void
admin_fail_record(
    struct admin_guard *g, const char *account, const char *client)
{
	struct admin_fail_slot *s;
	int64_t now = clock_monotonic_ms();

	pthread_mutex_lock(&g->lock);
	if ((s = admin_fail_slot(g, account, now, 1)) != NULL) {
		if (s->window_start + ADMIN_FAIL_WINDOW_MS <= now) {
			s->window_start = now;
			s->count = 0;
		}
		if (++s->count == ADMIN_FAIL_LIMIT) {
			/* As a client sent it: escaped, or it could write
			 * "the last from" an address of its choice for a
			 * rule that reads this line. */
			char name[3 * 64 + 1];

			log_escape(name, sizeof(name), account);
			log_warn(
			    "security: admin: %u failed logins for account "
			    "%s within %d s, the last from %s: its logins "
			    "get 429 for the rest of those %d s",
			    s->count, name, ADMIN_FAIL_WINDOW_MS / 1000, client,
			    ADMIN_FAIL_WINDOW_MS / 1000);
		}
	}
	pthread_mutex_unlock(&g->lock);
}

/* One of the ADMIN_CHECKS_AT_ONCE places for a password check: 0, or -1
 * when all are taken (never waited for). */
static int
admin_check_begin(struct admin_guard *g)
{
	int n = atomic_load(&g->checking);

	while (n < ADMIN_CHECKS_AT_ONCE)
		if (atomic_compare_exchange_weak(&g->checking, &n, n + 1))
			return 0;
	return -1;
}

static void
admin_check_end(struct admin_guard *g)
{
	atomic_fetch_sub(&g->checking, 1);
}

/* The account's password, under the guard: 1 good (rights filled), 0
 * wrong, -1 the file unreadable, or -2 when refused unchecked (answered
 * 429 in *ret). */
static int
admin_check_password(struct frontend *fe, struct MHD_Connection *c,
    struct request *r, const char *user, const char *pass, char *rights,
    size_t rightslen, enum MHD_Result *ret)
{
	struct admin_guard *g = &fe->admin_guard;
	unsigned int wait;
	int v;

	/* Before anything is compared: a locked-out account answered 200
	 * for the right password and 429 for a wrong one would be guessed
	 * at without limit (as Windows, a lock-out holds for everyone). */
	if ((wait = admin_fail_wait(g, user)) > 0) {
		char name[3 * 64 + 1]; /* as a client sent it: escaped */

		log_escape(name, sizeof(name), user);
		log_warn("admin: refused %s %s from %s: account %s is locked "
		         "out after failed logins: 429 for %u s",
		    r->method, r->log_path, r->client, name, wait);
		*ret = http_too_many(c, r, wait,
		    "Too many failed logins for this account; try again "
		    "later.");
		return -2;
	}
	/* Credentials that passed lately need no scrypt, and no place. */
	if (g->seen != NULL &&
	    (v = passwd_check_seen(g->seen, fe->settings.admin_password_file,
	         user, pass, rights, rightslen)) != 0)
		return v;
	if (admin_check_begin(g) != 0) {
		log_warn("admin: refused %s %s from %s: %d password checks "
		         "under way: 429",
		    r->method, r->log_path, r->client, ADMIN_CHECKS_AT_ONCE);
		*ret = http_too_many(
		    c, r, 1, "Too many logins at once; try again in a second.");
		return -2;
	}
#ifdef SCEPD_TEST_HOOKS
	/* Test builds only: a slow check, so that a test can fill every
	 * place (test_admin_api). */
	if (getenv("SCEPD_TEST_ADMIN_CHECK_MS") != NULL) {
		long ms = atol(getenv("SCEPD_TEST_ADMIN_CHECK_MS"));
		struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

		nanosleep(&ts, NULL);
	}
#endif
	v = passwd_check_file(fe->settings.admin_password_file, user, pass,
	    rights, rightslen, g->seen);
	admin_check_end(g);
	if (v == 0)
		admin_fail_record(g, user, r->client);
	return v;
}

/* The route of r->path (NULL: 404), and whether the page's address
 * lacks the slash its relative links (the profile form) need (301). */
static const struct admin_route *
admin_route_find(const struct frontend *fe, const struct request *r, int *moved)
{
	const char *sub = admin_subpath(fe, r->path);

	*moved = 0;
	if (sub == NULL)
		return NULL;
	for (const struct admin_route *route = admin_routes;
	     route->subpath != NULL; route++)
		if (strcmp(sub, route->subpath) == 0) {
			*moved = route->subpath[0] == '\0' &&
			    r->path[strlen(r->path) - 1] != '/';
			return route;
		}
	return NULL;
}

/* A path of no route (404) or the page without its slash (301), answered
 * in *ret: 1; else 0. */
static int
admin_unrouted(const struct frontend *fe, struct MHD_Connection *c,
    struct request *r, const struct admin_route **route, enum MHD_Result *ret)
{
	char location[300];
	const struct http_header h[] = {{"Location", location}, {NULL, NULL}};
	int moved;

	if ((*route = admin_route_find(fe, r, &moved)) == NULL) {
		*ret = http_text(c, r, MHD_HTTP_NOT_FOUND, "Not found.\n");
		return 1;
	}
	if (!moved)
		return 0;
	snprintf(location, sizeof(location), "%s/", r->path);
	*ret = http_respond(c, r, MHD_HTTP_MOVED_PERMANENTLY,
	    "text/plain; charset=utf-8", "Moved.\n", 7, h);
	return 1;
}

int
admin_refused_remote(const struct frontend *fe, struct MHD_Connection *c,
    struct request *r, enum MHD_Result *ret)
{
	const struct admin_route *route;

	/* A path of no route, or the page without its slash, is answered
	 * 404 or 301 first, as admin_handle does, and at once: a body is
	 * not read for it. The only check of the client's address:
	 * admin_handle sees loopback clients alone. */
	if (r->loopback)
		return 0;
	if (admin_unrouted(fe, c, r, &route, ret))
		return 1;
	log_warn("admin: refused %s: the admin page is served to loopback "
	         "clients only (its credentials and passwords travel in clear "
	         "over plain HTTP)",
	    r->client);
	/* An NDES administrator opens it from a workstation: the ways in. */
	*ret = http_text(c, r, MHD_HTTP_FORBIDDEN,
	    "The admin page is served over plain HTTP to loopback clients "
	    "only: its credentials and passwords would travel in clear.\n"
	    "From another machine: an SSH tunnel to this server (ssh -L "
	    "8080:127.0.0.1:PORT) and http://127.0.0.1:8080 in the "
	    "browser; or a TLS terminator on this server (README: 'Behind a "
	    "reverse proxy'); or, on this server, 'scepctl challenge'.\n");
	return 1;
}

enum MHD_Result
admin_handle(struct frontend *fe, struct MHD_Connection *c, struct request *r)
{
	const struct admin_route *route;
	char *user = NULL, *pass = NULL, rights[256] = "", host[256];
	const char *why;
	int v;
	enum MHD_Result ret = MHD_NO;

	if (admin_unrouted(fe, c, r, &route, &ret))
		return ret;
	if (!http_host_is_ours(fe, c, host, sizeof(host))) {
		log_warn("admin: refused %s %s from %s: Host %s is not a name "
		         "of this server (DNS rebinding?); [frontend] "
		         "AdminHosts lists more",
		    r->method, r->log_path, r->client, host);
		ret = http_text(c, r, MHD_HTTP_FORBIDDEN,
		    "The admin page answers to this server's names only; "
		    "add yours to [frontend] AdminHosts.\n");
		goto out;
	}
	if ((why = admin_cross_site(c)) != NULL) {
		log_warn("admin: refused %s %s from %s: made by another site's "
		         "page (%s)",
		    r->method, r->log_path, r->client, why);
		ret = http_text(c, r, MHD_HTTP_FORBIDDEN,
		    "Requests to the admin page from another site's page are "
		    "refused.\n");
		goto out;
	}
	if (route->json_body && strcmp(r->method, "POST") == 0 &&
	    !admin_json_type(c, r)) {
		log_warn("admin: refused POST %s from %s: its body is not "
		         "Content-Type: application/json",
		    r->log_path, r->client);
		ret = admin_json_error(c, r, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
		    "the body must be Content-Type: application/json");
		goto out;
	}
	user = MHD_basic_auth_get_username_password(c, &pass);
	if (user == NULL || pass == NULL) {
		ret = admin_unauthorized(c, r);
		goto out;
	}
	v = admin_check_password(
	    fe, c, r, user, pass, rights, sizeof(rights), &ret);
	if (v == -2)
		goto out;
	if (v < 0) {
		ret = http_text(c, r, MHD_HTTP_INTERNAL_SERVER_ERROR,
		    "The admin accounts cannot be read; the server log says "
		    "more.\n");
		goto out;
	}
	if (v == 0) {
		char name[3 * 64 + 1]; /* as a client sent it: escaped */

		log_escape(name, sizeof(name), user);
		log_warn("admin: failed login for %s from %s", name, r->client);
		ret = admin_unauthorized(c, r);
		goto out;
	}
	if (!has_right(rights, route->right)) {
		log_warn("admin: %s has no %s right (for %s)", user,
		    route->right, r->log_path);
		ret = http_text(c, r, MHD_HTTP_FORBIDDEN,
		    strcmp(route->right, "enroll") == 0
		        ? "You do not have sufficient permission to enroll "
		          "with SCEP.\n"
		        : "You do not have sufficient permission for this.\n");
		goto out;
	}
	ret = route->handler(fe, c, r, user);
out:
	if (pass != NULL) {
		OPENSSL_cleanse(pass, strlen(pass));
		MHD_free(pass);
	}
	if (user != NULL)
		MHD_free(user);
	return ret;
}
