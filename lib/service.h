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

/* The processors this process may run on (its affinity: a cpuset or
 * taskset counts), at least 1. */
long service_processors(void);

/*
 * For a service that reads a key or a secret (the CA's, the RA's, the
 * challenge service's HMAC key): no core file and no ptrace by its user
 * from the start, not only once the sandbox is entered (a plugin's or a
 * token module's init crashing before it would dump the key). 0, or -1
 * with the reason on stderr.
 */
int service_no_dumps(const char *name);

/*
 * After a key store refused the service at start (status
 * SIGNER_EXIT_NO_RESTART): with SCEPD_HOLD_ON_KEY_REFUSAL=1 in the
 * environment (service_hold_wanted), the service logs why and waits for
 * SIGTERM, SIGINT or SIGHUP (service_hold) before it exits. Containers set
 * it: their restart policies (Docker's unless-stopped, Kubernetes'
 * Always) start a service that exited again, whatever its status, and
 * each start would try the token's PIN again.
 */
#define SERVICE_HOLD_ENV "SCEPD_HOLD_ON_KEY_REFUSAL"
/*
 * The header on an answer the frontend's acceptor gives alone, past
 * MaxConnections, without its HTTP threads: the launcher's liveness check
 * counts such an answer as no proof that they work.
 */
#define SERVICE_REFUSED_HEADER "X-Scepd-Refused"
/*
 * The launcher starts the CA alone and the others once it serves (its key
 * store's login done: two processes logging in to one SoftHSM2 token at
 * once made one fail "Failed to enumerate slots"). It hands the CA a
 * pipe's write end, named by SCEPD_READY_FD; service_ready, called when a
 * service serves, writes a byte to it and closes it. Nothing without it.
 */
#define SERVICE_READY_ENV "SCEPD_READY_FD"
void service_ready(void);
/*
 * Whether SIGHUP stops this service as SIGTERM does: when it is not
 * ignored. A terminal's hangup reaches scepd's whole process group, its
 * services too: stopped cleanly (a challenge service killed by it would
 * leave its passwords' state to be taken as lost); under nohup it is
 * ignored, and the launcher keeps it so for them.
 */
int service_hangup_stops(void);
int service_hold_wanted(void);
void service_hold(void);

#endif
