/*
 * scepctl list [--refused | --pending] [--limit N] [--json] and scepctl
 * show SERIAL
 * [--pem]: the CA's ledger, asked of the CA at [ca] Listen of
 * DIR/scepd.conf (on the CA host).
 */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/asn1.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "log.h"
#include "scepctl.h"

/* "2024-05-01T10:00:00Z" into *t: 0, or -1. Strict: written back as
 * the log writes times, it must read the same (strptime takes
 * "2024-02-31", one digit for two, blanks). */
static int
scepctl_time_parse(const char *s, time_t *t)
{
	struct tm tm;
	const char *end;
	char again[LOG_TIME_LEN];

	memset(&tm, 0, sizeof(tm));
	if ((end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm)) == NULL ||
	    *end != '\0' || (*t = timegm(&tm)) <= 0)
		return -1;
	log_time(*t, again);
	return strcmp(again, s) == 0 ? 0 : -1;
}

static json_t *
scepctl_entry_json(const Scep__V1__LedgerEntry *e)
{
	json_t *o = json_object(), *sans = json_array();
	char when[LOG_TIME_LEN], until[LOG_TIME_LEN];

	for (size_t i = 0; i < e->n_sans; i++)
		json_array_append_new(sans, json_string(e->sans[i]));
	log_time((time_t)e->time, when);
	log_time((time_t)e->not_after, until);
	json_object_set_new(
	    o, "status", json_string(e->status ? e->status : ""));
	json_object_set_new(o, "time", json_string(when));
	if (e->serial != NULL && e->serial[0] != '\0') {
		json_object_set_new(o, "serial", json_string(e->serial));
		json_object_set_new(o, "not_after", json_string(until));
	} else if (e->has_not_after) /* a pending request's expiry */
		json_object_set_new(o, "expires", json_string(until));
	json_object_set_new(
	    o, "subject", json_string(e->subject ? e->subject : ""));
	json_object_set_new(o, "sans", sans);
	json_object_set_new(o, "template",
	    json_string(e->template_name ? e->template_name : ""));
	json_object_set_new(o, "transaction_id",
	    json_string(e->transaction_id ? e->transaction_id : ""));
	json_object_set_new(
	    o, "client", json_string(e->client_addr ? e->client_addr : ""));
	if (e->reason != NULL && e->reason[0] != '\0')
		json_object_set_new(o, "reason", json_string(e->reason));
	/* When and by whom: what an auditor asks of a revocation, which
	 * the log alone kept. */
	if (e->has_revoked_at) {
		log_time((time_t)e->revoked_at, when);
		json_object_set_new(o, "revoked_at", json_string(when));
		json_object_set_new(o, "revoked_by",
		    json_string(e->revoked_by ? e->revoked_by : ""));
	}
	if (e->has_hold_final_at && e->hold_final_at > 0) {
		log_time((time_t)e->hold_final_at, when);
		json_object_set_new(o, "hold_final_at", json_string(when));
	}
	return o;
}

/*
 * Text a device chose (a subject, a SAN, a refusal naming them) for the
 * operator's terminal: controls (C0, DEL, C1 such as U+009B CSI) and the
 * bidi formatting characters as \uXXXX, bytes that are not UTF-8 as \xHH,
 * so that it can neither drive the terminal nor reorder what it shows.
 */
static void
scepctl_text(const char *s, FILE *f)
{
	const unsigned char *p = (const unsigned char *)(s ? s : "");
	size_t left = strlen((const char *)p);
	unsigned long cp;
	int n;

	while (left > 0) {
		/* OpenSSL's decoder refuses overlong forms, surrogates and
		 * what lies past U+10FFFF. */
		if ((n = UTF8_getc(p, left > 4 ? 4 : (int)left, &cp)) <= 0) {
			fprintf(f, "\\x%02x", *p++);
			left--;
			continue;
		}
		if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == 0x061c ||
		    cp == 0x200e || cp == 0x200f ||
		    (cp >= 0x2028 && cp <= 0x202e) ||
		    (cp >= 0x2066 && cp <= 0x2069))
			fprintf(f, "\\u%04x", (unsigned)cp);
		else
			fwrite(p, 1, (size_t)n, f);
		p += n;
		left -= (size_t)n;
	}
}

static void
scepctl_sans_line(const Scep__V1__LedgerEntry *e, FILE *f)
{
	if (e->n_sans == 0)
		fputs("-", f);
	for (size_t i = 0; i < e->n_sans; i++) {
		if (i > 0)
			fputc(',', f);
		scepctl_text(e->sans[i], f);
	}
}

static void
scepctl_list_usage(FILE *f)
{
	fprintf(f,
	    "usage: scepctl [--data-dir DIR] list [--refused | --pending] "
	    "[--limit N] [--json]\n"
	    "  The certificates the CA issued (or, with --refused, the\n"
	    "  requests it refused; with --pending, the requests waiting\n"
	    "  for `scepctl approve` or expired or rejected recently),\n"
	    "  newest first; 100 unless --limit.\n");
}

int
scepctl_list(const struct scepctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"refused", no_argument, NULL, 'r'},
	    {"pending", no_argument, NULL, 'p'},
	    {"limit", required_argument, NULL, 'l'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	Scep__V1__Request req = SCEP__V1__REQUEST__INIT;
	Scep__V1__LedgerListRequest list = SCEP__V1__LEDGER_LIST_REQUEST__INIT;
	Scep__V1__Reply *reply = NULL;
	struct scepctl_conn conn;
	int c, json = 0, rc = 1;
	unsigned long n;
	char *end;

	/* 0, not 1: glibc then forgets the "+" of main's option string. */
	optind = 0;
	while ((c = getopt_long(argc, argv, "rpl:jh", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			list.has_refusals = 1;
			list.refusals = 1;
			break;
		case 'p':
			list.has_pending = 1;
			list.pending = 1;
			break;
		case 'l':
			list.has_limit = 1;
			/* strtoul takes "-1" as ULONG_MAX: digits only. */
			errno = 0;
			n = strtoul(optarg, &end, 10);
			if (optarg[0] < '0' || optarg[0] > '9' ||
			    *end != '\0' || errno != 0 || n == 0 ||
			    n > UINT32_MAX) {
				fprintf(stderr,
				    "scepctl: --limit: a number from 1 to "
				    "%u\n",
				    UINT32_MAX);
				return 2;
			}
			list.limit = (uint32_t)n;
			break;
		case 'j':
			json = 1;
			break;
		case 'h':
			scepctl_list_usage(stdout);
			return 0;
		default:
			scepctl_list_usage(stderr);
			return 2;
		}
	}
	if (optind != argc || (list.refusals && list.pending)) {
		scepctl_list_usage(stderr);
		return 2;
	}
	if (scepctl_connect(ctl, "ca", "Listen", &conn) != 0)
		return 1;
	req.body_case = SCEP__V1__REQUEST__BODY_LEDGER_LIST;
	req.ledger_list = &list;
	if ((reply = scepctl_call(&conn, &req, "CA")) == NULL)
		goto out;
	if (reply->status != SCEP__V1__STATUS__STATUS_OK ||
	    reply->body_case != SCEP__V1__REPLY__BODY_LEDGER_LIST) {
		fprintf(stderr, "scepctl: CA: %s\n",
		    reply->error ? reply->error : "no listing");
		goto out;
	}
	if (json) {
		json_t *a = json_array();

		for (size_t i = 0; i < reply->ledger_list->n_entries; i++)
			json_array_append_new(a,
			    scepctl_entry_json(reply->ledger_list->entries[i]));
		json_dumpf(a, stdout, JSON_INDENT(2) | JSON_ENSURE_ASCII);
		putchar('\n');
		json_decref(a);
	} else {
		for (size_t i = 0; i < reply->ledger_list->n_entries; i++) {
			const Scep__V1__LedgerEntry *e =
			    reply->ledger_list->entries[i];
			char when[LOG_TIME_LEN], until[LOG_TIME_LEN];

			log_time((time_t)e->time, when);
			log_time((time_t)e->not_after, until);
			if (list.pending)
				printf("%s  %s  until %s  ", when, e->status,
				    until);
			else if (list.refusals)
				printf("%s  refused  ", when);
			else
				printf("%s  %s  until %s  ", when, e->serial,
				    until);
			scepctl_text(e->template_name && e->template_name[0]
			        ? e->template_name
			        : "-",
			    stdout);
			if (list.pending || list.refusals) {
				fputs("  ", stdout);
				scepctl_text(e->client_addr && e->client_addr[0]
				        ? e->client_addr
				        : "-",
				    stdout);
			}
			if (list.pending) {
				fputs("  ", stdout);
				scepctl_text(e->transaction_id, stdout);
			}
			fputs("  \"", stdout);
			scepctl_text(e->subject, stdout);
			fputs("\"  ", stdout);
			scepctl_sans_line(e, stdout);
			if (list.refusals ||
			    (list.pending && e->reason != NULL &&
			        e->reason[0] != '\0')) {
				fputs("  ", stdout);
				scepctl_text(e->reason, stdout);
			} else if (!list.pending && e->status != NULL &&
			    strcmp(e->status, "revoked") == 0) {
				fputs("  revoked: ", stdout);
				scepctl_text(
				    e->reason != NULL && e->reason[0] != '\0'
				        ? e->reason
				        : "unspecified",
				    stdout);
				if (e->has_revoked_at) {
					log_time((time_t)e->revoked_at, when);
					printf(" %s by ", when);
					scepctl_text(e->revoked_by, stdout);
				}
			}
			putchar('\n');
		}
	}
	/* With --json too: a script reading the newest `--limit` would
	 * not know that more exist. */
	fprintf(stderr, "scepctl: %zu of %llu shown\n",
	    reply->ledger_list->n_entries,
	    (unsigned long long)reply->ledger_list->total);
	rc = fflush(stdout) == 0 ? 0 : 1;
out:
	if (reply != NULL)
		scep__v1__reply__free_unpacked(reply, NULL);
	scepctl_disconnect(&conn);
	return rc;
}

static void
scepctl_show_usage(FILE *f)
{
	fprintf(f,
	    "usage: scepctl [--data-dir DIR] show SERIAL [--pem]\n"
	    "  One certificate of the ledger: who asked, when, under which\n"
	    "  template; --pem prints the certificate itself. SERIAL in\n"
	    "  hex, any case, as openssl x509 -serial or -text prints it\n"
	    "  (pairs separated by ':' or ' ', or not).\n");
}

int
scepctl_show(const struct scepctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"pem", no_argument, NULL, 'p'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	Scep__V1__Request req = SCEP__V1__REQUEST__INIT;
	Scep__V1__LedgerShowRequest show = SCEP__V1__LEDGER_SHOW_REQUEST__INIT;
	Scep__V1__Reply *reply = NULL;
	const Scep__V1__LedgerEntry *e;
	struct scepctl_conn conn;
	int c, pem = 0, rc = 1;
	json_t *o;

	/* 0, not 1: glibc then forgets the "+" of main's option string. */
	optind = 0;
	while ((c = getopt_long(argc, argv, "ph", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			pem = 1;
			break;
		case 'h':
			scepctl_show_usage(stdout);
			return 0;
		default:
			scepctl_show_usage(stderr);
			return 2;
		}
	}
	if (optind + 1 != argc) {
		scepctl_show_usage(stderr);
		return 2;
	}
	if (scepctl_connect(ctl, "ca", "Listen", &conn) != 0)
		return 1;
	show.serial = argv[optind];
	req.body_case = SCEP__V1__REQUEST__BODY_LEDGER_SHOW;
	req.ledger_show = &show;
	if ((reply = scepctl_call(&conn, &req, "CA")) == NULL)
		goto out;
	if (reply->status != SCEP__V1__STATUS__STATUS_OK ||
	    reply->body_case != SCEP__V1__REPLY__BODY_LEDGER_SHOW) {
		fprintf(stderr, "scepctl: %s: %s\n", argv[optind],
		    reply->error ? reply->error : "not found");
		goto out;
	}
	e = reply->ledger_show->entry;
	if (pem) {
		const unsigned char *p = e->cert.data;
		X509 *cert = d2i_X509(NULL, &p, (long)e->cert.len);

		if (cert == NULL || PEM_write_X509(stdout, cert) != 1) {
			X509_free(cert);
			fprintf(
			    stderr, "scepctl: the certificate is unreadable\n");
			goto out;
		}
		X509_free(cert);
	} else {
		o = scepctl_entry_json(e);
		json_dumpf(o, stdout, JSON_INDENT(2) | JSON_ENSURE_ASCII);
		putchar('\n');
		json_decref(o);
	}
	rc = fflush(stdout) == 0 ? 0 : 1;
out:
	if (reply != NULL)
		scep__v1__reply__free_unpacked(reply, NULL);
	scepctl_disconnect(&conn);
	return rc;
}

static void
scepctl_revoke_usage(FILE *f, int release)
{
	if (release) {
		fprintf(f,
		    "usage: scepctl [--data-dir DIR] unrevoke SERIAL\n"
		    "  Releases a certificate from its certificateHold (one\n"
		    "  the ledger does not hold too); the CA issues a new\n"
		    "  CRL without it.\n");
		return;
	}
	fprintf(f,
	    "usage: scepctl [--data-dir DIR] revoke SERIAL [--reason R]\n"
	    "           [--not-in-ledger [--date YYYY-MM-DDTHH:MM:SSZ]]\n"
	    "  Revokes a certificate and has the CA issue a new CRL. SERIAL\n"
	    "  is written as for scepctl show. R is an RFC 5280 reason:\n"
	    "  keyCompromise, cACompromise, affiliationChanged, superseded,\n"
	    "  cessationOfOperation, certificateHold, privilegeWithdrawn,\n"
	    "  aACompromise, unspecified (default). A certificate on hold\n"
	    "  may be revoked again with another reason, or released:\n"
	    "  scepctl unrevoke SERIAL. --not-in-ledger: a certificate of\n"
	    "  this CA that its ledger does not hold (signed before scepd,\n"
	    "  or after the backup a restore came from), SERIAL of up to\n"
	    "  20 octets;\n"
	    "  --date: when it was revoked (UTC), as its earlier CRL says.\n");
}

/* revoke SERIAL [--reason R], and unrevoke SERIAL (argv[0] says which). */
int
scepctl_revoke(const struct scepctl *ctl, int argc, char **argv)
{
	int release = strcmp(argv[0], "unrevoke") == 0;
	static const struct option opts[] = {
	    {"reason", required_argument, NULL, 'r'},
	    {"not-in-ledger", no_argument, NULL, 'n'},
	    {"date", required_argument, NULL, 'D'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	Scep__V1__Request req = SCEP__V1__REQUEST__INIT;
	Scep__V1__RevokeRequest revoke = SCEP__V1__REVOKE_REQUEST__INIT;
	time_t t;
	Scep__V1__Reply *reply = NULL;
	struct scepctl_conn conn;
	const char *user =
	    getenv("SUDO_USER") ? getenv("SUDO_USER") : getenv("USER");
	char by[128];
	const char *shown;
	int c, rc = 1;

	/* 0, not 1: glibc then forgets the "+" of main's option string. */
	optind = 0;
	while ((c = getopt_long(argc, argv, "r:nD:h", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			revoke.reason = optarg;
			break;
		case 'n':
			revoke.has_not_in_ledger = 1;
			revoke.not_in_ledger = 1;
			break;
		case 'D':
			if (scepctl_time_parse(optarg, &t) != 0) {
				fprintf(stderr,
				    "scepctl: --date %s: not a time as "
				    "2024-05-01T10:00:00Z (UTC)\n",
				    optarg);
				return 2;
			}
			revoke.revoked_at = (int64_t)t;
			revoke.has_revoked_at = 1;
			break;
		case 'h':
			scepctl_revoke_usage(stdout, release);
			return 0;
		default:
			scepctl_revoke_usage(stderr, release);
			return 2;
		}
	}
	if (optind + 1 != argc ||
	    (release &&
	        (revoke.reason != NULL || revoke.has_revoked_at ||
	            revoke.has_not_in_ledger)) ||
	    (revoke.has_revoked_at && !revoke.has_not_in_ledger)) {
		scepctl_revoke_usage(stderr, release);
		return 2;
	}
	if (release) {
		revoke.has_release = 1;
		revoke.release = 1;
	}
	if (scepctl_connect(ctl, "ca", "Listen", &conn) != 0)
		return 1;
	snprintf(by, sizeof(by), "scepctl (%s)", user ? user : "?");
	revoke.serial = argv[optind];
	revoke.revoked_by = by;
	req.body_case = SCEP__V1__REQUEST__BODY_REVOKE;
	req.revoke = &revoke;
	if ((reply = scepctl_call(&conn, &req, "CA")) == NULL)
		goto out;
	if (reply->status != SCEP__V1__STATUS__STATUS_OK ||
	    reply->body_case != SCEP__V1__REPLY__BODY_REVOKE) {
		fprintf(stderr, "scepctl: %s: %s\n", argv[optind],
		    reply->error ? reply->error : "refused");
		goto out;
	}
	/* The serial as the CA read it (hex): "4096" typed from a decimal
	 * form is 0x4096, which this shows. */
	shown = reply->revoke->serial != NULL ? reply->revoke->serial
	                                      : argv[optind];
	if (release)
		fprintf(stderr,
		    "scepctl: %s released from its hold; CRL number %lld no "
		    "longer lists it\n",
		    shown, (long long)reply->revoke->crl_number);
	else
		fprintf(stderr,
		    "scepctl: serial %s (hex) revoked; CRL number %lld lists "
		    "it\n",
		    shown, (long long)reply->revoke->crl_number);
	rc = 0;
out:
	if (reply != NULL)
		scep__v1__reply__free_unpacked(reply, NULL);
	scepctl_disconnect(&conn);
	return rc;
}

/* approve TXID | reject TXID [--reason R]: an operator's decision on a
 * request waiting under a template with ApprovalRequired = 1. */
static int
scepctl_decide(const struct scepctl *ctl, int argc, char **argv, int approve)
{
	static const struct option opts[] = {
	    {"reason", required_argument, NULL, 'r'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	Scep__V1__Request req = SCEP__V1__REQUEST__INIT;
	Scep__V1__DecideRequest decide = SCEP__V1__DECIDE_REQUEST__INIT;
	Scep__V1__Reply *reply = NULL;
	struct scepctl_conn conn;
	const char *user =
	    getenv("SUDO_USER") ? getenv("SUDO_USER") : getenv("USER");
	const char *usage = approve
	    ? "usage: scepctl [--data-dir DIR] approve TXID\n"
	      "  Issues the certificate a pending request asked for; the\n"
	      "  device gets it at its next poll.\n"
	    : "usage: scepctl [--data-dir DIR] reject TXID [--reason TEXT]\n"
	      "  Refuses a pending request; the device's next poll gets\n"
	      "  FAILURE with TEXT (without one: \"no reason given\").\n";
	char by[128];
	int c, rc = 1;

	/* 0, not 1: glibc then forgets the "+" of main's option string. */
	optind = 0;
	while ((c = getopt_long(argc, argv, "r:h", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			decide.reason = optarg;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			fputs(usage, stderr);
			return 2;
		}
	}
	if (optind + 1 != argc || (approve && decide.reason != NULL)) {
		fputs(usage, stderr);
		return 2;
	}
	if (scepctl_connect(ctl, "ca", "Listen", &conn) != 0)
		return 1;
	snprintf(by, sizeof(by), "scepctl (%s)", user ? user : "?");
	decide.transaction_id = argv[optind];
	decide.approve = approve;
	decide.decided_by = by;
	req.body_case = SCEP__V1__REQUEST__BODY_DECIDE;
	req.decide = &decide;
	if ((reply = scepctl_call(&conn, &req, "CA")) == NULL)
		goto out;
	if (reply->status != SCEP__V1__STATUS__STATUS_OK ||
	    reply->body_case != SCEP__V1__REPLY__BODY_DECIDE) {
		fprintf(stderr, "scepctl: %s: %s\n", argv[optind],
		    reply->error ? reply->error : "refused");
		goto out;
	}
	/* Done either way: a serial that cannot be printed is said so,
	 * with where to find it (exit 1 for the script that wanted it). */
	if (approve &&
	    (printf("%s\n", reply->decide->serial) < 0 ||
	        fflush(stdout) != 0)) {
		fprintf(stderr,
		    "scepctl: %s approved, but its serial %s could not be "
		    "written out: see scepctl list\n",
		    argv[optind], reply->decide->serial);
		goto out;
	}
	fprintf(stderr, "scepctl: %s %s\n", argv[optind],
	    approve ? "approved; the certificate waits for the device's poll"
	            : "rejected");
	rc = 0;
out:
	if (reply != NULL)
		scep__v1__reply__free_unpacked(reply, NULL);
	scepctl_disconnect(&conn);
	return rc;
}

int
scepctl_approve(const struct scepctl *ctl, int argc, char **argv)
{
	return scepctl_decide(ctl, argc, argv, 1);
}

int
scepctl_reject(const struct scepctl *ctl, int argc, char **argv)
{
	return scepctl_decide(ctl, argc, argv, 0);
}
