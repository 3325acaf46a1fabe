/*
 * A structure-aware mutator for the targets whose input is a packed
 * Request (fuzz_ca_rpc, fuzz_challenge_rpc): one field of the unpacked
 * message changed, at any depth, and packed again. A byte mutation of a
 * packed message mostly no longer unpacks, or loses the body or origin a
 * route needs, so few of libFuzzer's own mutations reach a handler; these
 * all do. One input in four still gets libFuzzer's byte mutation (the
 * unpacking is fuzzed too), as does one with no field to change; only
 * those switch a oneof to another member or add an element to a repeated
 * field. Only with libFuzzer (SCEPD_LIBFUZZER): the plain driver runs the
 * corpus as it is.
 */
#ifndef SCEPD_FUZZ_PROTOBUF_MUTATOR_H
#define SCEPD_FUZZ_PROTOBUF_MUTATOR_H

#ifdef SCEPD_LIBFUZZER
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "scep.pb-c.h"

size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);

struct pb_rng {
	uint64_t s;
};

static uint32_t
pb_next(struct pb_rng *r)
{
	/* xorshift64*: reproducible from libFuzzer's seed. */
	r->s ^= r->s >> 12;
	r->s ^= r->s << 25;
	r->s ^= r->s >> 27;
	return (uint32_t)((r->s * 2685821657736338717ULL) >> 32);
}

/* Values at the edges a handler's checks are about, or any. */
static int64_t
pb_integer(struct pb_rng *r, int64_t old)
{
	static const int64_t edges[] = {0, 1, -1, INT32_MAX, INT32_MIN,
	    UINT32_MAX, INT64_MAX, INT64_MIN, 255, 65536};

	switch (pb_next(r) % 4) {
	case 0:
		return edges[pb_next(r) % (sizeof(edges) / sizeof(edges[0]))];
	case 1:
		return (int64_t)((uint64_t)old + pb_next(r) % 17 - 8u);
	case 2:
		return (int64_t)pb_next(r);
	default:
		return (int64_t)((uint64_t)pb_next(r) << 32 | pb_next(r));
	}
}

/* `len` bytes at `old` mutated by libFuzzer into a new buffer of *out_len
 * (at most 4 KiB more); NUL-terminated past its end for strings. An empty
 * value starts as one byte: libFuzzer's mutations pick a byte of what
 * they are given. */
static uint8_t *
pb_bytes(struct pb_rng *r, const void *old, size_t len, size_t *out_len)
{
	size_t cap = len + 4096;
	uint8_t *buf = malloc(cap + 1);

	if (buf == NULL)
		abort();
	if (len > 0)
		memcpy(buf, old, len);
	else
		buf[len++] = (uint8_t)pb_next(r);
	*out_len = LLVMFuzzerMutate(buf, len, cap);
	buf[*out_len] = '\0';
	return buf;
}

static int pb_mutate_message(ProtobufCMessage *m, struct pb_rng *r, int depth);

/* The value at `member` (one element of a repeated field, or the field):
 * 1, or 0 when it is a message with nothing to change. */
static int
pb_mutate_value(const ProtobufCFieldDescriptor *f, void *member,
    struct pb_rng *r, int depth)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		*(uint32_t *)member =
		    (uint32_t)pb_integer(r, *(int32_t *)member);
		break;
	case PROTOBUF_C_TYPE_ENUM: {
		const ProtobufCEnumDescriptor *e = f->descriptor;

		*(int *)member = pb_next(r) % 2 == 0 && e->n_values > 0
		    ? e->values[pb_next(r) % e->n_values].value
		    : (int)pb_integer(r, *(int *)member);
		break;
	}
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		*(int64_t *)member = pb_integer(r, *(int64_t *)member);
		break;
	case PROTOBUF_C_TYPE_BOOL:
		*(protobuf_c_boolean *)member = !*(protobuf_c_boolean *)member;
		break;
	case PROTOBUF_C_TYPE_FLOAT:
		*(float *)member = (float)pb_integer(r, 0) / 7.0f;
		break;
	case PROTOBUF_C_TYPE_DOUBLE:
		*(double *)member = (double)pb_integer(r, 0) / 7.0;
		break;
	case PROTOBUF_C_TYPE_STRING: {
		char **s = member, *old = *s;
		size_t len;

		*s = (char *)pb_bytes(
		    r, old, old != NULL ? strlen(old) : 0, &len);
		/* Not the static empty string unpack leaves in unset ones. */
		if (old != NULL && old != f->default_value &&
		    old != protobuf_c_empty_string)
			free(old);
		break;
	}
	case PROTOBUF_C_TYPE_BYTES: {
		ProtobufCBinaryData *b = member;
		const ProtobufCBinaryData *def = f->default_value;
		uint8_t *old = b->data;

		b->data = pb_bytes(r, old, b->len, &b->len);
		if (old != NULL && (def == NULL || def->data != old))
			free(old);
		break;
	}
	case PROTOBUF_C_TYPE_MESSAGE: {
		ProtobufCMessage **sub = member;
		const ProtobufCMessageDescriptor *d = f->descriptor;

		if (*sub == NULL) {
			if ((*sub = malloc(d->sizeof_message)) == NULL)
				abort();
			d->message_init(*sub);
			pb_mutate_message(*sub, r, depth + 1);
			return 1;
		}
		return pb_mutate_message(*sub, r, depth + 1);
	}
	}
	return 1;
}

static void
pb_drop_last(const ProtobufCFieldDescriptor *f, char *array, size_t n)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_STRING:
		free(((char **)(void *)array)[n - 1]);
		break;
	case PROTOBUF_C_TYPE_BYTES:
		free(((ProtobufCBinaryData *)(void *)array)[n - 1].data);
		break;
	case PROTOBUF_C_TYPE_MESSAGE:
		protobuf_c_message_free_unpacked(
		    ((ProtobufCMessage **)(void *)array)[n - 1], NULL);
		break;
	default:
		break;
	}
}

static size_t
pb_value_size(const ProtobufCFieldDescriptor *f)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		return 8;
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_DOUBLE:
		return sizeof(double);
	case PROTOBUF_C_TYPE_STRING:
		return sizeof(char *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(ProtobufCMessage *);
	default:
		return 4;
	}
}

/* Whether field `f` of the message at `base` can change here: a oneof's
 * member only when set (another would leave the set one unfreed), a
 * repeated field only with an element. */
static int
pb_eligible(const ProtobufCFieldDescriptor *f, const char *base)
{
	if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
	    *(const uint32_t *)(base + f->quantifier_offset) != f->id)
		return 0;
	return f->label != PROTOBUF_C_LABEL_REPEATED ||
	    *(const size_t *)(base + f->quantifier_offset) > 0;
}

/* One field of `m` changed, picked among those that can: an element of a
 * repeated field (or its last one dropped), or the field. 1, or 0 when
 * nothing could change (no such field, or too deep). */
static int
pb_mutate_message(ProtobufCMessage *m, struct pb_rng *r, int depth)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	unsigned picks[64], n = 0;
	char *base = (char *)m;

	if (depth > 8)
		return 0;
	for (unsigned i = 0; i < d->n_fields && n < 64; i++)
		if (pb_eligible(&d->fields[i], base))
			picks[n++] = i;
	while (n > 0) {
		unsigned k = pb_next(r) % n;
		const ProtobufCFieldDescriptor *f = &d->fields[picks[k]];

		picks[k] = picks[--n];
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t *count = (size_t *)(base + f->quantifier_offset);
			char *array = *(char **)(base + f->offset);

			if (pb_next(r) % 8 == 0) {
				pb_drop_last(f, array, *count);
				(*count)--;
				return 1;
			}
			if (pb_mutate_value(f,
			        array +
			            pb_value_size(f) * (pb_next(r) % *count),
			        r, depth))
				return 1;
			continue;
		}
		if (f->label == PROTOBUF_C_LABEL_OPTIONAL &&
		    f->type != PROTOBUF_C_TYPE_MESSAGE &&
		    f->type != PROTOBUF_C_TYPE_STRING &&
		    !(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
			*(protobuf_c_boolean *)(base + f->quantifier_offset) =
			    1;
		if (pb_mutate_value(f, base + f->offset, r, depth))
			return 1;
	}
	return 0;
}

size_t LLVMFuzzerCustomMutator(
    uint8_t *data, size_t size, size_t max_size, unsigned int seed);

size_t
LLVMFuzzerCustomMutator(
    uint8_t *data, size_t size, size_t max_size, unsigned int seed)
{
	struct pb_rng r = {(uint64_t)seed * 0x9E3779B97F4A7C15ULL | 1};
	Scep__V1__Request *req;
	size_t len;

	if (pb_next(&r) % 4 == 0 ||
	    (req = scep__v1__request__unpack(NULL, size, data)) == NULL)
		return LLVMFuzzerMutate(data, size, max_size);
	if (!pb_mutate_message(&req->base, &r, 0) ||
	    (len = scep__v1__request__get_packed_size(req)) > max_size) {
		scep__v1__request__free_unpacked(req, NULL);
		return LLVMFuzzerMutate(data, size, max_size);
	}
	scep__v1__request__pack(req, data);
	scep__v1__request__free_unpacked(req, NULL);
	return len;
}
#endif

#endif
