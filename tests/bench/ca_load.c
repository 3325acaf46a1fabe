/*
 * ca_load: the CA alone under load, as on a host of its own: COUNT
 * SignRequests straight to scepd-ca (one CSR, a distinct transactionID
 * each) from CONCURRENCY threads, each with its own connection, as the
 * RA's workers send them. Prints certificates/s and latency; every
 * answer must be a certificate.
 *
 *   ca_load --endpoint ipc://DIR/run/ca.sock --csr FILE.pem
 *           [--count 2000] [--concurrency 8] [--prefix TXID-PREFIX]
 * (the transactionIDs are PREFIX-N; the default prefix names this run)
 * exit: 0 every request got a certificate, 1 otherwise.
 */
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <zmq.h>

#include "clock.h"
#include "rpc.h"

struct ca_load {
	const char *endpoint, *prefix;
	unsigned char *csr;
	size_t csr_len;
	void *zmq_ctx;
	int count, concurrency;
	int next; /* the next request's number, shared */
	int failed;
	double *latency_ms; /* per request */
};

static double
now_ms(void)
{
	return (double)clock_monotonic_us() / 1e3;
}

static void *
ca_load_thread(void *arg)
{
	struct ca_load *l = arg;
	struct rpc_client *client =
	    rpc_client_new(l->zmq_ctx, l->endpoint, "ra");
	char txid[96];

	if (client == NULL) {
		__atomic_add_fetch(&l->failed, 1, __ATOMIC_SEQ_CST);
		return NULL;
	}
	for (;;) {
		Scep__V1__Request req = SCEP__V1__REQUEST__INIT;
		Scep__V1__SignRequest sign = SCEP__V1__SIGN_REQUEST__INIT;
		Scep__V1__Reply *reply = NULL;
		int i = __atomic_fetch_add(&l->next, 1, __ATOMIC_SEQ_CST);
		double t0;

		if (i >= l->count)
			break;
		snprintf(txid, sizeof(txid), "%s-%d", l->prefix, i);
		sign.csr.data = l->csr;
		sign.csr.len = l->csr_len;
		sign.transaction_id = txid;
		sign.client_addr = "192.0.2.7";
		req.body_case = SCEP__V1__REQUEST__BODY_SIGN;
		req.sign = &sign;
		t0 = now_ms();
		if (rpc_call(client, &req, 30000, &reply) != RPC_OK ||
		    reply->status != SCEP__V1__STATUS__STATUS_OK ||
		    reply->sign == NULL || !reply->sign->has_cert) {
			if (__atomic_add_fetch(
			        &l->failed, 1, __ATOMIC_SEQ_CST) <= 3)
				fprintf(stderr, "request %d: %s\n", i,
				    reply != NULL && reply->error != NULL
				        ? reply->error
				        : "no certificate");
		}
		l->latency_ms[i] = now_ms() - t0;
		if (reply != NULL)
			scep__v1__reply__free_unpacked(reply, NULL);
	}
	rpc_client_free(client);
	return NULL;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"endpoint", required_argument, NULL, 'e'},
	    {"csr", required_argument, NULL, 'c'},
	    {"count", required_argument, NULL, 'n'},
	    {"concurrency", required_argument, NULL, 'C'},
	    {"prefix", required_argument, NULL, 'p'},
	    {NULL, 0, NULL, 0},
	};
	struct ca_load l;
	const char *csr_file = NULL;
	char default_prefix[64];
	pthread_t *threads;
	X509_REQ *csr;
	FILE *f;
	double t0, seconds;
	int ch, len, started;

	memset(&l, 0, sizeof(l));
	l.count = 2000;
	l.concurrency = 8;
	/* Distinct transactionIDs run after run: a repeated one would be
	 * answered as a retry, without a signature. */
	snprintf(default_prefix, sizeof(default_prefix), "ca-load-%ld-%ld",
	    (long)getpid(), (long)time(NULL));
	l.prefix = default_prefix;
	while ((ch = getopt_long(argc, argv, "e:c:n:C:p:", opts, NULL)) != -1) {
		switch (ch) {
		case 'e':
			l.endpoint = optarg;
			break;
		case 'c':
			csr_file = optarg;
			break;
		case 'n':
			l.count = atoi(optarg);
			break;
		case 'C':
			l.concurrency = atoi(optarg);
			break;
		case 'p':
			l.prefix = optarg;
			break;
		default:
			return 1;
		}
	}
	if (l.endpoint == NULL || csr_file == NULL || l.count < 1 ||
	    l.concurrency < 1) {
		fprintf(stderr,
		    "usage: ca_load --endpoint E --csr FILE "
		    "[--count N] [--concurrency C] [--prefix P]\n");
		return 1;
	}
	if ((f = fopen(csr_file, "r")) == NULL ||
	    (csr = PEM_read_X509_REQ(f, NULL, NULL, NULL)) == NULL) {
		fprintf(stderr, "%s: not a PEM CSR\n", csr_file);
		return 1;
	}
	fclose(f);
	if ((len = i2d_X509_REQ(csr, &l.csr)) <= 0)
		return 1;
	X509_REQ_free(csr);
	l.csr_len = (size_t)len;
	l.latency_ms = calloc((size_t)l.count, sizeof(double));
	threads = calloc((size_t)l.concurrency, sizeof(*threads));
	if (l.latency_ms == NULL || threads == NULL ||
	    (l.zmq_ctx = zmq_ctx_new()) == NULL)
		return 1;
	t0 = now_ms();
	for (started = 0; started < l.concurrency; started++)
		if (pthread_create(
		        &threads[started], NULL, ca_load_thread, &l) != 0)
			break;
	for (int i = 0; i < started; i++)
		pthread_join(threads[i], NULL);
	seconds = (now_ms() - t0) / 1e3;
	if (started < l.concurrency) {
		fprintf(stderr, "ca_load: %d of %d threads started\n", started,
		    l.concurrency);
		l.failed++;
	}
	qsort(l.latency_ms, (size_t)l.count, sizeof(double), cmp_double);
	/* rate: certificates received per second. */
	printf("RESULT count=%d concurrency=%d failed=%d seconds=%.3f "
	       "rate=%.1f p50_ms=%.2f p99_ms=%.2f\n",
	    l.count, l.concurrency, l.failed, seconds,
	    (l.count - l.failed) / seconds, l.latency_ms[l.count / 2],
	    l.latency_ms[(l.count * 99) / 100]);
	zmq_ctx_term(l.zmq_ctx);
	OPENSSL_free(l.csr);
	free(l.latency_ms);
	free(threads);
	return l.failed == 0 ? 0 : 1;
}
