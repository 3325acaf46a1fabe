#include <getopt.h>
#include <stdio.h>

#include "service.h"

const char *
service_config_arg(int argc, char **argv, const char *name, int *status)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *config = NULL;
	int ch;

	*status = 1;
	while ((ch = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			config = optarg;
			break;
		case 'h':
			printf("usage: %s --config FILE\n", name);
			*status = 0;
			return NULL;
		default:
			config = NULL;
			goto usage;
		}
	}
	if (config != NULL && optind == argc)
		return config;
usage:
	fprintf(stderr, "usage: %s --config FILE\n", name);
	return NULL;
}
