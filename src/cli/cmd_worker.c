/* cmd_worker.c: `lama worker KIND PARENT_PID`, the worker process that the
 * manager of lama serve starts (src/worker, docs/workers.md). Not for
 * people: without the manager's socket on fd 3 it says so and exits 2. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "util/err.h"
#include "worker/worker.h"

#define WORKER_FD 3

int cmd_worker(int argc, char **argv)
{
	struct stat st;
	char *end;
	long parent;
	int rc;

	/* first, so that a manager that dies from here on takes us along;
	 * the parent check below covers one that died before */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (argc != 3 || !lama_worker_kind_known(argv[1]))
		return cli_usage("worker is internal: lama serve starts its workers itself");
	parent = strtol(argv[2], &end, 10);
	if (*end || parent <= 1 || getppid() != (pid_t)parent || fstat(WORKER_FD, &st) ||
	    !S_ISSOCK(st.st_mode))
		return cli_usage("worker is internal: lama serve starts its workers itself");
	/* Ctrl-C in a terminal reaches the whole process group: the manager
	 * ends its workers itself, by EOF */
	signal(SIGINT, SIG_IGN);
	rc = lama_worker_main(argv[1], WORKER_FD);
	if (rc) {
		fprintf(stderr, "lama: %s worker: %s\n", argv[1], lama_errmsg());
		return EXIT_FAIL;
	}
	return EXIT_OK;
}
