/* fuzz_ipc.c: libFuzzer target for lama_ipc_handle.
 *
 * Properties: every input gets a reply that is one line of strict JSON, an
 * object of an id and exactly one of result and error; a result (from the
 * echo handler, which returns the payload) equals the payload jansson reads
 * from the same input, and a request jansson rejects never gets a result.
 * Anything else (a crash, a sanitizer report, a leak) is a bug. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ipc/ipc.h"
#include "util/mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int echo(void *ctx, const struct lama_ipc_call *call, json_t **result)
{
	*result = json_incref((json_t *)call->payload);
	return 0;
}

static lama_ipc *dispatcher(void)
{
	static lama_ipc *d;

	if (d)
		return d;
	if (lama_ipc_new(&d) || lama_ipc_register(d, "action:echo", NULL, echo, NULL) ||
	    lama_ipc_register(d, "query:typed", "s:s,i:i,n:n,b:b,h:h,o:o,a:a,opt:s?", echo, NULL) ||
	    lama_ipc_register(d, "query:empty", "", echo, NULL))
		abort();
	return d;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *reply = NULL;
	size_t len = 0;
	json_t *r, *req, *res;

	if (lama_ipc_handle(dispatcher(), (const char *)data, size, NULL, &reply, &len))
		abort();
	if (!reply || strlen(reply) != len || memchr(reply, '\n', len))
		abort();
	r = json_loadb(reply, len, JSON_REJECT_DUPLICATES, NULL);
	if (!r || json_object_size(r) != 2 || !json_object_get(r, "id"))
		abort();
	res = json_object_get(r, "result");
	if (!res && !json_is_object(json_object_get(r, "error")))
		abort();
	if (res) {
		json_t *p;

		req = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
		if (!req)
			abort();
		p = json_object_get(req, "payload");
		if (p ? !json_equal(p, res) : json_object_size(res) != 0)
			abort();
		json_decref(req);
	}
	json_decref(r);
	lama_free(reply);
	return 0;
}
