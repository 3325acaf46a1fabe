/*
 * scepd-init --data-dir DIR [--listen HOST:PORT]
 * scepd runs it once before it starts the services: it makes DIR a data
 * directory if DIR is missing or empty. A program of its own so that the
 * long-running launcher neither links OpenSSL nor ever holds the CA key.
 * Exit status 0: DIR is a data directory (made now or before); 1: not.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "log.h"
#include "service.h"
#include "scepd_init.h"

static void
usage(FILE *out)
{
	fprintf(out,
	    "usage: scepd-init --data-dir DIR [--listen HOST:PORT] "
	    "[--service-users]\n"
	    "  makes DIR a scepd data directory (demo CA, RA "
	    "certificates,\n  scepd.conf, admin account) if it is "
	    "missing or empty; scepd runs\n  it on every start without "
	    "--config. "
	    "HOST:PORT (default 127.0.0.1:8080) goes in\n  "
	    "scepd.conf. --service-users: each service runs as a user of "
	    "its own\n  (scepd-frontend, scepd-ra, scepd-challenge, "
	    "scepd-ca: scripts/users.sh).\n");
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"data-dir", required_argument, NULL, 'd'},
	    {"listen", required_argument, NULL, 'l'},
	    {"locked-fd", required_argument, NULL, 'L'},
	    {"service-users", no_argument, NULL, 'u'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *data_dir = NULL, *listen = "127.0.0.1:8080";
	int c, locked_fd = -1, service_users = 0;
	char *end;

	while ((c = getopt_long(argc, argv, "d:l:L:h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			data_dir = optarg;
			break;
		case 'l':
			listen = optarg;
			break;
		case 'L': /* scepd's, which holds DIR's lock */
			locked_fd = (int)strtol(optarg, &end, 10);
			if (*end != '\0' || locked_fd < 3) {
				usage(stderr);
				return 1;
			}
			break;
		case 'u':
			service_users = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 1;
		}
	}
	if (optind != argc || data_dir == NULL) {
		usage(stderr);
		return 1;
	}
	/* It makes the CA's, the RA's and CurveZMQ secret keys. */
	if (service_no_dumps("scepd-init") != 0)
		return 1;
	log_init("scepd-init", LOG_LEVEL_INFO);
	return scepd_init(data_dir, listen, locked_fd, service_users) < 0 ? 1
	                                                                  : 0;
}
