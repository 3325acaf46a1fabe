/*
 * scepctl [--data-dir DIR] COMMAND [ARGS]: operator tasks on the CA host.
 * DIR (default ./var) is the data directory scepd created; its scepd.conf
 * says where the services listen.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "service.h"
#include "scepctl.h"

int
scepctl_seconds(const char *opt, const char *arg, long max, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(arg, &end, 10);
	if (errno != 0 || end == arg || *end != '\0' || v < 1 || v > max) {
		fprintf(stderr, "scepctl: %s '%s': seconds, 1 to %ld\n", opt,
		    arg, max);
		return -1;
	}
	*out = v;
	return 0;
}

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: scepctl [--data-dir DIR] [--timeout SECONDS] COMMAND "
	    "[ARGS]\n"
	    "  DIR is scepd's data directory (default ./var); SECONDS how\n"
	    "  long a service's answer is waited for (default 5, at most\n"
	    "  3600: a large import-crl, a CA host far away).\n"
	    "commands:\n"
	    "  challenge [--json]  print a fresh one-time enrollment password\n"
	    "  challenge --list [--json] | --revoke ID | --revoke-unused "
	    "[--pool P]\n"
	    "                      the passwords on record; delete unused "
	    "ones\n"
	    "  passwd --list | --delete USER  the admin-page accounts\n"
	    "  passwd [--rights LIST] USER  set an admin-page password (from\n"
	    "                      stdin) with LIST's rights (default\n"
	    "                      enroll; also mdm, admin)\n"
	    "  list [--refused | --pending] [--limit N] [--json]\n"
	    "                      issued certificates (or refused requests,\n"
	    "                      or requests pending approval), newest\n"
	    "                      first, N (default 100) of them\n"
	    "  show SERIAL [--pem] one certificate of the ledger; SERIAL in\n"
	    "                      hex, its pairs may be separated by ':'\n"
	    "  revoke SERIAL [--reason R] [--not-in-ledger [--date T]]\n"
	    "                      revoke; the CA issues a new CRL (with\n"
	    "                      --not-in-ledger: one this CA signed that\n"
	    "                      its ledger does not hold, revoked at T)\n"
	    "  unrevoke SERIAL     release a certificate from certificateHold\n"
	    "  import-crl [--dry-run] FILE\n"
	    "                      put a CRL's entries (this CA's, DER or\n"
	    "                      PEM) on scepd's CRL, dates and reasons\n"
	    "                      kept (--dry-run: counted, not written)\n"
	    "  approve TXID        issue a request pending approval\n"
	    "  reject TXID [--reason TEXT] refuse a pending request\n"
	    "  keygen [NAME]       a CurveZMQ key pair in DIR/keys\n"
	    "                      (NAME: scepctl, this tool's own)\n"
	    "  health ca|ra|challenge [--timeout SECONDS]\n"
	    "                      whether the service answers a liveness\n"
	    "                      check (a health check's probe, run\n"
	    "                      beside the service, as its user)\n"
	    "exit status: 0 done, 1 refused or failed, 2 usage\n");
}

static const struct {
	const char *name;
	int (*run)(const struct scepctl *, int, char **);
} commands[] = {
    {"challenge", scepctl_challenge},
    {"passwd", scepctl_passwd},
    {"list", scepctl_list},
    {"show", scepctl_show},
    {"approve", scepctl_approve},
    {"reject", scepctl_reject},
    {"revoke", scepctl_revoke},
    {"unrevoke", scepctl_revoke},
    {"import-crl", scepctl_import_crl},
    {"keygen", scepctl_keygen},
    {"health", scepctl_health},
};

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"data-dir", required_argument, NULL, 'd'},
	    {"timeout", required_argument, NULL, 't'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct scepctl ctl = {NULL, NULL, 0};
	const char *dir = "./var";
	size_t i, len;
	int c, rc = 2;

	/* '+': options after the command are the command's. */
	while ((c = getopt_long(argc, argv, "+d:t:h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			dir = optarg;
			break;
		case 't':
			if (scepctl_seconds("--timeout", optarg,
			        SCEPCTL_TIMEOUT_MAX_S, &ctl.timeout_s) != 0)
				return 2;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(commands[i].name, argv[optind]) == 0)
			break;
	if (i == sizeof(commands) / sizeof(commands[0])) {
		fprintf(
		    stderr, "scepctl: unknown command '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (commands[i].run == NULL) {
		fprintf(stderr, "scepctl: '%s' is not implemented yet\n",
		    commands[i].name);
		return 2;
	}
	/* A reader gone (`scepctl challenge | ssh ...` failing) is a write
	 * error each command handles (a password not handed out is
	 * withdrawn), not a death by SIGPIPE with nothing said. */
	signal(SIGPIPE, SIG_IGN);
	/* keygen makes a secret key, passwd reads a password, challenge
	 * prints one: none of them in a core file. */
	if (service_no_dumps("scepctl") != 0)
		return 1;
	/* Library warnings (e.g. a ZeroMQ connect) would only repeat what
	 * scepctl says itself. */
	log_init("scepctl", LOG_LEVEL_ERROR);
	/* `scepctl COMMAND --help` needs no data directory (each command
	 * prints its usage before it reads anything). */
	if (optind + 2 == argc &&
	    (strcmp(argv[optind + 1], "--help") == 0 ||
	        strcmp(argv[optind + 1], "-h") == 0))
		return commands[i].run(&ctl, argc - optind, argv + optind);
	if ((ctl.data_dir = realpath(dir, NULL)) == NULL) {
		fprintf(stderr, "scepctl: data directory %s: ", dir);
		perror(NULL);
		return 1;
	}
	len = strlen(ctl.data_dir) + sizeof("/scepd.conf");
	if ((ctl.conf = malloc(len)) == NULL)
		goto out;
	snprintf(ctl.conf, len, "%s/scepd.conf", ctl.data_dir);
	rc = commands[i].run(&ctl, argc - optind, argv + optind);
out:
	free(ctl.conf);
	free(ctl.data_dir);
	return rc;
}
