/* serve.c: request round trips to `lama serve` over its Unix socket,
 * against a bare echo server over the same kind of socket.
 *
 * A user is registered in a scratch folder (with a contact, a topic and
 * 200 messages), the real `lama serve` (the binary beside this program's
 * build: build-bench/src/cli/lama) is started on it, and one client sends
 * ROUNDS requests one after the other, timing each round trip. The
 * baseline is a child process that echoes each line back over an AF_UNIX
 * stream socket with plain read/write: the floor any request pays.
 *
 * Lines: serve.roundtrip.ping (query:ping: transport + protocol + the
 * loop) and serve.roundtrip.messages (query:getMessages, a page of 25:
 * the models too), each p50 (target: within 3x of the echo's p50) and
 * p99. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "account/account.h"
#include "chat/chat.h"
#include "common.h"
#include "crypto/crypto.h"
#include "leute/leute.h"
#include "models/models.h"

#define ROUNDS 5000

static int connect_to(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd;

	for (int tries = 0; tries < 400; tries++) {
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			bench_fail("socket: %s", strerror(errno));
		if (strlen(path) >= sizeof(a.sun_path))
			bench_fail("socket path too long: %s", path);
		memcpy(a.sun_path, path, strlen(path) + 1);
		if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
			return fd;
		close(fd);
		usleep(25000);
	}
	bench_fail("cannot connect to %s", path);
}

/* Sends line (with its newline) and reads one line back. */
static double round_trip(int fd, const char *line, size_t n, char *buf, size_t cap)
{
	double t0 = bench_now();
	size_t got = 0;

	for (size_t off = 0; off < n;) {
		ssize_t w = write(fd, line + off, n - off);

		if (w <= 0)
			bench_fail("write: %s", strerror(errno));
		off += (size_t)w;
	}
	for (;;) {
		ssize_t r = read(fd, buf + got, cap - got);

		if (r <= 0)
			bench_fail("read: %s", r ? strerror(errno) : "closed");
		got += (size_t)r;
		if (buf[got - 1] == '\n')
			break;
		if (got == cap)
			bench_fail("reply too long");
	}
	if (strstr(buf, "\"error\""))
		bench_fail("error reply: %.200s", buf);
	return bench_now() - t0;
}

static void measure(int fd, const char *line, double *p50, double *p99)
{
	static char buf[1 << 20];
	double *t = malloc(ROUNDS * sizeof(*t));

	if (!t)
		bench_fail("out of memory");
	for (int i = 0; i < 200; i++) /* warm up */
		round_trip(fd, line, strlen(line), buf, sizeof(buf));
	for (int i = 0; i < ROUNDS; i++)
		t[i] = round_trip(fd, line, strlen(line), buf, sizeof(buf)) * 1e6;
	*p50 = bench_median(t, ROUNDS); /* sorts t */
	*p99 = t[(size_t)(ROUNDS * 0.99)];
	free(t);
}

/* The baseline: a line echo server in a child process. */
static pid_t echo_server(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	pid_t pid;

	if (strlen(path) >= sizeof(a.sun_path))
		bench_fail("socket path too long: %s", path);
	memcpy(a.sun_path, path, strlen(path) + 1);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) || listen(lfd, 4))
		bench_fail("echo server: %s", strerror(errno));
	pid = fork();
	if (pid < 0)
		bench_fail("fork: %s", strerror(errno));
	if (pid == 0) {
		static char buf[1 << 16];
		int c = accept(lfd, NULL, NULL);
		ssize_t r;

		while (c >= 0 && (r = read(c, buf, sizeof(buf))) > 0)
			if (write(c, buf, (size_t)r) != r)
				break;
		_exit(0);
	}
	close(lfd);
	return pid;
}

int main(int argc, char **argv)
{
	const char *tmp = bench_opt(argc, argv, "tmp", "/tmp");
	char dir[4096], sock[4200], echo_path[4200], exe[4096], lama[4200], req[512], extra[256];
	struct lama_kdf_params kdf = lama_kdf_min();
	struct lama_person peer;
	struct lama_topic t;
	lama_session *s;
	double e50, e99, p50, p99, m50, m99;
	pid_t server, echo;
	ssize_t n;
	int fd, status;

	bench_check(lama_crypto_init(), "crypto init");
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		bench_fail("cannot find this program");
	exe[n] = '\0';
	*strrchr(exe, '/') = '\0';
	snprintf(lama, sizeof(lama), "%s/../src/cli/lama", exe);
	if (access(lama, X_OK))
		bench_fail("no lama binary at %s", lama);
	bench_mkdtemp(tmp, "serve", dir, sizeof(dir));

	/* a user with a conversation of 200 messages */
	bench_check(lama_account_register(dir, "bench", "pw", 2, &kdf, &s), "register");
	bench_check(lama_models_init(s), "models");
	bench_check(lama_leute_add_contact(s, "Peer", NULL, 0, NULL, &peer), "contact");
	bench_check(lama_chat_create(s, NULL, &peer.person, 1, &t, NULL), "topic");
	for (int i = 0; i < 200; i++) {
		char text[64];
		struct lama_outgoing m = { .text = text };

		snprintf(text, sizeof(text), "message %d", i);
		bench_check(lama_chat_send(s, &t, &m, 1, NULL), "send");
	}
	snprintf(req, sizeof(req),
		 "{\"id\":1,\"channel\":\"query:getMessages\",\"payload\":{\"topic\":\"%s\",\"limit\":25}}\n",
		 t.handle);
	lama_topic_release(&t);
	lama_session_logout(s);

	/* baseline */
	snprintf(echo_path, sizeof(echo_path), "%s/echo.sock", dir);
	echo = echo_server(echo_path);
	fd = connect_to(echo_path);
	measure(fd, "{\"id\":1,\"channel\":\"query:ping\"}\n", &e50, &e99);
	close(fd);
	waitpid(echo, &status, 0);

	/* lama serve */
	server = fork();
	if (server < 0)
		bench_fail("fork: %s", strerror(errno));
	if (server == 0) {
		setenv("LAMA_HOME", dir, 1);
		setenv("LAMA_PASSWORD", "pw", 1);
		if (!freopen("/dev/null", "w", stdout))
			_exit(127);
		execl(lama, lama, "serve", (char *)NULL);
		_exit(127);
	}
	snprintf(sock, sizeof(sock), "%s/lama.sock", dir);
	fd = connect_to(sock);
	measure(fd, "{\"id\":1,\"channel\":\"query:ping\"}\n", &p50, &p99);
	measure(fd, req, &m50, &m99);
	close(fd);
	kill(server, SIGTERM);
	waitpid(server, &status, 0);

	snprintf(extra, sizeof(extra), "\"rounds\": %d, \"target\": \"ratio <= 3\", \"pass\": %s", ROUNDS,
		 bench_bool(p50 / e50 <= 3));
	bench_emit("serve.roundtrip.ping.p50", "us", p50, "echo.p50", e50, extra);
	snprintf(extra, sizeof(extra), "\"rounds\": %d", ROUNDS);
	bench_emit("serve.roundtrip.ping.p99", "us", p99, "echo.p99", e99, extra);
	snprintf(extra, sizeof(extra), "\"rounds\": %d, \"page\": 25, \"messages\": 200", ROUNDS);
	bench_emit("serve.roundtrip.messages.p50", "us", m50, "echo.p50", e50, extra);
	bench_emit("serve.roundtrip.messages.p99", "us", m99, "echo.p99", e99, extra);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		bench_fail("lama serve did not exit cleanly (status %d)", status);
	bench_rmtree(dir);
	return 0;
}
