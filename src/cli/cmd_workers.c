/* cmd_workers.c: lama workers, the health of the running lama serve's
 * worker processes (query:getWorkers). */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "util/err.h"

static long long num(const json_t *o, const char *key)
{
	return (long long)json_integer_value(json_object_get(o, key));
}

int cmd_workers(int argc, char **argv)
{
	cli_conn *k = NULL;
	json_t *r = NULL;
	const json_t *w;
	size_t i;
	int json, rc;

	if (cli_wants_help(argc, argv)) {
		puts("usage: lama workers [--json]\n\n"
		     "Lists the worker processes of the running `lama serve` (docs/workers.md):\n"
		     "each one's kind, pid, whether it is busy, tasks done and failed, how\n"
		     "often it was restarted, and the tasks waiting for its pool.");
		return EXIT_OK;
	}
	if (argc > 2 || (argc == 2 && strcmp(argv[1], "--json")))
		return cli_usage("usage: lama workers [--json]");
	json = argc == 2;
	if ((rc = cli_connect(&k)))
		return cli_fail(rc);
	if (!k)
		return cli_fail(lama_error(LAMA_ENOTFOUND,
					   "lama serve is not running on %s (workers live inside it)", cli.home));
	rc = cli_call(k, "query:getWorkers", json_object(), &r);
	cli_disconnect(k);
	if (rc)
		return cli_fail(rc);
	if (!json_is_array(json_object_get(r, "workers"))) {
		json_decref(r);
		return cli_fail(lama_error(LAMA_EFORMAT, "lama serve answered without \"workers\""));
	}
	if (json) {
		rc = cli_print_json(json_incref(json_object_get(r, "workers")));
		json_decref(r);
		return rc ? cli_fail(rc) : EXIT_OK;
	}
	printf("%-8s %8s %5s %8s %7s %9s %7s\n", "KIND", "PID", "BUSY", "DONE", "FAILED", "RESTARTS", "QUEUED");
	json_array_foreach(json_object_get(r, "workers"), i, w) {
		const char *kind = json_string_value(json_object_get(w, "kind"));
		char pid[24] = "-";

		if (json_is_integer(json_object_get(w, "pid")))
			snprintf(pid, sizeof(pid), "%lld", num(w, "pid"));
		printf("%-8.16s %8s %5s %8lld %7lld %9lld %7lld\n", kind ? kind : "?", pid,
		       json_is_true(json_object_get(w, "busy")) ? "yes" : "no", num(w, "done"),
		       num(w, "failed"), num(w, "restarts"), num(w, "queued"));
	}
	json_decref(r);
	return EXIT_OK;
}
