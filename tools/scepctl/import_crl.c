/*
 * scepctl import-crl FILE: the entries of a CRL this CA signed put on
 * scepd's CRL, with their dates and reasons. An existing CA's CRL from
 * before scepd (publishing scepd's CRL in its place would drop them: those
 * certificates trusted again), or, after a restore, the CRL last
 * published (the revocations since the backup). The CA takes them a batch
 * at a time, each in one transaction with one new CRL.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "crl_read.h"
#include "pki.h"
#include "scepctl.h"

/* Entries per request: about 80 bytes each packed, well within the CA's
 * RPC_MAX_CA_REQUEST (256 KiB). */
#define IMPORT_BATCH 2000

static const char import_usage[] =
    "usage: scepctl [--data-dir DIR] import-crl [--dry-run] FILE\n"
    "  Puts every entry of FILE, a CRL this CA signed (DER or PEM), on\n"
    "  scepd's CRL with its revocation date and reason: an existing\n"
    "  CA's revocations from before scepd, or after a restore those of\n"
    "  the CRL last published. The CRL must be signed by the key of\n"
    "  [ca] Certificate; a delta or an indirect CRL is refused. One\n"
    "  revoked already stays as it is, a hold listed with another\n"
    "  reason is made final. It may be run again. --dry-run: what it\n"
    "  would do, counted; nothing written.\n";

/* [ca] Certificate of DIR/scepd.conf: NULL with the reason on stderr. */
static X509 *
import_ca_cert(const struct scepctl *ctl)
{
	struct config_pairs conf;
	const char *value;
	char *path = NULL, err[512];
	X509 *ca = NULL;

	if (config_load_pairs(ctl->conf, "ca", &conf) != 0) {
		fprintf(stderr, "scepctl: cannot read [ca] of %s\n", ctl->conf);
		return NULL;
	}
	if ((value = config_pairs_get(&conf, "ca", "Certificate")) == NULL ||
	    value[0] == '\0')
		fprintf(stderr,
		    "scepctl: %s has no [ca] Certificate: the CRL's "
		    "signature cannot be checked\n",
		    ctl->conf);
	else if ((path = config_resolve_path(conf.basedir, value)) == NULL)
		fprintf(stderr, "scepctl: out of memory\n");
	else if ((ca = pki_load_cert(path, err, sizeof(err))) == NULL)
		fprintf(stderr, "scepctl: %s\n", err);
	free(path);
	config_pairs_free(&conf);
	return ca;
}

int
scepctl_import_crl(const struct scepctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"dry-run", no_argument, NULL, 'n'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *user =
	    getenv("SUDO_USER") ? getenv("SUDO_USER") : getenv("USER");
	Scep__V1__Request req = SCEP__V1__REQUEST__INIT;
	Scep__V1__RevokeImportRequest body =
	    SCEP__V1__REVOKE_IMPORT_REQUEST__INIT;
	Scep__V1__ImportedRevocation *items = NULL, **ptrs = NULL;
	Scep__V1__Reply *reply = NULL;
	struct scepctl_conn conn = {0};
	struct crl_entries entries = {0};
	BIO *file_bio = NULL;
	char *data;
	long len;
	unsigned long long added = 0, made_final = 0, unchanged = 0;
	long long number = 0;
	size_t done = 0;
	X509_CRL *crl = NULL;
	X509 *ca = NULL;
	unsigned char ca_sha256[32];
	char by[128], err[256];
	const char *file;
	int c, rc = 1, connected = 0;

	/* 0, not 1: glibc then forgets the "+" of main's option string. */
	optind = 0;
	while ((c = getopt_long(argc, argv, "nh", opts, NULL)) != -1) {
		if (c == 'n') {
			body.has_dry_run = 1;
			body.dry_run = 1;
			continue;
		}
		if (c == 'h') {
			fputs(import_usage, stdout);
			return 0;
		}
		fputs(import_usage, stderr);
		return 2;
	}
	if (optind + 1 != argc) {
		fputs(import_usage, stderr);
		return 2;
	}
	file = argv[optind];
	if ((file_bio = pki_read_file_max(
	         file, CRL_READ_MAX, err, sizeof(err))) == NULL) {
		fprintf(stderr, "scepctl: %s\n", err);
		goto out;
	}
	if ((ca = import_ca_cert(ctl)) == NULL)
		goto out;
	len = BIO_get_mem_data(file_bio, &data);
	if ((crl = crl_read((const unsigned char *)data, (size_t)len, err,
	         sizeof(err))) == NULL ||
	    crl_signed_by(crl, ca, err, sizeof(err)) != 0 ||
	    crl_entries(crl, &entries, err, sizeof(err)) != 0) {
		fprintf(stderr, "scepctl: %s: %s\n", file, err);
		goto out;
	}
	/* The CA, on this host's clock, then takes every request, not the
	 * first ones only. */
	if (entries.newest > (int64_t)time(NULL) + RPC_IMPORT_SKEW_S) {
		fprintf(stderr,
		    "scepctl: %s is dated %lld s after this machine's time "
		    "(its thisUpdate or an entry): is a clock wrong? Nothing "
		    "imported\n",
		    file, (long long)(entries.newest - time(NULL)));
		goto out;
	}
	if (entries.has_number && entries.number > RPC_IMPORT_NUMBER_MAX)
		entries.has_number = 0;
	if (!entries.has_number)
		fprintf(stderr,
		    "scepctl: %s has no CRL number scepd's can go above (none, "
		    "or above 2^63 - 2^32): relying parties that keep the "
		    "highest-numbered CRL may keep it rather than scepd's\n",
		    file);
	/* An empty CRL's number is passed on all the same. */
	if (entries.n == 0 && !entries.has_number) {
		fprintf(stderr,
		    "scepctl: %s lists no certificate: nothing to "
		    "import\n",
		    file);
		rc = 0;
		goto out;
	}
	items = calloc(IMPORT_BATCH, sizeof(*items));
	ptrs = calloc(IMPORT_BATCH, sizeof(*ptrs));
	if (items == NULL || ptrs == NULL) {
		fprintf(stderr, "scepctl: out of memory\n");
		goto out;
	}
	if (scepctl_connect(ctl, "ca", "Listen", &conn) != 0)
		goto out;
	connected = 1;
	snprintf(by, sizeof(by), "scepctl (%s)", user ? user : "?");
	if (X509_digest(ca, EVP_sha256(), ca_sha256, NULL) != 1) {
		fprintf(stderr, "scepctl: cannot hash the CA certificate\n");
		goto out;
	}
	body.revoked_by = by;
	body.has_ca_certificate_sha256 = 1;
	body.ca_certificate_sha256.data = ca_sha256;
	body.ca_certificate_sha256.len = sizeof(ca_sha256);
	body.has_from_crl_number = entries.has_number;
	body.from_crl_number = entries.number;
	do {
		size_t n = entries.n - done < IMPORT_BATCH ? entries.n - done
		                                           : IMPORT_BATCH;

		for (size_t i = 0; i < n; i++) {
			const struct crl_entry *e = &entries.entry[done + i];

			scep__v1__imported_revocation__init(&items[i]);
			items[i].serial = (char *)e->serial;
			items[i].revoked_at = e->revoked_at;
			items[i].reason = (char *)e->reason;
			ptrs[i] = &items[i];
		}
		body.n_entries = n;
		body.entries = ptrs;
		req.body_case = SCEP__V1__REQUEST__BODY_REVOKE_IMPORT;
		req.revoke_import = &body;
		if ((reply = scepctl_call(&conn, &req, "CA")) == NULL)
			goto stopped;
		if (reply->status != SCEP__V1__STATUS__STATUS_OK ||
		    reply->body_case != SCEP__V1__REPLY__BODY_REVOKE_IMPORT) {
			fprintf(stderr, "scepctl: %s: %s\n", file,
			    reply->error ? reply->error : "refused");
			goto stopped;
		}
		added += reply->revoke_import->added;
		made_final += reply->revoke_import->made_final;
		unchanged += reply->revoke_import->unchanged;
		number = (long long)reply->revoke_import->crl_number;
		scep__v1__reply__free_unpacked(reply, NULL);
		reply = NULL;
		done += n;
	} while (done < entries.n);
	if (body.dry_run) {
		fprintf(stderr,
		    "scepctl: %s: %zu %s: %llu would be put on the CRL, %llu "
		    "made final from a hold, %llu there already (dry run: "
		    "nothing written)\n",
		    file, entries.n, entries.n == 1 ? "entry" : "entries",
		    added, made_final, unchanged);
		rc = 0;
		goto out;
	}
	if (entries.n == 0) {
		fprintf(stderr,
		    "scepctl: %s lists no certificate; scepd's CRLs are "
		    "numbered above its %lld (CRL number %lld)\n",
		    file, (long long)entries.number, number);
		rc = 0;
		goto out;
	}
	fprintf(stderr,
	    "scepctl: %s: %zu %s: %llu put on the CRL, %llu made final "
	    "from a hold, %llu there already; CRL number %lld lists them\n",
	    file, entries.n, entries.n == 1 ? "entry" : "entries", added,
	    made_final, unchanged, number);
	rc = 0;
	goto out;
stopped:
	if (done > 0)
		fprintf(stderr,
		    "scepctl: %zu of %zu entries were taken before it stopped "
		    "(%llu put on the CRL, %llu made final from a hold, %llu "
		    "there already); run it again (those are left as they "
		    "are)\n",
		    done, entries.n, added, made_final, unchanged);
out:
	if (reply != NULL)
		scep__v1__reply__free_unpacked(reply, NULL);
	if (connected)
		scepctl_disconnect(&conn);
	free(items);
	free(ptrs);
	crl_entries_free(&entries);
	X509_CRL_free(crl);
	X509_free(ca);
	BIO_free(file_bio);
	return rc;
}
