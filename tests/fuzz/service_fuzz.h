/*
 * What the service fuzz targets (fuzz_challenge_rpc, fuzz_ca_rpc) share:
 * the service's directory of its own under /tmp, and the check of what a
 * service answers a request its route table handed a handler.
 */
#ifndef SCEPD_FUZZ_SERVICE_FUZZ_H
#define SCEPD_FUZZ_SERVICE_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "scep.pb-c.h"

/* The service's database directory, with scepd.conf in it. */
struct fuzz_workdir {
	char dir[64];
	char conf[96];
};

static void
fuzz_workdir_make(
    struct fuzz_workdir *w, const char *name, const char *conf_text)
{
	FILE *fp;

	snprintf(w->dir, sizeof(w->dir), "/tmp/%s.XXXXXX", name);
	if (mkdtemp(w->dir) == NULL)
		abort();
	snprintf(w->conf, sizeof(w->conf), "%s/scepd.conf", w->dir);
	if ((fp = fopen(w->conf, "w")) == NULL)
		abort();
	fputs(conf_text, fp);
	fclose(fp);
}

/* LMDB's two files, the configuration, the directory. */
static void
fuzz_workdir_remove(const struct fuzz_workdir *w)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/data.mdb", w->dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/lock.mdb", w->dir);
	unlink(path);
	unlink(w->conf);
	rmdir(w->dir);
}

/*
 * What a service answers: its status is one of Status's values; an
 * answer OK carries the body of the request's kind (Request's and
 * Reply's oneofs share their numbers), a refusal says why; the reply packs
 * and unpacks as the server sends it. Aborts otherwise.
 */
static void
fuzz_reply_check(
    const Scep__V1__Reply *reply, Scep__V1__Request__BodyCase asked)
{
	Scep__V1__Reply__BodyCase want = (Scep__V1__Reply__BodyCase)asked;
	Scep__V1__Reply *back;
	uint8_t *buf;
	size_t len;

	if (protobuf_c_enum_descriptor_get_value(
	        &scep__v1__status__descriptor, (int)reply->status) == NULL)
		abort();
	if (reply->status == SCEP__V1__STATUS__STATUS_OK) {
		if (reply->body_case != want)
			abort();
	} else if (reply->error == NULL || reply->error[0] == '\0' ||
	    (reply->body_case != SCEP__V1__REPLY__BODY__NOT_SET &&
	        reply->body_case != want)) {
		abort();
	}
	len = scep__v1__reply__get_packed_size(reply);
	if ((buf = malloc(len ? len : 1)) == NULL)
		abort();
	if (scep__v1__reply__pack(reply, buf) != len)
		abort();
	back = scep__v1__reply__unpack(NULL, len, buf);
	if (back == NULL || back->status != reply->status ||
	    back->body_case != reply->body_case)
		abort();
	scep__v1__reply__free_unpacked(back, NULL);
	free(buf);
}

#endif
