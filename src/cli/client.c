/* client.c: the CLI as a client of a running lama serve. While a server
 * owns the data folder, the commands that change or show chats ask it
 * through DATA/lama.sock (docs/ipc.md), so its clients hear about every
 * change; without a server they open the archive themselves. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli/cli.h"
#include "ipc/ipc.h"
#include "serve/serve.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/mem.h"

#define CLI_REPLY_TIMEOUT_MS 30000

struct cli_conn {
	int fd;
	long long next_id;
	char *buf; /* bytes read, not yet a whole line */
	size_t len, cap;
};

int cli_connect(cli_conn **out)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	cli_conn *k;
	int fd;

	*out = NULL;
	if (getenv("LAMA_NO_SERVER")) /* tests of the direct path, and rescue */
		return 0;
	if ((size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s", cli.home, LAMA_SERVE_SOCKET) >=
	    sizeof(sa.sun_path))
		return 0; /* no server can listen there either */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return lama_error(LAMA_EIO, "socket: %s", strerror(errno));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		int e = errno;

		close(fd);
		/* no socket, or a stale one: no server runs */
		if (e == ENOENT || e == ECONNREFUSED)
			return 0;
		return lama_error(LAMA_EIO, "cannot reach lama serve at %s: %s", sa.sun_path, strerror(e));
	}
	k = lama_calloc(1, sizeof(*k));
	if (!k) {
		close(fd);
		return lama_error(LAMA_ENOMEM, "out of memory");
	}
	k->fd = fd;
	*out = k;
	return 0;
}

void cli_disconnect(cli_conn *k)
{
	if (!k)
		return;
	close(k->fd);
	lama_free(k->buf);
	lama_free(k);
}

/* The next message from the server (new reference). */
static int next_message(cli_conn *k, json_t **out)
{
	for (;;) {
		char *nl = k->len ? memchr(k->buf, '\n', k->len) : NULL;
		ssize_t n;

		if (nl) {
			size_t line = (size_t)(nl - k->buf);
			json_error_t err;

			*out = json_loadb(k->buf, line, JSON_REJECT_DUPLICATES, &err);
			memmove(k->buf, nl + 1, k->len - line - 1);
			k->len -= line + 1;
			if (!json_is_object(*out)) {
				json_decref(*out);
				*out = NULL;
				return lama_error(LAMA_EFORMAT, "lama serve sent something that is not a message");
			}
			return 0;
		}
		if (k->len > LAMA_IPC_MESSAGE_MAX)
			return lama_error(LAMA_ELIMIT, "lama serve sent a message over 1 MiB");
		if (k->cap - k->len < 65536) {
			size_t cap = k->cap ? 2 * k->cap : 131072;
			char *b = lama_realloc(k->buf, cap);

			if (!b)
				return lama_error(LAMA_ENOMEM, "out of memory");
			k->buf = b;
			k->cap = cap;
		}
		{
			/* a server still asking for its own password, or a stuck
			 * one, must not hang the CLI */
			struct pollfd pfd = { .fd = k->fd, .events = POLLIN };
			int pr = poll(&pfd, 1, CLI_REPLY_TIMEOUT_MS);

			if (pr < 0 && errno == EINTR)
				continue;
			if (pr == 0)
				return lama_error(LAMA_EIO, "lama serve is not answering (is it waiting for its password?)");
		}
		n = read(k->fd, k->buf + k->len, k->cap - k->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return lama_error(LAMA_EIO, "lama serve closed the connection");
		k->len += (size_t)n;
	}
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return lama_error(LAMA_EIO, "cannot write to lama serve: %s", strerror(errno));
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* An error reply as the error of this process: the code picks the exit
 * path the direct call would have taken. */
static int reply_error(const json_t *err)
{
	static const struct {
		const char *code;
		int rc;
	} map[] = {
		{ LAMA_IPC_NOT_FOUND, LAMA_ENOTFOUND }, { LAMA_IPC_CONFLICT, LAMA_EEXIST },
		{ LAMA_IPC_UNAUTHORIZED, LAMA_EAUTH },  { LAMA_IPC_INVALID_PAYLOAD, LAMA_EINVAL },
		{ LAMA_IPC_LIMIT, LAMA_ELIMIT },        { LAMA_IPC_TOO_LARGE, LAMA_ELIMIT },
	};
	const char *code = json_string_value(json_object_get(err, "code"));
	const char *msg = json_string_value(json_object_get(err, "message"));
	int rc = LAMA_EIO;

	for (size_t i = 0; code && i < sizeof(map) / sizeof(map[0]); i++)
		if (!strcmp(code, map[i].code))
			rc = map[i].rc;
	if (rc == LAMA_EAUTH && msg && !strncmp(msg, "locked", 6))
		return lama_error(rc, "lama serve is locked: log in through its UI first");
	return lama_error(rc, "%s", msg ? msg : "lama serve refused the request");
}

int cli_call(cli_conn *k, const char *channel, json_t *payload, json_t **result)
{
	long long id = ++k->next_id;
	json_t *req;
	char *text;
	int rc;

	*result = NULL;
	/* a payload that could not be built: an argument that is not UTF-8
	 * (JSON strings must be), or memory; never send {} instead */
	if (!payload)
		return lama_error(LAMA_EINVAL, "an argument is not valid UTF-8 text");
	req = json_pack("{s:I, s:s, s:o}", "id", (json_int_t)id, "channel", channel, "payload", payload);
	text = req ? json_dumps(req, JSON_COMPACT) : NULL;
	json_decref(req);
	if (!text)
		return lama_error(LAMA_ENOMEM, "out of memory");
	if (strlen(text) > LAMA_IPC_MESSAGE_MAX) {
		free(text);
		return lama_error(LAMA_ELIMIT, "the request is over 1 MiB");
	}
	rc = write_all(k->fd, text, strlen(text));
	free(text);
	if (!rc)
		rc = write_all(k->fd, "\n", 1);
	while (!rc) {
		json_t *m;
		const json_t *mid;

		if ((rc = next_message(k, &m)))
			break;
		mid = json_object_get(m, "id");
		if (!mid) { /* a push: this connection did not subscribe, but fine */
			json_decref(m);
			continue;
		}
		if (json_integer_value(mid) != id) {
			json_decref(m);
			if (json_is_null(mid))
				return lama_error(LAMA_EIO, "lama serve could not read the request");
			continue;
		}
		if (json_object_get(m, "error"))
			rc = reply_error(json_object_get(m, "error"));
		else
			*result = json_incref(json_object_get(m, "result"));
		json_decref(m);
		return rc;
	}
	return rc;
}

int cli_set(json_t *o, const char *key, const char *val)
{
	json_t *v;

	if (!o)
		return lama_error(LAMA_EINVAL, "an argument is not valid UTF-8 text");
	if (!val)
		return 0;
	v = json_string(val);
	if (!v)
		return lama_error(LAMA_EINVAL, "%s is not valid UTF-8 text", key);
	if (json_object_set_new(o, key, v))
		return lama_error(LAMA_ENOMEM, "out of memory");
	return 0;
}

int cli_result_str(const json_t *r, const char *key, const char **out)
{
	*out = json_string_value(json_object_get(r, key));
	if (!*out)
		return lama_error(LAMA_EFORMAT, "lama serve answered without \"%s\"", key);
	return 0;
}

int cli_next_push(cli_conn *k, json_t **push)
{
	int rc;

	*push = NULL;
	while (!(rc = next_message(k, push))) {
		if (!json_object_get(*push, "id"))
			return 0;
		json_decref(*push); /* a late reply */
		*push = NULL;
	}
	return rc;
}
