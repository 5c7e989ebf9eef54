/* serve.c: the main process, `lama serve` (the binary beside this
 * program's build: build-bench/src/cli/lama), measured from outside over
 * its Unix socket. Four parts (`--only roundtrip|saturate|start|send`,
 * default all); what each line means: docs/benchmarks.md.
 *
 * roundtrip: a user with a topic of 200 messages; one client sends ROUNDS
 * requests one after the other, timing each. Baseline: a child that
 * echoes lines over an AF_UNIX stream socket with plain read/write, the
 * floor any request pays. Lines serve.roundtrip.ping (query:ping: the
 * transport, the protocol and the loop) and serve.roundtrip.messages
 * (query:getMessages, a page of 25: the models too), p50 (target: within
 * 3x of the echo's p50) and p99.
 *
 * start: an archive of --start-messages (100,000) messages in
 * --start-topics (4) one-to-one topics is built once per run (in the
 * scratch folder, removed at the end). `lama serve` is started on it (a
 * new process each time) and a client asks query:getState as soon as the
 * socket accepts (it is bound before the login, so the request waits in
 * it): the time from spawning to the answer, and the server's VmRSS and
 * VmHWM right after it. Baseline: this program spawned with --open-only,
 * which logs in (opens the archive) as serve does, then reports and
 * waits: the same figures for a process that only opens the archive.
 * Both with the archive in the OS page cache and evicted from it
 * (POSIX_FADV_DONTNEED, no privilege needed). The user's password has the
 * minimal Argon2id cost (as LAMA_KDF=min); then the interactive and the
 * default (moderate) costs, to show what the password hash costs a cold
 * start. Last, the same on --many-topics (100) topics of 100 messages
 * each: what getState costs grows with the topics, not the messages.
 *
 * send: action:sendMessage throughput with 1, 10 and 100 clients on the
 * big archive, each client sending request-after-reply (one outstanding
 * request each), counting acknowledged messages only. Baseline:
 * lama_chat_send of one message per call in this process (one
 * transaction each, as the server makes per request). The two alternate
 * in --rounds (3) slices of --seconds / rounds each; after each slice the
 * topic's entry count is checked against the acknowledgements. Then
 * serve.send.handler_models: the handler's model calls (find the topic,
 * send, read the message back for the push) in this process, against
 * the bare send, to split the cost between the models and the IPC path.
 *
 * saturate: the main loop's latency while every crypto worker is busy.
 * A user whose password has the default (moderate) Argon2id cost (or
 * --saturate-kdf interactive). The controller runs one login at a time,
 * so the crypto pool is set to one worker (the `workers` setting), and
 * the server is left locked (action:logout: a login while logged in is
 * refused before any hashing). First query:ping round trips on one
 * connection with the worker idle (the baseline), then the same while a
 * client sends action:login with a wrong password, request after reply
 * (--login-clients N: more of them, whose extra logins are refused at
 * once), so the worker runs Argon2id back to back. Lines
 * serve.saturated.ping.p50 and .p99, with the logins answered and the
 * crypto worker's CPU share while pinging: --ping-seconds S (10) of
 * each, one ping per millisecond, in --slices N (5) that alternate idle
 * and saturated (the clients stop between slices, after their login).
 *
 * --keep-archive keeps the big archive and prints where (for profiling). */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
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

extern char **environ;

#define ROUNDS 5000
#define BATCH 1000
#define PASSWORD "pw"
#define LINE_CAP (1 << 20)

static char lama[4200];   /* the lama binary */
static char self[4096];   /* this program */

/* ---- plumbing ---- */

static int try_connect(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		bench_fail("socket: %s", strerror(errno));
	if (strlen(path) >= sizeof(a.sun_path))
		bench_fail("socket path too long: %s", path);
	memcpy(a.sun_path, path, strlen(path) + 1);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
		return fd;
	close(fd);
	return -1;
}

/* Connects, retrying every `step_us` for up to 10 s. */
static int connect_to(const char *path, unsigned step_us)
{
	double until = bench_now() + 10;

	while (bench_now() < until) {
		int fd = try_connect(path);

		if (fd >= 0)
			return fd;
		usleep(step_us);
	}
	bench_fail("cannot connect to %s", path);
}

static void write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			bench_fail("write: %s", strerror(errno));
		p += w;
		n -= (size_t)w;
	}
}

/* Sends line (with its newline) and reads lines until a reply (pushes
 * skipped); the reply, NUL-terminated, in buf. */
static void request(int fd, const char *line, char *buf, size_t cap)
{
	size_t got = 0;

	write_all(fd, line, strlen(line));
	for (;;) {
		char *nl;
		ssize_t r = read(fd, buf + got, cap - 1 - got);

		if (r <= 0)
			bench_fail("read: %s", r ? strerror(errno) : "closed");
		got += (size_t)r;
		while ((nl = memchr(buf, '\n', got))) {
			size_t len = (size_t)(nl - buf) + 1;

			if (strncmp(buf, "{\"id\":", 6) == 0) {
				*nl = '\0';
				if (strstr(buf, "\"error\""))
					bench_fail("error reply: %.300s", buf);
				return;
			}
			memmove(buf, buf + len, got - len); /* a push */
			got -= len;
		}
		if (got == cap - 1)
			bench_fail("reply too long");
	}
}

/* A one-line reply, as in the roundtrip: exactly one line comes back. */
static double round_trip(int fd, const char *line, size_t n, char *buf, size_t cap)
{
	double t0 = bench_now();
	size_t got = 0;

	write_all(fd, line, n);
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

/* The server running now, killed at exit if a failure leaves it (so no
 * `lama serve` outlives a failed run in a removed folder). */
static pid_t live_server;

static void kill_live_server(void)
{
	if (live_server > 0) {
		kill(live_server, SIGKILL);
		waitpid(live_server, NULL, 0);
		live_server = 0;
	}
}

/* Starts `lama serve` on dir (stdout to /dev/null, stderr kept). */
static pid_t spawn_serve(const char *dir)
{
	char *argv[] = { lama, "--home", (char *)dir, "serve", NULL };
	posix_spawn_file_actions_t fa;
	pid_t pid;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	if (posix_spawn(&pid, lama, &fa, NULL, argv, environ) != 0)
		bench_fail("cannot start %s", lama);
	posix_spawn_file_actions_destroy(&fa);
	live_server = pid;
	return pid;
}

static void stop_serve(pid_t pid)
{
	int status;

	kill(pid, SIGTERM);
	live_server = 0;
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		bench_fail("lama serve did not exit cleanly (status %d)", status);
}

/* A member of /proc/PID/status in KiB ("VmRSS:", "VmHWM:"), or -1. */
static long proc_kib(pid_t pid, const char *key)
{
	char path[64], line[256];
	long kib = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if (!(f = fopen(path, "r")))
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, key, strlen(key)) == 0) {
			kib = strtol(line + strlen(key), NULL, 10);
			break;
		}
	fclose(f);
	return kib;
}

static lama_session *login(const char *dir)
{
	lama_session *s;

	bench_check(lama_account_login(dir, NULL, PASSWORD, strlen(PASSWORD), &s), "login");
	bench_check(lama_models_init(s), "models init");
	return s;
}

/* ---- roundtrip ---- */

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

static void bench_roundtrip(const char *tmp)
{
	char dir[4096], sock[4200], echo_path[4200], req[512], extra[256];
	struct lama_kdf_params kdf = lama_kdf_min();
	struct lama_person peer;
	struct lama_topic t;
	lama_session *s;
	double e50, e99, p50, p99, m50, m99;
	pid_t server, echo;
	int fd, status;

	bench_mkdtemp(tmp, "serve", dir, sizeof(dir));
	/* a user with a conversation of 200 messages */
	bench_check(lama_account_register(dir, "bench", PASSWORD, strlen(PASSWORD), &kdf, &s),
		    "register");
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
	fd = connect_to(echo_path, 25000);
	measure(fd, "{\"id\":1,\"channel\":\"query:ping\"}\n", &e50, &e99);
	close(fd);
	waitpid(echo, &status, 0);

	/* lama serve */
	server = spawn_serve(dir);
	snprintf(sock, sizeof(sock), "%s/lama.sock", dir);
	fd = connect_to(sock, 25000);
	measure(fd, "{\"id\":1,\"channel\":\"query:ping\"}\n", &p50, &p99);
	measure(fd, req, &m50, &m99);
	close(fd);
	stop_serve(server);

	snprintf(extra, sizeof(extra), "\"rounds\": %d, \"target\": \"ratio <= 3\", \"pass\": %s", ROUNDS,
		 bench_bool(p50 / e50 <= 3));
	bench_emit("serve.roundtrip.ping.p50", "us", p50, "echo.p50", e50, extra);
	snprintf(extra, sizeof(extra), "\"rounds\": %d", ROUNDS);
	bench_emit("serve.roundtrip.ping.p99", "us", p99, "echo.p99", e99, extra);
	snprintf(extra, sizeof(extra), "\"rounds\": %d, \"page\": 25, \"messages\": 200", ROUNDS);
	bench_emit("serve.roundtrip.messages.p50", "us", m50, "echo.p50", e50, extra);
	bench_emit("serve.roundtrip.messages.p99", "us", m99, "echo.p99", e99, extra);
	bench_rmtree(dir);
}

/* ---- saturate ---- */

/* The crypto workers of a server: its children whose command line is
 * `lama worker crypto ...`; their pids in pids (at most max), the count. */
static int crypto_workers(pid_t server, pid_t *pids, int max)
{
	char path[128], buf[4096];
	FILE *f;
	int n = 0;
	long pid;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)server, (int)server);
	if (!(f = fopen(path, "r")))
		bench_fail("cannot read %s", path);
	while (n < max && fscanf(f, "%ld", &pid) == 1) {
		char cmd[256];
		FILE *c;
		size_t len;

		snprintf(cmd, sizeof(cmd), "/proc/%ld/cmdline", pid);
		if (!(c = fopen(cmd, "r")))
			continue;
		len = fread(buf, 1, sizeof(buf) - 1, c);
		fclose(c);
		buf[len] = '\0';
		/* argv: lama, worker, crypto, parent pid */
		if (len > strlen(buf) + 1 && !strcmp(buf + strlen(buf) + 1, "worker")) {
			const char *kind = buf + strlen(buf) + 1 + 7;

			if ((size_t)(kind - buf) < len && !strcmp(kind, "crypto"))
				pids[n++] = (pid_t)pid;
		}
	}
	fclose(f);
	return n;
}

/* CPU seconds (user + system) a process has used so far. */
static double cpu_secs(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long ut, st;
	FILE *f;
	size_t len;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (!(f = fopen(path, "r")))
		bench_fail("cannot read %s", path);
	len = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[len] = '\0';
	/* after the command's closing parenthesis: state is field 3, utime
	 * and stime fields 14 and 15 */
	if (!(p = strrchr(buf, ')')) ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		bench_fail("cannot parse %s", path);
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* A login client, in a forked child: action:login with a wrong password,
 * request after reply, until `stop` is readable (its write end closed);
 * then it writes the number of answers to `report` and exits. Every
 * answer must be the wrong password's error. */
static void login_client(const char *sock, int stop, int report)
{
	static char buf[1 << 16];
	int fd = connect_to(sock, 10000);
	long n = 0;

	for (;;) {
		struct pollfd pf = { .fd = stop, .events = POLLIN };
		char line[256];
		size_t got = 0;
		int answered = 0;

		if (poll(&pf, 1, 0) != 0)
			break;
		snprintf(line, sizeof(line),
			 "{\"id\":%ld,\"channel\":\"action:login\",\"payload\":{\"name\":\"bench\","
			 "\"password\":\"not the password\"}}\n",
			 n + 1);
		write_all(fd, line, strlen(line));
		while (!answered) {
			char *nl;
			ssize_t r = read(fd, buf + got, sizeof(buf) - 1 - got);

			if (r <= 0)
				bench_fail("login client: %s", r ? strerror(errno) : "closed");
			got += (size_t)r;
			buf[got] = '\0';
			/* every whole line: pushes are skipped, the reply ends it */
			while (!answered && (nl = strchr(buf, '\n'))) {
				size_t len = (size_t)(nl - buf) + 1;

				*nl = '\0';
				if (strncmp(buf, "{\"id\":", 6) == 0) {
					if (!strstr(buf, "\"error\""))
						bench_fail("a wrong password logged in: %.200s", buf);
					answered = 1;
				}
				memmove(buf, buf + len, got - len + 1);
				got -= len;
			}
			if (got >= sizeof(buf) - 1)
				bench_fail("login client: a line too long");
		}
		n++;
	}
	close(fd);
	if (write(report, &n, sizeof(n)) != sizeof(n))
		_exit(1);
	_exit(0);
}

/* Ping round trips in microseconds. */
struct samples {
	double *t;
	size_t n, cap;
};

/* Pings on fd for `secs`, one every PING_GAP_US, adding to *sm. Paced:
 * back to back, the client and the loop would take both cores and starve
 * the nice +5 worker, which is not the case to measure. */
#define PING_GAP_US 1000
static void ping_for(int fd, double secs, struct samples *sm)
{
	static char buf[1 << 16];
	static const char ping[] = "{\"id\":1,\"channel\":\"query:ping\"}\n";
	double end = bench_now() + secs;

	while (bench_now() < end) {
		if (sm->n == sm->cap &&
		    !(sm->t = realloc(sm->t, (sm->cap = sm->cap ? 2 * sm->cap : 4096) * sizeof(double))))
			bench_fail("out of memory");
		sm->t[sm->n++] = round_trip(fd, ping, sizeof(ping) - 1, buf, sizeof(buf)) * 1e6;
		usleep(PING_GAP_US);
	}
}

/* p50 and p99 of the samples (sorts them). */
static void percentiles(struct samples *sm, double *p50, double *p99)
{
	if (sm->n < 100)
		bench_fail("only %zu pings", sm->n);
	*p50 = bench_median(sm->t, sm->n);
	*p99 = sm->t[(size_t)((double)sm->n * 0.99)];
}

/* The login clients of one slice: forked, each told to stop by EOF on
 * stop, each reporting its count on report. */
struct logins {
	int stop[2], report[2], n;
	pid_t *kids;
};

static void logins_start(struct logins *l, const char *sock, int n)
{
	l->n = n;
	if (pipe(l->stop) || pipe(l->report) || !(l->kids = calloc((size_t)n, sizeof(*l->kids))))
		bench_fail("pipe: %s", strerror(errno));
	for (int i = 0; i < n; i++) {
		l->kids[i] = fork();
		if (l->kids[i] < 0)
			bench_fail("fork: %s", strerror(errno));
		if (l->kids[i] == 0) {
			live_server = 0; /* the parent's to kill, not ours */
			close(l->stop[1]);
			close(l->report[0]);
			login_client(sock, l->stop[0], l->report[1]);
		}
	}
	close(l->stop[0]);
	close(l->report[1]);
}

/* Stops the clients (each after the login it is in: the worker is idle
 * again when this returns); the logins they got answered. */
static long logins_stop(struct logins *l)
{
	long total = 0;

	close(l->stop[1]);
	for (int i = 0; i < l->n; i++) {
		long n;

		if (read(l->report[0], &n, sizeof(n)) != sizeof(n))
			bench_fail("a login client failed");
		total += n;
	}
	for (int i = 0; i < l->n; i++) {
		int status;

		waitpid(l->kids[i], &status, 0);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			bench_fail("a login client failed (status %d)", status);
	}
	close(l->report[0]);
	free(l->kids);
	return total;
}

static void bench_saturate(const char *tmp, const char *kdf_name, int clients, double secs,
			   int slices)
{
	struct lama_kdf_params kdf = !strcmp(kdf_name, "interactive") ? lama_kdf_interactive()
								       : lama_kdf_moderate();
	static char buf[LINE_CAP];
	char dir[4096], sock[4200], extra[640];
	pid_t server, workers[64];
	double i50, i99, s50, s99, cpu = 0, busy_secs = 0, load;
	struct samples idle = { 0 }, sat = { 0 };
	int fd, nworkers;
	long answered = 0;
	lama_session *s;

	bench_mkdtemp(tmp, "serve-sat", dir, sizeof(dir));
	bench_check(lama_account_register(dir, "bench", PASSWORD, strlen(PASSWORD), &kdf, &s),
		    "register");
	lama_session_logout(s);
	snprintf(sock, sizeof(sock), "%s/lama.sock", dir);
	/* The controller runs one login at a time (others are answered "a
	 * login is in progress" at once), so logins keep one crypto worker
	 * busy, not two: the pool is made one worker (the `workers` setting,
	 * read when serve starts logged in), then the user logs out. */
	server = spawn_serve(dir);
	fd = connect_to(sock, 25000);
	request(fd, "{\"id\":1,\"channel\":\"action:updateSettings\",\"payload\":{\"workers\":1}}\n",
		buf, sizeof(buf));
	close(fd);
	stop_serve(server);
	server = spawn_serve(dir);
	fd = connect_to(sock, 25000);
	request(fd, "{\"id\":1,\"channel\":\"action:logout\"}\n", buf, sizeof(buf));
	/* the workers are spawned with the loop: wait for them to be there */
	for (double until = bench_now() + 10; (nworkers = crypto_workers(server, workers, 64)) == 0;)
		if (bench_now() > until)
			bench_fail("no crypto worker under lama serve");
		else
			usleep(10000);
	if (clients <= 0)
		clients = 1;

	/* idle and saturated slices alternate, so that load from outside
	 * (other jobs on the machine) falls on both alike */
	for (int k = 0; k < slices; k++) {
		struct logins l;
		double c0 = 0, c1 = 0, a;

		ping_for(fd, secs / slices, &idle);
		logins_start(&l, sock, clients);
		/* the worker takes the first login (the moderate cost is about
		 * 0.5 s of one core, so it is inside it for a while) */
		usleep(200000);
		for (int i = 0; i < nworkers; i++)
			c0 += cpu_secs(workers[i]);
		a = bench_now();
		ping_for(fd, secs / slices, &sat);
		busy_secs += bench_now() - a;
		for (int i = 0; i < nworkers; i++)
			c1 += cpu_secs(workers[i]);
		cpu += c1 - c0;
		answered += logins_stop(&l);
	}
	percentiles(&idle, &i50, &i99);
	percentiles(&sat, &s50, &s99);
	{
		/* the machine's load from outside: this figure moves with it */
		FILE *f = fopen("/proc/loadavg", "r");

		if (!f || fscanf(f, "%lf", &load) != 1)
			load = -1;
		if (f)
			fclose(f);
	}
	close(fd);
	stop_serve(server);
	fprintf(stderr, "serve: %ld wrong-password logins answered by %d crypto worker(s); their CPU "
			"over the %.1f s of saturated pings: %.0f%% of %d core(s)' worth\n",
		answered, nworkers, busy_secs, 100 * cpu / (busy_secs * nworkers), nworkers);
	snprintf(extra, sizeof(extra),
		 "\"rounds\": %zu, \"baseline_rounds\": %zu, \"slices\": %d, \"gap_us\": %d, "
		 "\"crypto_workers\": %d, \"login_clients\": %d, \"kdf\": \"%s\", \"logins\": %ld, "
		 "\"worker_cpu_share\": %.3f, \"loadavg\": %.2f",
		 sat.n, idle.n, slices, PING_GAP_US, nworkers, clients, kdf_name, answered,
		 cpu / (busy_secs * nworkers), load);
	free(idle.t);
	free(sat.t);
	bench_emit("serve.saturated.ping.p50", "us", s50, "serve.idle.ping.p50", i50, extra);
	bench_emit("serve.saturated.ping.p99", "us", s99, "serve.idle.ping.p99", i99, extra);
	bench_rmtree(dir);
}

/* ---- the big archive ---- */

/* Registers "bench" in dir with `topics` contacts and a one-to-one topic
 * with each, and sends `total` messages round-robin in batches of BATCH
 * (one transaction each). The first topic's handle goes to handle. */
static void build_archive(const char *dir, size_t total, size_t topics, char handle[13])
{
	struct lama_kdf_params kdf = lama_kdf_min();
	static struct lama_outgoing m[BATCH];
	static char text[BATCH][96];
	struct lama_topic *t = calloc(topics, sizeof(*t));
	double t0 = bench_now();
	lama_session *s;

	if (!t)
		bench_fail("out of memory");
	bench_check(lama_account_register(dir, "bench", PASSWORD, strlen(PASSWORD), &kdf, &s),
		    "register");
	bench_check(lama_models_init(s), "models init");
	for (size_t i = 0; i < topics; i++) {
		struct lama_person peer;
		char name[32];

		snprintf(name, sizeof(name), "Peer %zu", i);
		bench_check(lama_leute_add_contact(s, name, NULL, 0, NULL, &peer), "contact");
		bench_check(lama_chat_create(s, NULL, &peer.person, 1, &t[i], NULL), "topic");
	}
	memcpy(handle, t[0].handle, 13);
	for (size_t done = 0, b = 0; done < total; b++) {
		size_t n = total - done < BATCH ? total - done : BATCH;

		for (size_t i = 0; i < n; i++) {
			snprintf(text[i], sizeof(text[i]),
				 "stored message %zu: the quick brown fox jumps over the lazy dog",
				 done + i);
			m[i] = (struct lama_outgoing){ .text = text[i] };
		}
		bench_check(lama_chat_send(s, &t[b % topics], m, n, NULL), "lama_chat_send");
		done += n;
		if (b % 10 == 9 || done == total)
			fprintf(stderr, "\rserve: archive of %zu of %zu messages", done, total);
	}
	for (size_t i = 0; i < topics; i++)
		lama_topic_release(&t[i]);
	free(t);
	lama_session_logout(s); /* checkpoints the WAL */
	fprintf(stderr, "\nserve: archive built in %.1f s\n", bench_now() - t0);
}

/* ---- start ---- */

/* --open-only DIR: logs in as serve does, says "ok" on stdout, waits for
 * EOF on stdin (so the parent can read this process's status), exits. */
static int open_only(const char *dir)
{
	lama_session *s;
	char c;

	bench_check(lama_crypto_init(), "crypto init");
	bench_check(lama_account_login(dir, NULL, PASSWORD, strlen(PASSWORD), &s), "login");
	if (write(1, "ok\n", 3) != 3)
		return 1;
	while (read(0, &c, 1) > 0)
		;
	lama_session_logout(s);
	return 0;
}

/* With evict set, every file of the data folder is dropped from the OS
 * page cache before each start (written back first): the archive as
 * after a reboot. POSIX_FADV_DONTNEED needs no privilege. */
static int evict;

static int evict_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	int fd;

	(void)sb;
	(void)ftw;
	if (flag != FTW_F || (fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
		return 0;
	if (fdatasync(fd) != 0 || posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) != 0)
		bench_fail("cannot evict %s from the page cache", path);
	close(fd);
	return 0;
}

static void evict_dir(const char *dir)
{
	if (evict && nftw(dir, evict_one, 16, FTW_PHYS) != 0)
		bench_fail("cannot walk %s", dir);
}

struct start {
	double ms;
	long rss, hwm; /* KiB */
};

/* One cold start of lama serve: spawn to the answer of query:getState. */
static struct start start_serve(const char *dir)
{
	static char buf[LINE_CAP];
	char sock[4200];
	struct start r;
	double t0;
	pid_t pid;
	int fd;

	evict_dir(dir);
	t0 = bench_now();
	pid = spawn_serve(dir);
	snprintf(sock, sizeof(sock), "%s/lama.sock", dir);
	/* the socket is bound before the login: the request waits in it */
	fd = connect_to(sock, 500);
	request(fd, "{\"id\":1,\"channel\":\"query:getState\"}\n", buf, sizeof(buf));
	r.ms = (bench_now() - t0) * 1e3;
	r.rss = proc_kib(pid, "VmRSS:");
	r.hwm = proc_kib(pid, "VmHWM:");
	if (!strstr(buf, "\"conversations\""))
		bench_fail("getState: %.300s", buf);
	close(fd);
	stop_serve(pid);
	return r;
}

/* One run of the baseline: this program with --open-only. */
static struct start start_open_only(const char *dir)
{
	char *argv[] = { self, "--open-only", (char *)dir, NULL };
	posix_spawn_file_actions_t fa;
	int out[2], in[2], status;
	struct start r;
	char ok[3];
	double t0;
	pid_t pid;

	if (pipe(out) || pipe(in))
		bench_fail("pipe: %s", strerror(errno));
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	posix_spawn_file_actions_adddup2(&fa, in[0], 0);
	posix_spawn_file_actions_addclose(&fa, out[0]);
	posix_spawn_file_actions_addclose(&fa, in[1]);
	evict_dir(dir);
	t0 = bench_now();
	if (posix_spawn(&pid, self, &fa, NULL, argv, environ) != 0)
		bench_fail("cannot start %s", self);
	posix_spawn_file_actions_destroy(&fa);
	close(out[1]);
	close(in[0]);
	if (read(out[0], ok, 3) != 3 || memcmp(ok, "ok\n", 3))
		bench_fail("--open-only failed");
	r.ms = (bench_now() - t0) * 1e3;
	r.rss = proc_kib(pid, "VmRSS:");
	r.hwm = proc_kib(pid, "VmHWM:");
	close(in[1]);
	close(out[0]);
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		bench_fail("--open-only did not exit cleanly");
	return r;
}

static int cmp_long(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;

	return (x > y) - (x < y);
}

/* Cold starts of serve and of the baseline, alternating, after one
 * unmeasured start of each (the first open after the build). Prints the
 * time, VmRSS and VmHWM lines named PREFIX.{getstate,rss,hwm}SUFFIX. */
/* targeted: the configuration (100,000 messages, the minimal
 * KDF), whose lines carry the targets (< 200 ms, < 30 MiB). */
static void cold_starts(const char *dir, int reps, const char *suffix, size_t messages,
			size_t topics, const char *kdf, int targeted)
{
	char target[128];
	double ms[64], bms[64];
	long rss[64], brss[64], hwm[64], bhwm[64];
	struct start first = start_serve(dir), bfirst = start_open_only(dir);
	char name[96], extra[512];
	long rss_max, hwm_max;

	if (reps > 64)
		reps = 64;
	for (int i = 0; i < reps; i++) {
		struct start a = i % 2 ? start_open_only(dir) : start_serve(dir);
		struct start b = i % 2 ? start_serve(dir) : start_open_only(dir);
		struct start sv = i % 2 ? b : a, oo = i % 2 ? a : b;

		ms[i] = sv.ms;
		rss[i] = sv.rss;
		hwm[i] = sv.hwm;
		bms[i] = oo.ms;
		brss[i] = oo.rss;
		bhwm[i] = oo.hwm;
		fprintf(stderr, "serve: cold start %d (%s%s): %.1f ms, VmRSS %ld KiB, VmHWM %ld KiB; "
				"open only %.1f ms, %ld, %ld\n",
			i + 1, kdf, evict ? ", evicted" : "", sv.ms, sv.rss, sv.hwm, oo.ms, oo.rss, oo.hwm);
	}
	qsort(rss, (size_t)reps, sizeof(long), cmp_long);
	qsort(brss, (size_t)reps, sizeof(long), cmp_long);
	qsort(hwm, (size_t)reps, sizeof(long), cmp_long);
	qsort(bhwm, (size_t)reps, sizeof(long), cmp_long);
	rss_max = rss[reps - 1];
	hwm_max = hwm[reps - 1];

	snprintf(name, sizeof(name), "serve.start.getstate%s", suffix);
	snprintf(extra, sizeof(extra),
		 "\"messages\": %zu, \"topics\": %zu, \"kdf\": \"%s\", \"archive_cached\": %s, \"starts\": %d, "
		 "\"first_ms\": %.4g, \"baseline_first_ms\": %.4g, %s"
		 "\"what\": \"spawn to the getState answer, median\"",
		 messages, topics, kdf, bench_bool(!evict), reps, first.ms, bfirst.ms,
		 targeted ? (snprintf(target, sizeof(target), "\"target\": \"value < 200\", \"pass\": %s, ",
				      bench_bool(bench_median(ms, (size_t)reps) < 200)), target) : "");
	bench_emit(name, "ms", bench_median(ms, (size_t)reps), "open_only.login", bench_median(bms, (size_t)reps),
		   extra);
	snprintf(name, sizeof(name), "serve.start.rss%s", suffix);
	snprintf(extra, sizeof(extra),
		 "\"messages\": %zu, \"topics\": %zu, \"kdf\": \"%s\", \"max_mib\": %.3g, "
		 "\"hwm_mib\": %.3g, \"hwm_max_mib\": %.3g, \"baseline_hwm_mib\": %.3g, %s"
		 "\"what\": \"VmRSS right after the answer, median; hwm: VmHWM (peak RSS) then\"",
		 messages, topics, kdf, rss_max / 1024.0, hwm[reps / 2] / 1024.0, hwm_max / 1024.0,
		 bhwm[reps / 2] / 1024.0,
		 targeted ? (snprintf(target, sizeof(target), "\"target\": \"value < 30\", \"pass\": %s, ",
				      bench_bool(rss_max / 1024.0 < 30)), target) : "");
	bench_emit(name, "MiB", rss[reps / 2] / 1024.0, "open_only.rss", brss[reps / 2] / 1024.0, extra);
}

static void set_kdf(const char *dir, struct lama_kdf_params kdf)
{
	bench_check(lama_account_passwd(dir, NULL, PASSWORD, strlen(PASSWORD), PASSWORD,
					strlen(PASSWORD), &kdf),
		    "passwd");
}

/* ---- send ---- */


struct client {
	int fd;
	int waiting; /* its request is out */
	long sent;
	size_t got;
	char buf[1 << 16];
};

static void send_one(struct client *c, int k, const char *topic)
{
	char line[512];

	c->sent++;
	snprintf(line, sizeof(line),
		 "{\"id\":%ld,\"channel\":\"action:sendMessage\",\"payload\":{\"topic\":\"%s\","
		 "\"text\":\"client %d message %ld: the quick brown fox jumps over the lazy dog\"}}\n",
		 c->sent, topic, k, c->sent);
	write_all(c->fd, line, strlen(line));
	c->waiting = 1;
}

struct load {
	long counted; /* acknowledged inside the window */
	long acked;   /* acknowledged at all */
	long pushes;  /* update lines the clients read */
};

/* n clients, each sending request-after-reply to topic from now until
 * warm + secs; replies inside [warm, warm + secs] are counted. Returns
 * when every request has its reply. */
static struct load run_clients(const char *sock, int n, double warm, double secs, const char *topic)
{
	struct client *c = calloc((size_t)n, sizeof(*c));
	struct pollfd *p = calloc((size_t)n, sizeof(*p));
	struct load r = { 0 };
	double t0, ws, we, give_up;
	int out = 0;

	if (!c || !p)
		bench_fail("out of memory");
	for (int i = 0; i < n; i++) {
		c[i].fd = connect_to(sock, 1000);
		p[i] = (struct pollfd){ .fd = c[i].fd, .events = POLLIN };
	}
	t0 = bench_now();
	ws = t0 + warm;
	we = ws + secs;
	give_up = we + 60;
	for (int i = 0; i < n; i++, out++)
		send_one(&c[i], i, topic);
	while (out > 0) {
		int k = poll(p, (nfds_t)n, 100);

		if (k < 0 && errno != EINTR)
			bench_fail("poll: %s", strerror(errno));
		if (bench_now() > give_up)
			bench_fail("send: %d requests without a reply after 60 s", out);
		for (int i = 0; i < n && k > 0; i++) {
			struct client *x = &c[i];
			ssize_t got;
			char *nl;

			if (!p[i].revents)
				continue;
			k--;
			got = recv(x->fd, x->buf + x->got, sizeof(x->buf) - x->got, MSG_DONTWAIT);
			if (got < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (got <= 0)
				bench_fail("client %d: %s", i, got ? strerror(errno) : "closed by lama serve");
			x->got += (size_t)got;
			while ((nl = memchr(x->buf, '\n', x->got))) {
				size_t len = (size_t)(nl - x->buf) + 1;

				if (strncmp(x->buf, "{\"id\":", 6) == 0) {
					double now = bench_now();

					*nl = '\0';
					if (!x->waiting || !strstr(x->buf, "\"result\""))
						bench_fail("client %d: unexpected reply %.300s", i, x->buf);
					x->waiting = 0;
					out--;
					r.acked++;
					if (now >= ws && now <= we)
						r.counted++;
					if (now < we) {
						send_one(x, i, topic);
						out++;
					}
				} else {
					r.pushes++;
				}
				memmove(x->buf, x->buf + len, x->got - len);
				x->got -= len;
			}
			if (x->got == sizeof(x->buf))
				bench_fail("client %d: a line over %zu bytes", i, sizeof(x->buf));
		}
	}
	for (int i = 0; i < n; i++)
		close(c[i].fd);
	free(c);
	free(p);
	return r;
}

/* The topic's entry count, asked over a fresh connection. */
static long topic_entries(const char *sock, const char *topic)
{
	static char buf[LINE_CAP];
	char req[256];
	const char *e;
	int fd = connect_to(sock, 1000);

	snprintf(req, sizeof(req),
		 "{\"id\":1,\"channel\":\"query:getConversation\",\"payload\":{\"topic\":\"%s\"}}\n", topic);
	request(fd, req, buf, sizeof(buf));
	close(fd);
	if (!(e = strstr(buf, "\"entries\":")))
		bench_fail("getConversation: %.300s", buf);
	return strtol(e + 10, NULL, 10);
}

/* The baseline: lama_chat_send of one message per call, in this process,
 * for warm + secs; the calls done inside the window are counted. */
static double direct_append(const char *dir, const char *topic, double warm, double secs)
{
	lama_session *s = login(dir);
	struct lama_topic t;
	long counted = 0, i = 0;
	double t0, ws, we, now;

	bench_check(lama_chat_find(s, topic, &t), "find topic");
	t0 = bench_now();
	ws = t0 + warm;
	we = ws + secs;
	do {
		char text[128];
		struct lama_outgoing m = { .text = text };

		snprintf(text, sizeof(text), "direct message %ld: the quick brown fox jumps over the lazy dog",
			 ++i);
		bench_check(lama_chat_send(s, &t, &m, 1, NULL), "lama_chat_send");
		now = bench_now();
		if (now >= ws && now <= we)
			counted++;
	} while (now < we);
	lama_topic_release(&t);
	lama_session_logout(s);
	return (double)counted / secs;
}

static void bench_send(const char *dir, const char *topic, double secs, int rounds, size_t messages)
{
	static const int counts[] = { 1, 10, 100 };
	const double warm = 0.3, slice = secs / rounds;
	char sock[4200], name[64], extra[512];

	snprintf(sock, sizeof(sock), "%s/lama.sock", dir);
	for (size_t k = 0; k < sizeof(counts) / sizeof(counts[0]); k++) {
		struct load sum = { 0 };
		double base = 0, v;
		long rss, hwm, rss_max = 0, hwm_max = 0;

		/* slices alternate, so both sides share the machine's moods */
		for (int i = 0; i < rounds; i++) {
			pid_t pid;
			long before, after;
			struct load r;

			base += direct_append(dir, topic, warm, slice) / rounds;
			pid = spawn_serve(dir);
			before = topic_entries(sock, topic);
			r = run_clients(sock, counts[k], warm, slice, topic);
			after = topic_entries(sock, topic);
			rss = proc_kib(pid, "VmRSS:");
			hwm = proc_kib(pid, "VmHWM:");
			if (rss > rss_max)
				rss_max = rss;
			if (hwm > hwm_max)
				hwm_max = hwm;
			stop_serve(pid);
			if (after - before != r.acked)
				bench_fail("send: %ld messages acknowledged, but the topic grew by %ld",
					   r.acked, after - before);
			sum.counted += r.counted;
			sum.acked += r.acked;
			sum.pushes += r.pushes;
		}
		v = (double)sum.counted / secs;
		fprintf(stderr, "serve: %d clients: %.0f messages/s (%ld acknowledged, %ld pushes read); "
				"direct %.0f messages/s\n",
			counts[k], v, sum.acked, sum.pushes, base);
		snprintf(name, sizeof(name), "serve.send.c%d", counts[k]);
		snprintf(extra, sizeof(extra),
			 "\"clients\": %d, \"mode\": \"request-after-reply\", \"seconds\": %g, "
			 "\"acknowledged_in_window\": %ld, \"pushes_read\": %ld, \"messages_stored\": %zu, "
			 "\"server_rss_mib\": %.3g, \"server_hwm_mib\": %.3g, "
			 "\"baseline_what\": \"lama_chat_send of 1 message per call, in-process\"",
			 counts[k], secs, sum.counted, sum.pushes, messages, rss_max / 1024.0, hwm_max / 1024.0);
		bench_emit(name, "messages/s", v, "chat.send.direct", base, extra);
	}
}

/* ---- steps: what the sendMessage handler does, in this process ---- */

static int newest_json(void *ctx, const struct lama_message *m)
{
	lama_session *s = ctx;
	struct lama_person who;
	json_t *o;
	char *text;

	if (lama_leute_get(s, &m->sender, &who) != 0)
		bench_fail("sender");
	o = lama_message_json(m, who.name);
	text = o ? json_dumps(o, JSON_COMPACT) : NULL;
	if (!text)
		bench_fail("out of memory");
	free(text);
	json_decref(o);
	return 0;
}

/* --only steps: the handler's model calls timed one by one (stderr), and
 * a JSON line: the whole handler in this process against the bare append. */
static void bench_steps(const char *dir, const char *topic, int n)
{
	lama_session *s = login(dir);
	double t_find = 0, t_send = 0, t_read = 0, t_direct = 0, t0;
	struct lama_topic direct;
	char extra[256];

	bench_check(lama_chat_find(s, topic, &direct), "find topic");
	for (int i = 0; i < n; i++) {
		char text[128];
		struct lama_outgoing m = { .text = text };
		struct lama_topic t;

		snprintf(text, sizeof(text), "step message %d: the quick brown fox jumps over the lazy dog", i);
		t0 = bench_now();
		bench_check(lama_chat_find(s, topic, &t), "find topic");
		t_find += bench_now() - t0;
		t0 = bench_now();
		bench_check(lama_chat_send(s, &t, &m, 1, NULL), "send");
		t_send += bench_now() - t0;
		t0 = bench_now();
		bench_check(lama_chat_messages(s, &t, NULL, 1, newest_json, s, NULL), "newest");
		t_read += bench_now() - t0;
		lama_topic_release(&t);
		t0 = bench_now();
		bench_check(lama_chat_send(s, &direct, &m, 1, NULL), "send");
		t_direct += bench_now() - t0;
	}
	lama_topic_release(&direct);
	lama_session_logout(s);
	fprintf(stderr, "serve: per sendMessage in-process: find %.3f ms, send %.3f ms, read back %.3f ms; "
			"direct send %.3f ms\n",
		t_find * 1e3 / n, t_send * 1e3 / n, t_read * 1e3 / n, t_direct * 1e3 / n);
	snprintf(extra, sizeof(extra),
		 "\"messages\": %d, \"find_ms\": %.4g, \"send_ms\": %.4g, \"read_back_ms\": %.4g",
		 n, t_find * 1e3 / n, t_send * 1e3 / n, t_read * 1e3 / n);
	bench_emit("serve.send.handler_models", "messages/s", n / (t_find + t_send + t_read),
		   "chat.send.direct", n / t_direct, extra);
}

int main(int argc, char **argv)
{
	const char *tmp = bench_opt(argc, argv, "tmp", "/tmp");
	const char *only = bench_opt(argc, argv, "only", "all");
	size_t messages = (size_t)atol(bench_opt(argc, argv, "start-messages", "100000"));
	size_t topics = (size_t)atol(bench_opt(argc, argv, "start-topics", "4"));
	int reps = atoi(bench_opt(argc, argv, "starts", "7"));
	int kdf_reps = atoi(bench_opt(argc, argv, "kdf-starts", "3"));
	double secs = atof(bench_opt(argc, argv, "seconds", "3"));
	int rounds = atoi(bench_opt(argc, argv, "rounds", "3"));
	size_t many = (size_t)atol(bench_opt(argc, argv, "many-topics", "100"));
	char suffix[64];
	int all = strcmp(only, "all") == 0;
	char dir[4096], handle[13];
	ssize_t n;

	if (argc == 3 && strcmp(argv[1], "--open-only") == 0)
		return open_only(argv[2]);
	if (topics < 1 || messages < topics || reps < 1 || kdf_reps < 1 || secs <= 0 || rounds < 1)
		bench_fail("bad options");
	bench_check(lama_crypto_init(), "crypto init");
	atexit(kill_live_server);
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		bench_fail("cannot find this program");
	self[n] = '\0';
	snprintf(lama, sizeof(lama), "%s", self);
	*strrchr(lama, '/') = '\0';
	strncat(lama, "/../src/cli/lama", sizeof(lama) - strlen(lama) - 1);
	if (access(lama, X_OK))
		bench_fail("no lama binary at %s", lama);
	setenv("LAMA_PASSWORD", PASSWORD, 1);

	if (all || strcmp(only, "roundtrip") == 0)
		bench_roundtrip(tmp);
	if (all || strcmp(only, "saturate") == 0)
		bench_saturate(tmp, bench_opt(argc, argv, "saturate-kdf", "moderate"),
			       atoi(bench_opt(argc, argv, "login-clients", "0")),
			       atof(bench_opt(argc, argv, "ping-seconds", "10")),
			       atoi(bench_opt(argc, argv, "slices", "5")));
	if (!all && strcmp(only, "start") && strcmp(only, "send") && strcmp(only, "steps"))
		return 0;
	bench_mkdtemp(tmp, "serve-big", dir, sizeof(dir));
	build_archive(dir, messages, topics, handle);
	if (all || strcmp(only, "start") == 0) {
		cold_starts(dir, reps, "", messages, topics, "min", 1);
		evict = 1;
		cold_starts(dir, reps, ".evicted", messages, topics, "min", 1);
		evict = 0;
		set_kdf(dir, lama_kdf_interactive());
		cold_starts(dir, kdf_reps, ".kdf_interactive", messages, topics, "interactive", 0);
		set_kdf(dir, lama_kdf_moderate());
		cold_starts(dir, kdf_reps, ".kdf_moderate", messages, topics, "moderate", 0);
		set_kdf(dir, lama_kdf_min());
	}
	if ((all || strcmp(only, "start") == 0) && many > 0) {
		char dir2[4096], h2[13];

		bench_mkdtemp(tmp, "serve-topics", dir2, sizeof(dir2));
		build_archive(dir2, many * 100, many, h2);
		snprintf(suffix, sizeof(suffix), ".topics%zu", many);
		cold_starts(dir2, reps, suffix, many * 100, many, "min", 0);
		evict = 1;
		snprintf(suffix, sizeof(suffix), ".topics%zu.evicted", many);
		cold_starts(dir2, reps, suffix, many * 100, many, "min", 0);
		evict = 0;
		bench_rmtree(dir2);
	}
	if (all || strcmp(only, "send") == 0)
		bench_send(dir, handle, secs, rounds, messages);
	if (all || strcmp(only, "send") == 0 || strcmp(only, "steps") == 0)
		bench_steps(dir, handle, 1000);
	if (bench_flag(argc, argv, "keep-archive"))
		fprintf(stderr, "serve: archive kept in %s (user bench, password %s, topic %s)\n", dir,
			PASSWORD, handle);
	else
		bench_rmtree(dir);
	return 0;
}
