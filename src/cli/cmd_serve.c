/* cmd_serve.c: lama serve, the main process: the transports (src/serve),
 * the protocol (src/ipc), the state manager (src/state) and the
 * controller (src/controller) over the folder's session, on one loop.
 * Startup in the seed's order: the folder's lock, the session (or locked,
 * waiting for action:login), the saved state, then requests. */
#include <fcntl.h>
#include <signal.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "cli/cli.h"
#include "controller/controller.h"
#include "crypto/crypto.h"
#include "ipc/ipc.h"
#include "models/models.h"
#include "serve/serve.h"
#include "state/state.h"
#include "util/err.h"
#include "util/mem.h"
#include "web/web.h"
#include "worker/worker.h"

/* A client of any transport: what the protocol and the state manager see. */
struct peer {
	lama_client *unix_client;    /* one of the two */
	lama_web_client *web_client;
};

struct served {
	lama_ipc *d;
	lama_state *st;
	lama_controller *ctl;
	lama_web *web;
};

static int peer_send(void *client, const char *text, size_t n)
{
	struct peer *p = client;

	if (p->web_client)
		return lama_web_send(p->web_client, text, n);
	return lama_server_send(p->unix_client, text, n); /* a failure disconnects */
}

static void on_connect(void *ctx, lama_client *c)
{
	struct peer *p = lama_calloc(1, sizeof(*p));

	(void)ctx;
	if (!p) {
		lama_server_disconnect(c);
		return;
	}
	p->unix_client = c;
	lama_server_client_set_data(c, p);
}

static void on_close(void *ctx, lama_client *c)
{
	struct served *sv = ctx;
	struct peer *p = lama_server_client_data(c);

	if (p) {
		lama_state_unsubscribe(sv->st, p);
		lama_controller_forget(sv->ctl, p);
	}
	lama_free(p);
}

/* One request in, its reply out (after any updates the handler sent). */
static void handle(struct served *sv, struct peer *p, const char *msg, size_t n)
{
	char *reply = NULL;
	size_t len = 0;

	if (lama_ipc_handle(sv->d, msg, n, p, &reply, &len) != 0) {
		if (p->web_client) /* not even an error reply */
			lama_web_disconnect(p->web_client);
		else
			lama_server_disconnect(p->unix_client);
		return;
	}
	if (reply) /* else the handler answers later */
		peer_send(p, reply, len);
	lama_free(reply);
}

static void on_message(void *ctx, lama_client *c, const char *msg, size_t n)
{
	struct peer *p = lama_server_client_data(c);

	if (p)
		handle(ctx, p, msg, n);
}

static void on_oversize(void *ctx, lama_client *c)
{
	static const char too_large[] =
		"{\"id\":null,\"error\":{\"code\":\"" LAMA_IPC_TOO_LARGE "\","
		"\"message\":\"a message is at most 1 MiB\"}}";

	(void)ctx;
	lama_server_send(c, too_large, sizeof(too_large) - 1);
}

/* The WebSocket (src/web): the same peers and the same handler. */
static void web_connect(void *ctx, lama_web_client *c)
{
	struct peer *p = lama_calloc(1, sizeof(*p));

	(void)ctx;
	if (!p) {
		lama_web_disconnect(c);
		return;
	}
	p->web_client = c;
	lama_web_client_set_data(c, p);
}

static void web_message(void *ctx, lama_web_client *c, const char *msg, size_t n)
{
	struct peer *p = lama_web_client_data(c);

	if (p)
		handle(ctx, p, msg, n);
}

static void web_close(void *ctx, lama_web_client *c)
{
	struct served *sv = ctx;
	struct peer *p = lama_web_client_data(c);

	if (p) {
		lama_state_unsubscribe(sv->st, p);
		lama_controller_forget(sv->ctl, p);
	}
	lama_free(p);
}

/* Subscribers hear that the server goes away (and may reconnect later). */
static void on_stop(void *ctx)
{
	struct served *sv = ctx;
	json_t *p = json_pack("{s:s}", "what", "stopping");

	if (sv->st && (!p || lama_state_publish(sv->st, "update:stateChanged", p)))
		lama_error_clear();
	json_decref(p);
	/* that was the last update: nothing new starts, on either transport */
	lama_controller_stop(sv->ctl);
	lama_web_stop(sv->web);
}

/* A password without asking anyone: from the environment or a terminal. */
static int can_ask_password(void)
{
	int fd;

	if (getenv("LAMA_PASSWORD"))
		return 1;
	fd = open("/dev/tty", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return 0;
	close(fd);
	return 1;
}

/* The first start on a data folder without users makes one: the name
 * from --name, else $USER, the password from $LAMA_PASSWORD or asked
 * twice. So `lama serve` alone works on a fresh machine. */
static int first_user(const char **namep, lama_session **s)
{
	const char *name = *namep;
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
	*namep = name;
	return rc;
}

/* jansson's own buffers (its lexer, parsed strings) held requests, and so
 * passwords: everything it frees is wiped first. */
static void wipe_free(void *p)
{
	if (p) {
		explicit_bzero(p, malloc_usable_size(p));
		free(p);
	}
}

/* A backup still running finishes before the process exits; meanwhile a
 * second signal would kill it half done (its leftovers are cleaned at
 * the next backup, but the user's file would be missing): say so, wait. */
static void finish(lama_controller *ctl, lama_web *web)
{
	lama_controller_stop(ctl);
	lama_web_stop(web);
	if (!lama_controller_busy(ctl))
		return;
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	fprintf(stderr, "lama serve: finishing the backup in progress before exiting "
			"(SIGKILL abandons it)\n");
	lama_controller_drain(ctl);
}

static const char usage[] = "usage: lama serve [--name NAME] [--locked] [--web-port N]";

int cmd_serve(int argc, char **argv)
{
	struct served sv = { 0 };
	struct lama_server_config cfg = { .on_connect = on_connect, .on_message = on_message,
					  .on_oversize = on_oversize, .on_close = on_close,
					  .on_stop = on_stop };
	struct lama_controller_config ccfg = { .home = cli.home, .user = cli.user };
	struct lama_web_config wcfg = { .on_connect = web_connect, .on_message = web_message,
					.on_close = web_close };
	char urlfile[LAMA_PATH_MAX + 16], url[LAMA_WEB_URL_MAX];
	lama_web *web = NULL;
	lama_workers *workers = NULL;
	int saved = 0;
	const char *name = NULL;
	lama_controller *ctl = NULL;
	lama_server *srv = NULL;
	lama_session *s = NULL;
	size_t users = 0;
	int rc, locked = 0;

	if (cli_wants_help(argc, argv)) {
		printf("%s\n\n"
		       "Runs lama's main process for the data folder: it owns the archive and\n"
		       "answers the IPC protocol (docs/ipc.md) on the Unix socket DIR/lama.sock,\n"
		       "one JSON message per line. One main process per data folder.\n\n"
		       "The password comes from $LAMA_PASSWORD or a prompt. Without either (or\n"
		       "with --locked) it starts locked and waits for action:login or\n"
		       "action:register from a client. On a folder without users, a first\n"
		       "start that can ask for a password creates one (--name, else $USER),\n"
		       "asking for the new password twice. SIGINT or SIGTERM stop it cleanly.\n\n"
		       "The UI: the same protocol over a WebSocket on 127.0.0.1 (docs/web.md),\n"
		       "port --web-port N (default: one the system picks). The page's address,\n"
		       "with this run's secret token, is written to DIR/web.url (mode 0600)\n"
		       "and printed when the output is a terminal: open it in a browser.\n",
		       usage);
		return EXIT_OK;
	}
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--name") && i + 1 < argc)
			name = argv[++i];
		else if (!strcmp(argv[i], "--locked"))
			locked = 1;
		else if (!strcmp(argv[i], "--web-port") && i + 1 < argc) {
			long port;

			if (cli_number(argv[++i], 0, 65535, &port))
				return cli_usage("--web-port must be a port number (0 to 65535)");
			wcfg.port = (int)port;
		}
		else
			return cli_usage("%s", usage);
	}
	if ((rc = cli_kdf(&ccfg.kdf)))
		return cli_fail(rc);
	json_set_alloc_funcs(malloc, wipe_free);
	if (!locked && !can_ask_password())
		locked = 1;
	/* the folder's lock before anything else: a second server fails
	 * fast, before it asks for a password or makes a user */
	if ((rc = lama_home_create(cli.home)) || (rc = lama_server_open(&srv, cli.home, &cfg, &sv)) ||
	    (rc = lama_account_count(cli.home, &users)))
		goto out;
	if (users == 0 && !locked && (rc = first_user(&name, &s)))
		goto out;
	if (users == 0 && s)
		ccfg.user = name;
	if (!s && !locked && (rc = cli_login(&s)))
		goto out;
	if ((s && (rc = lama_models_init(s))) || (rc = lama_ipc_new(&sv.d)) ||
	    (rc = lama_state_new(&sv.st, peer_send, 0, 0)))
		goto out;
	ccfg.state = sv.st;
	ccfg.loop = lama_server_loop(srv);
	ccfg.send = peer_send;
	rc = lama_controller_new(&ctl, sv.d, &ccfg, s);
	s = NULL; /* the controller's now, even on failure */
	if (rc)
		goto out;
	sv.ctl = ctl;
	{
		/* the workers: one per core, or the user's `workers` setting; the
		 * index one alone: SQLite has one writer, and one worker runs the
		 * index's tasks in order (a query sees every change before it).
		 * Its queue takes a burst of sends (an `add` each) */
		unsigned size = (unsigned)lama_controller_setting(ctl, "workers", 0);
		struct lama_worker_pool pools[] = { { "crypto", size, 0, 0 },
						    { "sync", size, 0, 0 },
						    { "index", 1, 4096, 0 } };

		if ((rc = lama_workers_new(&workers, lama_server_loop(srv), "/proc/self/exe", pools,
					   sizeof(pools) / sizeof(pools[0]))))
			goto out;
		lama_controller_set_workers(ctl, workers);
	}
	/* the WebSocket on the same loop; its address (with the token) in a
	 * 0600 file, and on stdout only when that is a terminal, not a log */
	snprintf(urlfile, sizeof(urlfile), "%s/web.url", cli.home);
	if ((rc = lama_web_open(&web, lama_server_loop(srv), &wcfg, &sv)) ||
	    (rc = lama_web_save_url(web, urlfile)) || (rc = lama_web_url(web, url, sizeof(url))))
		goto out;
	saved = 1;
	sv.web = web;
	printf("lama serve: serving %s\n  socket: %s/%s\n", cli.home, cli.home, LAMA_SERVE_SOCKET);
	if (isatty(STDOUT_FILENO))
		printf("  UI: %s\n", url);
	else
		printf("  UI: http://127.0.0.1:%d/ (the address with its token is in %s)\n",
		       lama_web_port(web), urlfile);
	sodium_memzero(url, sizeof(url));
	if (!lama_controller_session(ctl))
		printf("  locked: waiting for action:%s\n", users ? "login" : "register");
	fflush(stdout);
	rc = lama_server_run(srv);
out:
	finish(ctl, web);
	if (saved)
		unlink(urlfile);
	lama_controller_set_workers(ctl, NULL);
	lama_workers_close(workers); /* pending tasks end (canceled) before the rest goes */
	lama_web_close(web); /* runs the loop to let lws go: before the server */
	lama_controller_drain(ctl); /* the loop is the server's: drain before it goes */
	lama_server_close(srv); /* closes the clients first */
	lama_ipc_free(sv.d);
	lama_controller_free(ctl); /* logs out */
	lama_state_free(sv.st);
	lama_session_logout(s);
	return rc ? cli_fail(rc) : EXIT_OK;
}
