/*
 * What every service's start-up shares: `NAME --config FILE`.
 */
#ifndef SCEPD_SERVICE_H
#define SCEPD_SERVICE_H

/*
 * Reads the command line of a service run as `name --config FILE`. Returns
 * FILE, or NULL after printing the usage (to stdout for --help, stderr
 * otherwise) with *status set to what main() should return: 0 for --help,
 * 1 for a wrong command line.
 */
const char *
service_config_arg(int argc, char **argv, const char *name, int *status);

#endif
