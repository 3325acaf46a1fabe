/* Unpacking a Request frame as every service does with what it receives. */
#include <stddef.h>
#include <stdint.h>

#include "rpc.h"
#include "scep.pb-c.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Scep__V1__Request *req = rpc_request_unpack(data, size);
	Scep__V1__Reply *rep = scep__v1__reply__unpack(NULL, size, data);

	scep__v1__request__free_unpacked(req, NULL);
	scep__v1__reply__free_unpacked(rep, NULL);
	return 0;
}
