/*
 * scep_load: the benchmark's load driver. Enrolls N distinct PKCSReq
 * messages (RSA 2048) over C concurrent keep-alive connections by POST,
 * then checks that every answer was a SUCCESS CertRep holding a
 * certificate for the request (decrypted with the request's key), and
 * prints enrollments/s and latency. With --gets M it mixes M GetCACaps
 * and GetCACert requests in among the enrollments (the memory soak), each
 * checked to answer what it answered before the load.
 *
 * It shares the machine with the server, so it does as little as it can
 * while the clock runs: every message is built before (keys come from a
 * pool of --keys RSA keys, cached in --key-cache, each with its self-signed
 * signer certificate; each request has its own subject, CSR, transactionID
 * and nonce), answers are only stored while timing, and parsing and
 * decrypting them happens after.
 *
 * With --server-pgid it also reads, from /proc, the CPU time (utime +
 * stime) of every process of that group over the timed phase and samples
 * their summed VmRSS and PSS every 100 ms. What else the machine did
 * meanwhile (other processes' CPU, I/O stalls) is printed as noise.
 *
 * The last line is machine-readable:
 *   RESULT count=N ok=N failures=N gets=N gets_failed=N seconds=S rate=R
 *          p50_ms=.. p99_ms=.. max_ms=.. server_procs=.. server_cpu_ms=..
 *          cpu_ms_per_enrollment=.. peak_rss_kib=.. peak_pss_kib=..
 *          client_cpu_ms=.. other_cpu_ms=.. io_stall_ms=..
 *          cpu_ms.PROCESS=.. (per enrollment, for each process name)
 * rate counts verified enrollments only; latencies are the enrollments'.
 * Exit status: 0 when every request succeeded, 2 when some failed, 1 on
 * any other error.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "scep.h"
#include "scep_client.h"

#define MAX_PIDS 64
#define MAX_REASONS 5 /* failed answers shown */

struct options {
	const char *url;
	const char *challenge;
	const char *challenge_file;
	const char *subject_prefix;
	const char *key_cache;
	const char *ca_name;
	const char *cipher_name;
	long count;
	long gets;
	long concurrency;
	long keys;
	long server_pgid;
	long timeout;
};

/* --- keys, signers and requests (built before timing) ----------------- */

struct key {
	EVP_PKEY *pkey;
	X509 *signer; /* self-signed, as devices sign their first request */
};

enum request_kind { ENROLL, GET_CACAPS, GET_CACERT };

struct request {
	enum request_kind kind;
	/* ENROLL only */
	struct key *key; /* borrowed from the pool */
	char subject_cn[128];
	char *txid;
	uint8_t *msg;
	size_t msg_len;
	uint8_t *nonce;
	size_t nonce_len;
	/* filled while timing */
	struct http_reply reply;
	CURLcode curl_code;
	double latency_ms;
};

static void
key_pool_free(struct key *pool, long n)
{
	if (pool == NULL)
		return;
	for (long i = 0; i < n; i++) {
		EVP_PKEY_free(pool[i].pkey);
		X509_free(pool[i].signer);
	}
	free(pool);
}

/* The pool: read from the cache file when it holds enough keys, else made
 * (and written there). */
static struct key *
key_pool(const struct options *o)
{
	struct key *pool;
	FILE *f;
	long have = 0;

	if ((pool = calloc((size_t)o->keys, sizeof(*pool))) == NULL)
		return NULL;
	if (o->key_cache != NULL && (f = fopen(o->key_cache, "r")) != NULL) {
		while (have < o->keys &&
		    (pool[have].pkey =
		            PEM_read_PrivateKey(f, NULL, NULL, NULL)) != NULL)
			have++;
		fclose(f);
		ERR_clear_error();
	}
	if (have < o->keys) {
		fprintf(stderr, "scep_load: making %ld RSA 2048 keys\n",
		    o->keys - have);
		for (; have < o->keys; have++)
			if ((pool[have].pkey = EVP_RSA_gen(2048)) == NULL)
				goto fail;
		if (o->key_cache != NULL) {
			if ((f = fopen(o->key_cache, "w")) == NULL)
				goto fail;
			for (long i = 0; i < o->keys; i++)
				PEM_write_PrivateKey(
				    f, pool[i].pkey, NULL, NULL, 0, NULL, NULL);
			if (fclose(f) != 0)
				goto fail;
		}
	}
	for (long i = 0; i < o->keys; i++) {
		char cn[64];

		snprintf(cn, sizeof(cn), "scep_load signer %ld", i);
		if ((pool[i].signer = scep_self_signed(
		         pool[i].pkey, cn, EVP_sha256())) == NULL)
			goto fail;
	}
	return pool;
fail:
	ERR_print_errors_fp(stderr);
	key_pool_free(pool, o->keys);
	return NULL;
}

/* One line per enrollment from --challenge-file. */
static char **
read_challenges(const char *path, long count)
{
	char **pw;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	long have = 0;
	FILE *f;

	if ((f = fopen(path, "r")) == NULL) {
		perror(path);
		return NULL;
	}
	if ((pw = calloc((size_t)count, sizeof(*pw))) == NULL)
		goto fail;
	while (have < count && (n = getline(&line, &cap, f)) != -1) {
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if (n == 0)
			continue;
		if ((pw[have++] = strdup(line)) == NULL)
			goto fail;
	}
	if (have < count) {
		fprintf(stderr, "%s: %ld passwords for %ld requests\n", path,
		    have, count);
		goto fail;
	}
	free(line);
	fclose(f);
	return pw;
fail:
	free(line);
	fclose(f);
	if (pw != NULL)
		for (long i = 0; i < count; i++)
			free(pw[i]);
	free(pw);
	return NULL;
}

/* The PKCSReq of enrollment `i` into rq: subject O=scepd bench,
 * CN=PREFIX-RUN-i, a fresh transactionID. */
static int
build_enrollment(const struct options *o, const struct scep_ca_certs *c,
    const char *run, long i, struct key *key, const char *challenge,
    const EVP_CIPHER *cipher, const EVP_MD *md, struct request *rq)
{
	struct scep_pkcsreq_params p;
	X509_NAME *name = NULL;
	X509_REQ *csr = NULL;
	unsigned char rnd[32];
	char txid[2 * sizeof(rnd) + 1];
	int err, rc = -1;

	rq->kind = ENROLL;
	rq->key = key;
	snprintf(rq->subject_cn, sizeof(rq->subject_cn), "%s-%s-%ld",
	    o->subject_prefix, run, i);
	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		goto out;
	for (size_t j = 0; j < sizeof(rnd); j++)
		snprintf(txid + 2 * j, 3, "%02X", rnd[j]);
	if ((name = X509_NAME_new()) == NULL ||
	    !X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
	        (const unsigned char *)"scepd bench", -1, -1, 0) ||
	    !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	        (const unsigned char *)rq->subject_cn, -1, -1, 0) ||
	    (csr = scep_make_csr(
	         name, challenge, 5, NULL, key->pkey, EVP_sha256())) == NULL) {
		ERR_print_errors_fp(stderr);
		goto out;
	}
	memset(&p, 0, sizeof(p));
	p.message_type = SCEP_MSG_PKCSREQ;
	p.transaction_id = txid;
	p.csr = csr;
	p.signer = key->signer;
	p.signer_key = key->pkey;
	p.recipient = c->ra_enc;
	p.cipher = cipher;
	p.digest = md;
	if ((err = scep_pkcsreq_build(&p, &rq->msg, &rq->msg_len)) != SCEP_OK) {
		fprintf(stderr, "PKCSReq: %s\n", scep_strerror(err));
		goto out;
	}
	if (scep_own_attributes(rq->msg, rq->msg_len, &rq->txid, &rq->nonce,
	        &rq->nonce_len) != 0)
		goto out;
	rc = 0;
out:
	X509_REQ_free(csr);
	X509_NAME_free(name);
	return rc;
}

/* count enrollments with o->gets GETs spread evenly among them,
 * GetCACaps and GetCACert in turn. */
static int
build_requests(const struct options *o, const struct scep_ca_certs *c,
    struct key *pool, const EVP_CIPHER *cipher, const EVP_MD *md,
    struct request *rqs)
{
	long total = o->count + o->gets, enrolled = 0, got = 0;
	char **pw = NULL;
	char run[9];
	unsigned char rnd[4];
	int rc = -1;

	if (o->challenge_file != NULL &&
	    (pw = read_challenges(o->challenge_file, o->count)) == NULL)
		return -1;
	/* Subjects unique across runs against one server: micromdm
	 * refuses a second certificate for a CN. */
	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		goto out;
	snprintf(run, sizeof(run), "%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2],
	    rnd[3]);
	for (long i = 0; i < total; i++) {
		/* A GET where the running share of GETs falls behind. */
		if (got < o->gets && got * total < (i + 1) * o->gets) {
			rqs[i].kind = got % 2 == 0 ? GET_CACAPS : GET_CACERT;
			got++;
			continue;
		}
		if (build_enrollment(o, c, run, enrolled,
		        &pool[enrolled % o->keys],
		        pw != NULL ? pw[enrolled] : o->challenge, cipher, md,
		        &rqs[i]) != 0)
			goto out;
		enrolled++;
	}
	rc = 0;
out:
	if (pw != NULL)
		for (long i = 0; i < o->count; i++)
			free(pw[i]);
	free(pw);
	return rc;
}

/* --- the server's processes ------------------------------------------- */

struct procs {
	int n;
	int pid[MAX_PIDS];
	char comm[MAX_PIDS][32];
	unsigned long long cpu0[MAX_PIDS], cpu1[MAX_PIDS]; /* ticks */
};

/* /proc/PID/stat into line. Returns the fields after "PID (COMM)", from
 * the state on, and points *comm at COMM; NULL when unreadable. */
static char *
read_stat(const char *pid, char *line, int len, char **comm)
{
	char path[300], *open, *close;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%s/stat", pid);
	if ((f = fopen(path, "r")) == NULL)
		return NULL;
	close = fgets(line, len, f);
	fclose(f);
	/* COMM may hold spaces and parentheses: the last ')' ends it. */
	if (close == NULL || (close = strrchr(line, ')')) == NULL ||
	    (open = strchr(line, '(')) == NULL)
		return NULL;
	*close = '\0';
	*comm = open + 1;
	return close + 1;
}

/* Every process whose process group is pgid. */
static void
procs_find(long pgid, struct procs *ps)
{
	DIR *d;
	struct dirent *e;
	char line[1024], *fields, *comm;
	long pgrp;

	ps->n = 0;
	if ((d = opendir("/proc")) == NULL)
		return;
	while ((e = readdir(d)) != NULL && ps->n < MAX_PIDS) {
		if (!isdigit((unsigned char)e->d_name[0]) ||
		    (fields = read_stat(
		         e->d_name, line, sizeof(line), &comm)) == NULL)
			continue;
		/* state ppid pgrp ... */
		if (sscanf(fields, " %*c %*d %ld", &pgrp) == 1 &&
		    pgrp == pgid) {
			snprintf(ps->comm[ps->n], sizeof(ps->comm[ps->n]), "%s",
			    comm);
			ps->pid[ps->n++] = atoi(e->d_name);
		}
	}
	closedir(d);
}

/* utime + stime of each process into ticks[], in clock ticks; returns
 * the sum. */
static unsigned long long
procs_cpu(const struct procs *ps, unsigned long long *ticks)
{
	unsigned long long sum = 0, ut, st;
	char pid[16], line[1024], *fields, *comm;

	for (int i = 0; i < ps->n; i++) {
		ticks[i] = 0;
		snprintf(pid, sizeof(pid), "%d", ps->pid[i]);
		if ((fields = read_stat(pid, line, sizeof(line), &comm)) ==
		    NULL)
			continue;
		/* utime and stime are fields 14 and 15; `fields` starts at
		 * field 3 */
		if (sscanf(fields,
		        " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu "
		        "%llu",
		        &ut, &st) == 2) {
			ticks[i] = ut + st;
			sum += ut + st;
		}
	}
	return sum;
}

/* Busy time of the whole machine (every CPU), in clock ticks: what else
 * ran during the timed phase shows how noisy the figures are. */
static unsigned long long
machine_busy(void)
{
	unsigned long long v[8] = {0};
	FILE *f;
	int n = 0;

	if ((f = fopen("/proc/stat", "r")) != NULL) {
		n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu",
		    &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]);
		fclose(f);
	}
	if (n != 8)
		return 0;
	/* user nice system idle iowait irq softirq steal: all but idle
	 * and iowait */
	return v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
}

/* Microseconds during which some task was stalled on I/O
 * (/proc/pressure/io, "some" total); 0 without PSI. The server's ledger
 * commits wait on the disk, which other processes may keep busy. */
static unsigned long long
io_stall_us(void)
{
	unsigned long long total = 0;
	char line[256];
	FILE *f;

	if ((f = fopen("/proc/pressure/io", "r")) == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL) {
		char *t = strstr(line, "total=");

		if (strncmp(line, "some ", 5) == 0 && t != NULL) {
			total = strtoull(t + 6, NULL, 10);
			break;
		}
	}
	fclose(f);
	return total;
}

/* The sum over the processes of one "Key: N kB" line of /proc/PID/FILE:
 * VmRSS of status (what ps shows; shared library pages count once per
 * process), Pss of smaps_rollup (shared pages divided among their users). */
static long
procs_mem(const struct procs *ps, const char *file, const char *key)
{
	long sum = 0;
	char path[64], line[256];
	size_t klen = strlen(key);

	for (int i = 0; i < ps->n; i++) {
		FILE *f;

		snprintf(path, sizeof(path), "/proc/%d/%s", ps->pid[i], file);
		if ((f = fopen(path, "r")) == NULL)
			continue;
		while (fgets(line, sizeof(line), f) != NULL)
			if (strncmp(line, key, klen) == 0 &&
			    line[klen] == ':') {
				sum += strtol(line + klen + 1, NULL, 10);
				break;
			}
		fclose(f);
	}
	return sum;
}

struct mem_peak {
	long rss_kib; /* summed VmRSS */
	long pss_kib; /* summed Pss */
};

static void
mem_sample(const struct procs *ps, struct mem_peak *peak)
{
	long rss = procs_mem(ps, "status", "VmRSS");
	long pss = procs_mem(ps, "smaps_rollup", "Pss");

	if (rss > peak->rss_kib)
		peak->rss_kib = rss;
	if (pss > peak->pss_kib)
		peak->pss_kib = pss;
}

/* --- the timed phase --------------------------------------------------- */

static double
cpu_self_ms(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
	    (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

/* The URLs and header of the requests, made once. */
struct targets {
	char *pkioperation;
	char *getcacaps;
	char *getcacert;
	struct curl_slist *pki_header;
};

/* One connection: its handle and the request in flight on it. */
struct slot {
	CURL *easy;
	long req; /* index of the request in flight, -1 when idle */
	double start; /* ms */
};

static int
start_request(CURLM *multi, const struct targets *t, struct slot *s,
    struct request *rq, long idx)
{
	s->req = idx;
	if (rq->kind == ENROLL) {
		curl_easy_setopt(s->easy, CURLOPT_URL, t->pkioperation);
		curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, t->pki_header);
		curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, rq->msg);
		curl_easy_setopt(s->easy, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)rq->msg_len);
	} else {
		curl_easy_setopt(s->easy, CURLOPT_URL,
		    rq->kind == GET_CACAPS ? t->getcacaps : t->getcacert);
		curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, NULL);
		curl_easy_setopt(s->easy, CURLOPT_HTTPGET, 1L);
	}
	curl_easy_setopt(s->easy, CURLOPT_WRITEDATA, &rq->reply);
	s->start = scep_now_ms();
	return curl_multi_add_handle(multi, s->easy) == CURLM_OK ? 0 : -1;
}

/* "URL?QUERY", malloc'ed. */
static char *
url_with(const char *url, const char *query)
{
	size_t n = strlen(url) + strlen(query) + 2;
	char *s = malloc(n);

	if (s != NULL)
		snprintf(s, n, "%s?%s", url, query);
	return s;
}

/* Runs every request; fills reply, curl_code and latency_ms of each. */
static int
run_load(const struct options *o, struct request *rqs, long total,
    double *elapsed_ms, const struct procs *ps, struct mem_peak *peak)
{
	CURLM *multi = NULL;
	struct targets t = {NULL, NULL, NULL, NULL};
	struct slot *slots = NULL;
	long next = 0, done = 0;
	double t0, last_sample = 0;
	int rc = -1;

	if ((t.pkioperation = url_with(o->url, "operation=PKIOperation")) ==
	        NULL ||
	    (t.getcacaps = url_with(
	         o->url, "operation=GetCACaps&message=scep_load")) == NULL ||
	    (t.getcacert = url_with(
	         o->url, "operation=GetCACert&message=scep_load")) == NULL)
		goto out;
	if ((t.pki_header = curl_slist_append(
	         NULL, "Content-Type: application/x-pki-message")) == NULL ||
	    (t.pki_header = curl_slist_append(t.pki_header, "Expect:")) == NULL)
		goto out;
	if ((multi = curl_multi_init()) == NULL ||
	    (slots = calloc((size_t)o->concurrency, sizeof(*slots))) == NULL)
		goto out;
	curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, o->concurrency);
	curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, o->concurrency);
	for (long i = 0; i < o->concurrency; i++) {
		CURL *e;

		slots[i].req = -1;
		if ((e = slots[i].easy = curl_easy_init()) == NULL)
			goto out;
		curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, http_reply_append);
		curl_easy_setopt(e, CURLOPT_TIMEOUT, o->timeout);
		curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
		curl_easy_setopt(e, CURLOPT_PRIVATE, &slots[i]);
	}
	if (ps->n > 0)
		mem_sample(ps, peak);
	t0 = scep_now_ms();
	for (long i = 0; i < o->concurrency && next < total; i++, next++)
		if (start_request(multi, &t, &slots[i], &rqs[next], next) != 0)
			goto out;
	while (done < total) {
		CURLMsg *m;
		int running, left;

		if (curl_multi_perform(multi, &running) != CURLM_OK)
			goto out;
		while ((m = curl_multi_info_read(multi, &left)) != NULL) {
			struct slot *s = NULL;
			struct request *rq;

			if (m->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(
			    m->easy_handle, CURLINFO_PRIVATE, (char **)&s);
			rq = &rqs[s->req];
			rq->latency_ms = scep_now_ms() - s->start;
			rq->curl_code = m->data.result;
			curl_easy_getinfo(m->easy_handle,
			    CURLINFO_RESPONSE_CODE, &rq->reply.code);
			curl_multi_remove_handle(multi, s->easy);
			done++;
			s->req = -1;
			if (next < total) {
				if (start_request(
				        multi, &t, s, &rqs[next], next) != 0)
					goto out;
				next++;
			}
		}
		if (ps->n > 0 && scep_now_ms() - last_sample >= 100) {
			mem_sample(ps, peak);
			last_sample = scep_now_ms();
		}
		if (done < total &&
		    curl_multi_poll(multi, NULL, 0, 100, NULL) != CURLM_OK)
			goto out;
	}
	*elapsed_ms = scep_now_ms() - t0;
	rc = 0;
out:
	if (slots != NULL)
		for (long i = 0; i < o->concurrency; i++) {
			if (slots[i].req >= 0)
				curl_multi_remove_handle(multi, slots[i].easy);
			curl_easy_cleanup(slots[i].easy);
		}
	free(slots);
	curl_multi_cleanup(multi);
	curl_slist_free_all(t.pki_header);
	free(t.pkioperation);
	free(t.getcacaps);
	free(t.getcacert);
	return rc;
}

/* --- checking the answers (after timing) ------------------------------ */

/* What the GETs must answer: the bodies before the load. */
struct get_answers {
	struct http_reply caps;
	struct http_reply cacert;
};

/* NULL when the answer is a SUCCESS CertRep for rq with a certificate for
 * rq's key and subject, issued by the CA (or, for a GET, the same body as
 * before the load); else why not. */
static const char *
check_answer(const struct scep_ca_certs *c, const struct get_answers *g,
    const struct request *rq, char *why, size_t whylen)
{
	struct scep_certrep *rep = NULL;
	const struct http_reply *want;
	X509 *mine = NULL;
	int err;

	if (rq->curl_code != CURLE_OK) {
		snprintf(why, whylen, "transport: %s",
		    curl_easy_strerror(rq->curl_code));
		return why;
	}
	if (rq->reply.code != 200) {
		snprintf(why, whylen, "HTTP %ld: %.100s", rq->reply.code,
		    rq->reply.body != NULL ? (char *)rq->reply.body : "");
		return why;
	}
	if (rq->kind != ENROLL) {
		want = rq->kind == GET_CACAPS ? &g->caps : &g->cacert;
		if (rq->reply.len != want->len ||
		    memcmp(rq->reply.body, want->body, want->len) != 0) {
			snprintf(why, whylen, "%s: another answer than before",
			    rq->kind == GET_CACAPS ? "GetCACaps" : "GetCACert");
			return why;
		}
		return NULL;
	}
	if ((err = scep_certrep_parse(rq->reply.body, rq->reply.len, c->ra_sig,
	         rq->key->signer, rq->key->pkey, &rep)) != SCEP_OK) {
		snprintf(why, whylen, "CertRep: %s", scep_strerror(err));
		ERR_clear_error();
		return why;
	}
	if (rep->pki_status != SCEP_STATUS_SUCCESS) {
		snprintf(why, whylen, "pkiStatus %d, failInfo %s: %s",
		    rep->pki_status, scep_failinfo_name(rep->failinfo),
		    rep->failinfo_text != NULL ? rep->failinfo_text : "");
		goto out;
	}
	if (rep->transaction_id == NULL ||
	    strcmp(rep->transaction_id, rq->txid) != 0) {
		snprintf(why, whylen, "CertRep for another transactionID");
		goto out;
	}
	if (rep->recipient_nonce_len != rq->nonce_len ||
	    memcmp(rep->recipient_nonce, rq->nonce, rq->nonce_len) != 0) {
		snprintf(why, whylen, "recipientNonce is not our senderNonce");
		goto out;
	}
	for (int i = 0; i < sk_X509_num(rep->certs); i++) {
		X509 *x = sk_X509_value(rep->certs, i);
		X509_NAME *s = X509_get_subject_name(x);
		char cn[128];

		if (X509_NAME_get_text_by_NID(
		        s, NID_commonName, cn, sizeof(cn)) > 0 &&
		    strcmp(cn, rq->subject_cn) == 0 &&
		    EVP_PKEY_eq(X509_get0_pubkey(x), rq->key->pkey) == 1) {
			mine = x;
			break;
		}
	}
	if (mine == NULL) {
		snprintf(why, whylen, "SUCCESS without our certificate");
		goto out;
	}
	if (X509_verify(mine, X509_get0_pubkey(c->ca)) != 1) {
		snprintf(why, whylen, "certificate not signed by the CA");
		goto out;
	}
	why = NULL;
out:
	ERR_clear_error();
	scep_certrep_free(rep);
	return why;
}

/* Nearest rank. */
static double
percentile(const double *sorted, long n, double p)
{
	long k = (long)(p * (double)n + 0.999999);

	if (k < 1)
		k = 1;
	if (k > n)
		k = n;
	return sorted[k - 1];
}

/* --- the report ---------------------------------------------------------- */

struct measures {
	long ok, failed; /* enrollments */
	long gets_failed;
	double elapsed_ms;
	double client_cpu_ms; /* ours, while timing */
	double server_cpu_ms;
	double other_cpu_ms; /* neither server nor client: noise */
	double busy_ms; /* the whole machine */
	double io_stall_ms;
	struct mem_peak peak;
};

static void
report(const struct options *o, const struct procs *ps,
    const struct measures *m, const double *lat)
{
	double secs = m->elapsed_ms / 1e3;
	double per = m->ok > 0 ? 1.0 / (double)m->ok : 0;
	double p50 = percentile(lat, o->count, 0.50);
	double p99 = percentile(lat, o->count, 0.99);
	long tick = sysconf(_SC_CLK_TCK);
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	printf("enrolled %ld of %ld in %.2f s: %.1f enrollments/s; "
	       "latency p50 %.1f ms, p99 %.1f ms, max %.1f ms; %ld failed\n",
	    m->ok, o->count, secs, (double)m->ok / secs, p50, p99,
	    lat[o->count - 1], m->failed);
	if (o->gets > 0)
		printf("GetCACaps and GetCACert: %ld, %ld failed\n", o->gets,
		    m->gets_failed);
	if (ps->n > 0) {
		printf("server (%d processes): %.0f ms CPU, %.3f ms per "
		       "enrollment; peak RSS %.1f MiB (summed VmRSS), %.1f "
		       "MiB (summed PSS)\n",
		    ps->n, m->server_cpu_ms, m->server_cpu_ms * per,
		    (double)m->peak.rss_kib / 1024.0,
		    (double)m->peak.pss_kib / 1024.0);
		for (int i = 0; i < ps->n; i++)
			printf("  %-16s %8.3f ms CPU per enrollment\n",
			    ps->comm[i],
			    (double)(ps->cpu1[i] - ps->cpu0[i]) * 1e3 /
			        (double)tick * per);
	}
	printf("client CPU while timing: %.0f ms (%.3f ms per request)\n",
	    m->client_cpu_ms, m->client_cpu_ms / (double)(o->count + o->gets));
	printf("machine: %.0f%% of %ld CPUs busy, %.0f ms of it neither "
	       "server nor client (noise); some task stalled on I/O %.0f%% "
	       "of the time\n",
	    100 * m->busy_ms / (m->elapsed_ms * (double)ncpu), ncpu,
	    m->other_cpu_ms, 100 * m->io_stall_ms / m->elapsed_ms);
	printf("RESULT count=%ld ok=%ld failures=%ld gets=%ld gets_failed=%ld "
	       "seconds=%.3f rate=%.1f p50_ms=%.2f p99_ms=%.2f max_ms=%.2f "
	       "server_procs=%d server_cpu_ms=%.0f "
	       "cpu_ms_per_enrollment=%.3f peak_rss_kib=%ld "
	       "peak_pss_kib=%ld client_cpu_ms=%.0f other_cpu_ms=%.0f "
	       "io_stall_ms=%.0f",
	    o->count, m->ok, m->failed, o->gets, m->gets_failed, secs,
	    (double)m->ok / secs, p50, p99, lat[o->count - 1], ps->n,
	    m->server_cpu_ms, m->server_cpu_ms * per, m->peak.rss_kib,
	    m->peak.pss_kib, m->client_cpu_ms, m->other_cpu_ms, m->io_stall_ms);
	/* cpu_ms.NAME: per enrollment, summed over the processes of that
	 * name, printed at the first of them */
	for (int i = 0; i < ps->n; i++) {
		unsigned long long ticks = 0;
		int first = 1;

		for (int j = 0; j < ps->n; j++) {
			if (strcmp(ps->comm[j], ps->comm[i]) != 0)
				continue;
			if (j < i)
				first = 0;
			ticks += ps->cpu1[j] - ps->cpu0[j];
		}
		if (first)
			printf(" cpu_ms.%s=%.3f", ps->comm[i],
			    (double)ticks * 1e3 / (double)tick * per);
	}
	printf("\n");
}

/* --- main ---------------------------------------------------------------- */

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: scep_load --url URL (--challenge PW | --challenge-file F)\n"
	    "         [--count N] [--gets M] [--concurrency C]\n"
	    "         [--subject-prefix P] [--keys K] [--key-cache FILE]\n"
	    "         [--server-pgid PGID] [--cipher NAME] [--ca-name NAME]\n"
	    "         [--timeout S]\n"
	    "  --count           enrollments (default 100)\n"
	    "  --gets            GetCACaps and GetCACert requests mixed in\n"
	    "  --challenge-file  one password per line, one per enrollment\n"
	    "  --keys            RSA 2048 keys in the pool (default 64)\n"
	    "  --key-cache       read the pool from FILE, or write it there\n"
	    "  --server-pgid     the server's process group: CPU and RSS\n"
	    "  --cipher          envelope cipher (default from GetCACaps:\n"
	    "                    aes-128-cbc with AES, else des-ede3-cbc)\n");
}

static int
parse_long(const char *s, long min, long max, long *out)
{
	char *end;

	errno = 0;
	*out = strtol(s, &end, 10);
	return errno == 0 && *end == '\0' && end != s && *out >= min &&
	    *out <= max;
}

static int
parse_options(int argc, char **argv, struct options *o)
{
	/* Every option takes a value: a string, or a number in [min, max]. */
	const struct {
		const char *name;
		const char **str;
		long *num;
		long min, max;
	} spec[] = {
	    {"url", &o->url, NULL, 0, 0},
	    {"challenge", &o->challenge, NULL, 0, 0},
	    {"challenge-file", &o->challenge_file, NULL, 0, 0},
	    {"subject-prefix", &o->subject_prefix, NULL, 0, 0},
	    {"key-cache", &o->key_cache, NULL, 0, 0},
	    {"cipher", &o->cipher_name, NULL, 0, 0},
	    {"ca-name", &o->ca_name, NULL, 0, 0},
	    {"count", NULL, &o->count, 1, 10000000},
	    {"gets", NULL, &o->gets, 0, 10000000},
	    {"concurrency", NULL, &o->concurrency, 1, 10000},
	    {"keys", NULL, &o->keys, 1, 100000},
	    {"server-pgid", NULL, &o->server_pgid, 1, 1L << 30},
	    {"timeout", NULL, &o->timeout, 1, 3600},
	};
	enum { NSPEC = sizeof(spec) / sizeof(spec[0]) };
	struct option opts[NSPEC + 2];
	int ch, i;

	memset(o, 0, sizeof(*o));
	o->count = 100;
	o->concurrency = 1;
	o->keys = 64;
	o->subject_prefix = "bench";
	o->ca_name = "scep_load";
	o->timeout = 60;
	for (i = 0; i < NSPEC; i++)
		opts[i] =
		    (struct option){spec[i].name, required_argument, NULL, 0};
	opts[NSPEC] = (struct option){"help", no_argument, NULL, 'h'};
	opts[NSPEC + 1] = (struct option){NULL, 0, NULL, 0};
	while ((ch = getopt_long(argc, argv, "h", opts, &i)) != -1) {
		if (ch == 'h') {
			usage(stdout);
			exit(0);
		}
		if (ch != 0 || i >= NSPEC)
			return -1;
		if (spec[i].str != NULL)
			*spec[i].str = optarg;
		else if (!parse_long(
		             optarg, spec[i].min, spec[i].max, spec[i].num)) {
			fprintf(stderr,
			    "scep_load: --%s takes a number from "
			    "%ld to %ld\n",
			    spec[i].name, spec[i].min, spec[i].max);
			return -1;
		}
	}
	if (o->url == NULL || optind != argc ||
	    (o->challenge == NULL) == (o->challenge_file == NULL))
		return -1;
	if (o->concurrency > o->count + o->gets)
		o->concurrency = o->count + o->gets;
	return 0;
}

/* The envelope's cipher and the digest, as the caps allow. */
static int
pick_algorithms(const struct options *o, const char *caps,
    const EVP_CIPHER **cipher, const EVP_MD **md)
{
	if (o->cipher_name != NULL)
		*cipher = EVP_get_cipherbyname(o->cipher_name);
	else if (scep_has_cap(caps, "AES"))
		*cipher = EVP_aes_128_cbc();
	else if (scep_has_cap(caps, "DES3"))
		*cipher = EVP_des_ede3_cbc();
	else
		*cipher = NULL;
	if (*cipher == NULL) {
		fprintf(stderr,
		    "no cipher: neither AES nor DES3 in GetCACaps "
		    "(or unknown --cipher)\n");
		return -1;
	}
	*md = scep_has_cap(caps, "SHA-256") ? EVP_sha256() : EVP_sha1();
	return 0;
}

int
main(int argc, char **argv)
{
	struct options o;
	struct http_client hc;
	struct scep_ca_certs c;
	struct get_answers g;
	struct key *pool = NULL;
	struct request *rqs = NULL;
	struct procs ps;
	struct measures m;
	char *caps = NULL;
	const EVP_CIPHER *cipher;
	const EVP_MD *md;
	char why[512];
	double cpu0, *lat = NULL;
	unsigned long long scpu0, busy0, io0;
	long total, tick, shown = 0, nlat = 0;
	int rc = 1;

	if (parse_options(argc, argv, &o) != 0) {
		usage(stderr);
		return 1;
	}
	total = o.count + o.gets;
	memset(&c, 0, sizeof(c));
	memset(&g, 0, sizeof(g));
	memset(&ps, 0, sizeof(ps));
	memset(&m, 0, sizeof(m));
	hc.url = o.url;
	hc.user_agent = NULL;
	hc.source = NULL;
	/* Single DES too: micromdm's scepserver encrypts its replies with
	 * it. */
	if (scep_init() != SCEP_OK || scep_load_single_des() != SCEP_OK ||
	    curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "initialisation failed\n");
		return 1;
	}

	/* Set-up: the server's certificates and capabilities, what the
	 * GETs must answer, keys and every message. */
	if (scep_get_ca_certs(&hc, o.ca_name, NULL, &c) != 0 ||
	    scep_get_ca_caps(&hc, o.ca_name, &caps) != 0 ||
	    pick_algorithms(&o, caps, &cipher, &md) != 0)
		goto out;
	if (c.ca == NULL) {
		fprintf(stderr, "GetCACert: no CA certificate\n");
		goto out;
	}
	if (o.gets > 0 &&
	    (http_get(&hc, "operation=GetCACaps&message=scep_load", &g.caps) !=
	            0 ||
	        http_get(&hc, "operation=GetCACert&message=scep_load",
	            &g.cacert) != 0))
		goto out;
	if ((pool = key_pool(&o)) == NULL ||
	    (rqs = calloc((size_t)total, sizeof(*rqs))) == NULL ||
	    (lat = calloc((size_t)o.count, sizeof(*lat))) == NULL)
		goto out;
	if (build_requests(&o, &c, pool, cipher, md, rqs) != 0)
		goto out;
	printf("scep_load: %ld PKCSReq (%s, %s, %ld keys)", o.count,
	    EVP_CIPHER_get0_name(cipher), EVP_MD_get0_name(md), o.keys);
	if (o.gets > 0)
		printf(" and %ld GetCACaps/GetCACert", o.gets);
	printf(" to %s, concurrency %ld\n", o.url, o.concurrency);
	fflush(stdout);

	/* Timed: only sending and storing. */
	/* A server CPU or RSS of 0 would read as a target met. */
	if (o.server_pgid > 0) {
		procs_find(o.server_pgid, &ps);
		if (ps.n == 0) {
			fprintf(stderr,
			    "scep_load: no process in group %ld: no server "
			    "CPU or RSS to measure\n",
			    o.server_pgid);
			goto out;
		}
	}
	busy0 = machine_busy();
	io0 = io_stall_us();
	scpu0 = procs_cpu(&ps, ps.cpu0);
	cpu0 = cpu_self_ms();
	if (run_load(&o, rqs, total, &m.elapsed_ms, &ps, &m.peak) != 0) {
		fprintf(stderr, "the load loop failed\n");
		goto out;
	}
	/* A process that died or was started during the load is not in
	 * the sums (a dead one's ticks read as 0): the figures would be
	 * wrong, so there are none. */
	if (o.server_pgid > 0) {
		struct procs after;

		procs_find(o.server_pgid, &after);
		for (int i = 0; i < ps.n || i < after.n; i++)
			if (after.n != ps.n || after.pid[i] != ps.pid[i]) {
				fprintf(stderr,
				    "scep_load: the server's processes changed "
				    "during the load (%d then %d: one died or "
				    "was restarted): no CPU or RSS figures\n",
				    ps.n, after.n);
				goto out;
			}
	}
	tick = sysconf(_SC_CLK_TCK);
	m.client_cpu_ms = cpu_self_ms() - cpu0;
	m.server_cpu_ms =
	    (double)(procs_cpu(&ps, ps.cpu1) - scpu0) * 1e3 / (double)tick;
	m.busy_ms = (double)(machine_busy() - busy0) * 1e3 / (double)tick;
	m.io_stall_ms = (double)(io_stall_us() - io0) / 1e3;
	m.other_cpu_ms = m.busy_ms - m.server_cpu_ms - m.client_cpu_ms;
	if (m.other_cpu_ms < 0)
		m.other_cpu_ms = 0;

	/* Every answer, after the clock stopped. */
	for (long i = 0; i < total; i++) {
		const struct request *rq = &rqs[i];
		int good = check_answer(&c, &g, rq, why, sizeof(why)) == NULL;

		if (rq->kind == ENROLL) {
			lat[nlat++] = rq->latency_ms;
			if (good)
				m.ok++;
			else
				m.failed++;
		} else if (!good) {
			m.gets_failed++;
		}
		if (!good && shown++ < MAX_REASONS)
			fprintf(stderr, "request %ld (%s): %s\n", i,
			    rq->kind == ENROLL ? rq->subject_cn : "GET", why);
	}
	qsort(lat, (size_t)nlat, sizeof(*lat), scep_cmp_double);
	report(&o, &ps, &m, lat);
	rc = m.failed == 0 && m.gets_failed == 0 ? 0 : 2;
out:
	if (rqs != NULL)
		for (long i = 0; i < total; i++) {
			free(rqs[i].txid);
			free(rqs[i].msg);
			free(rqs[i].nonce);
			http_reply_clear(&rqs[i].reply);
		}
	free(rqs);
	free(lat);
	key_pool_free(pool, o.keys);
	free(caps);
	http_reply_clear(&g.caps);
	http_reply_clear(&g.cacert);
	scep_ca_certs_clear(&c);
	curl_global_cleanup();
	return rc;
}
