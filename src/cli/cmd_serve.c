/* cmd_serve.c: lama serve, the main process: the transport (src/serve),
 * the protocol (src/ipc) and the controller (src/controller) over one
 * logged-in session, on one loop. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "controller/controller.h"
#include "crypto/crypto.h"
#include "ipc/ipc.h"
#include "models/models.h"
#include "serve/serve.h"
#include "util/err.h"
#include "util/mem.h"

struct served {
	lama_ipc *d;
	lama_client **clients; /* connected, for pushes */
	size_t n, cap;
};

static void on_connect(void *ctx, lama_client *c)
{
	struct served *sv = ctx;

	if (sv->n == sv->cap) {
		size_t cap = sv->cap ? 2 * sv->cap : 64;
		lama_client **nc = lama_realloc(sv->clients, cap * sizeof(*nc));

		if (!nc) {
			lama_server_disconnect(c);
			return;
		}
		sv->clients = nc;
		sv->cap = cap;
	}
	sv->clients[sv->n++] = c;
}

static void on_close(void *ctx, lama_client *c)
{
	struct served *sv = ctx;

	for (size_t i = 0; i < sv->n; i++)
		if (sv->clients[i] == c) {
			sv->clients[i] = sv->clients[--sv->n];
			break;
		}
}

static void on_message(void *ctx, lama_client *c, const char *msg, size_t n)
{
	struct served *sv = ctx;
	char *reply = NULL;
	size_t len = 0;

	if (lama_ipc_handle(sv->d, msg, n, c, &reply, &len) != 0) {
		lama_server_disconnect(c); /* not even an error reply could be made */
		return;
	}
	lama_server_send(c, reply, len); /* a failure disconnects c */
	lama_free(reply);
}

static void on_oversize(void *ctx, lama_client *c)
{
	static const char too_large[] =
		"{\"id\":null,\"error\":{\"code\":\"" LAMA_IPC_TOO_LARGE "\","
		"\"message\":\"a message is at most 1 MiB\"}}";

	(void)ctx;
	lama_server_send(c, too_large, sizeof(too_large) - 1);
}

/* An update for every client, after the change is durable. */
static void push(void *ctx, const char *channel, const json_t *payload)
{
	struct served *sv = ctx;
	size_t len = 0;
	char *text = lama_ipc_push(channel, payload, &len);

	if (!text)
		return;
	for (size_t i = sv->n; i-- > 0;)
		lama_server_send(sv->clients[i], text, len);
	lama_free(text);
}

/* The first start on a data folder without users makes one: the name
 * from --name, else $USER, the password from $LAMA_PASSWORD or asked
 * twice. So `lama serve` alone works on a fresh machine. */
static int first_user(const char *name, lama_session **s)
{
	struct lama_kdf_params kdf;
	char *pw = NULL;
	size_t len;
	int rc;

	if (!name || !*name)
		name = getenv("USER");
	if (!name || !*name)
		name = "me";
	if ((rc = cli_kdf(&kdf)))
		return rc;
	fprintf(stderr, "lama serve: no user in %s yet; creating \"%s\"\n", cli.home, name);
	if ((rc = cli_new_password("LAMA_PASSWORD", &pw, &len)))
		return rc;
	rc = lama_account_register(cli.home, name, pw, len, &kdf, s);
	lama_secure_free(pw);
	return rc;
}

int cmd_serve(int argc, char **argv)
{
	struct served sv = { 0 };
	struct lama_server_config cfg = { .on_connect = on_connect, .on_message = on_message,
					  .on_oversize = on_oversize, .on_close = on_close };
	struct lama_controller_push pushes = { push, &sv };
	const char *name = NULL;
	lama_controller *ctl = NULL;
	lama_server *srv = NULL;
	lama_session *s = NULL;
	size_t users = 0;
	int rc;

	if (cli_wants_help(argc, argv)) {
		puts("usage: lama serve [--name NAME]\n\n"
		     "Runs lama's main process for the data folder: it owns the archive and\n"
		     "answers the IPC protocol (docs/ipc.md) on the Unix socket DIR/lama.sock,\n"
		     "one JSON message per line. One main process per data folder. The\n"
		     "password comes from $LAMA_PASSWORD or a prompt. On a folder without\n"
		     "users the first start creates one (--name, else $USER), asking for a\n"
		     "new password twice. SIGINT or SIGTERM stop it cleanly. (The web UI and\n"
		     "the WebSocket come next.)");
		return EXIT_OK;
	}
	if (argc == 3 && !strcmp(argv[1], "--name"))
		name = argv[2];
	else if (argc != 1)
		return cli_usage("usage: lama serve [--name NAME]");
	if ((rc = lama_account_count(cli.home, &users)))
		return cli_fail(rc);
	if (users == 0 && (rc = first_user(name, &s)))
		return cli_fail(rc);
	/* the folder's lock before any password: a second server fails fast */
	if ((rc = lama_server_open(&srv, cli.home, &cfg, &sv)))
		goto out;
	if (!s && (rc = cli_login(&s)))
		goto out;
	if ((rc = lama_models_init(s)) || (rc = lama_ipc_new(&sv.d)) ||
	    (rc = lama_controller_new(&ctl, sv.d, s, &pushes)))
		goto out;
	printf("lama serve: serving %s\n  socket: %s/%s\n", cli.home, cli.home, LAMA_SERVE_SOCKET);
	fflush(stdout);
	rc = lama_server_run(srv);
out:
	lama_server_close(srv); /* closes the clients first */
	lama_ipc_free(sv.d);
	lama_controller_free(ctl);
	lama_session_logout(s);
	lama_free(sv.clients);
	return rc ? cli_fail(rc) : EXIT_OK;
}
