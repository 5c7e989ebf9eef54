/* Backup and restore over real accounts: the restored user logs in with
 * the same password and sees the same contacts, topics, messages and
 * attachment; a wrong password, a flipped byte anywhere, a cut or an
 * extended file, a folder that has the user already, and hostile record
 * streams made with the right key are all refused with nothing left
 * behind; a backup taken while another session holds an open write
 * transaction is the last committed state; out-of-memory at every
 * allocation leaves nothing behind either. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <pthread.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <sqlite3.h>

#include "testutil.h"
#include "backup/backup.h"
#include "backup/backup_int.h"
#include "chat/chat.h"
#include "leute/leute.h"
#include "models/models.h"
#include "store/store.h"
#include "util/err.h"
#include "util/mem.h"

#define PW "correct horse"
#define PWLEN (sizeof(PW) - 1)
#define ATTACH_BYTES (300u << 10) /* the archive spans several chunks */

static char root[4096], home[4200], bak[4200];
static lama_session *s;
static lama_hash blob_hash;
static uint8_t *attach_data;

/* ---- fixture: alice with contacts, a topic, messages, an attachment ---- */

static void make_user(void)
{
	struct lama_kdf_params kdf = lama_kdf_min();
	struct lama_person bob, carol;
	struct lama_topic t, g;
	struct lama_attachment a = { .name = "photo.bin", .type = "application/octet-stream",
				     .size = ATTACH_BYTES, .mtime = 1000 };
	struct lama_outgoing m[3] = { { .text = "hello Bob" },
				      { .text = "see the file", .attach = &a, .nattach = 1 },
				      { .text = "and a third" } };
	lama_blob_writer *w;
	lama_hash ids[3];
	uint64_t seed = 42;

	if (lama_account_register(home, "alice", PW, PWLEN, &kdf, &s) || lama_models_init(s))
		fail_msg("register: %s", lama_errmsg());
	assert_int_equal(lama_leute_add_contact(s, "Bob", "bob@example.org", 0, NULL, &bob), 0);
	assert_int_equal(lama_leute_add_contact(s, "Carol", NULL, 0, NULL, &carol), 0);
	attach_data = lama_malloc(ATTACH_BYTES);
	for (size_t i = 0; i < ATTACH_BYTES; i++)
		attach_data[i] = (uint8_t)rnd(&seed, 256);
	assert_int_equal(lama_blob_write_begin(lama_session_store(s), &w), 0);
	assert_int_equal(lama_blob_write(w, attach_data, ATTACH_BYTES), 0);
	assert_int_equal(lama_blob_write_end(w, &blob_hash, NULL), 0);
	a.blob = blob_hash;
	assert_int_equal(lama_chat_create(s, NULL, &bob.person, 1, &t, NULL), 0);
	assert_int_equal(lama_chat_send(s, &t, m, 3, ids), 0);
	{
		lama_hash both[2] = { bob.person, carol.person };

		assert_int_equal(lama_chat_create(s, "Team", both, 2, &g, NULL), 0);
		assert_int_equal(lama_chat_send(s, &g, m, 1, NULL), 0);
	}
	assert_int_equal(lama_chat_edit(s, &t, &ids[0], "hello, Bob"), 0);
	lama_topic_release(&t);
	lama_topic_release(&g);
}

static int setup(void **state)
{
	(void)state;
	if (lama_crypto_init())
		fail_msg("crypto init");
	snprintf(root, sizeof(root), "%s", tu_tmpdir());
	snprintf(home, sizeof(home), "%s/home", root);
	snprintf(bak, sizeof(bak), "%s/alice.backup", root);
	make_user();
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	lama_session_logout(s);
	s = NULL;
	lama_free(attach_data);
	tu_rmtree(root);
	return 0;
}

/* ---- what a user sees, as one text ---- */

static int add_json(void *ctx, json_t *v)
{
	assert_non_null(v);
	assert_int_equal(json_array_append_new(ctx, v), 0);
	return 0;
}

static int on_person(void *ctx, const struct lama_person *p) { return add_json(ctx, lama_person_json(p)); }

static int on_message(void *ctx, const struct lama_message *m)
{
	return add_json(ctx, lama_message_json(m, NULL));
}

static int on_topic(void *ctx, const struct lama_topic *t)
{
	json_t *o = lama_topic_json(t), *msgs = json_array();
	int more = 0;

	assert_non_null(o);
	assert_int_equal(lama_chat_messages(((void **)ctx)[1], t, NULL, 1000, on_message, msgs, &more),
			 0);
	assert_int_equal(more, 0);
	json_object_set_new(o, "messages", msgs);
	return add_json(((void **)ctx)[0], o);
}

/* Contacts, the user, every topic with every message: the models' own
 * JSON views, sorted keys, as one string (caller frees). */
static char *dump(lama_session *x)
{
	json_t *all = json_object(), *people = json_array(), *topics = json_array();
	void *ctx[2] = { topics, x };
	struct lama_person me;
	char *text;

	assert_int_equal(lama_leute_contacts(x, on_person, people), 0);
	assert_int_equal(lama_leute_me(x, &me), 0);
	assert_int_equal(lama_chat_topics(x, on_topic, ctx), 0);
	json_object_set_new(all, "me", lama_person_json(&me));
	json_object_set_new(all, "contacts", people);
	json_object_set_new(all, "topics", topics);
	text = json_dumps(all, JSON_SORT_KEYS | JSON_COMPACT);
	json_decref(all);
	assert_non_null(text);
	return text;
}

/* ---- files ---- */

/* Entries in dir, hidden ones too (-1 if dir does not exist). */
static int entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

/* 1 if some entry of dir starts with prefix: a temporary file left over. */
static int has_prefix(const char *dir, const char *prefix)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int found = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		if (!strncmp(e->d_name, prefix, strlen(prefix)))
			found = 1;
	closedir(d);
	return found;
}

/* A data folder holds no user, nothing half-restored. */
static void assert_no_user(const char *h)
{
	char users[8192];

	snprintf(users, sizeof(users), "%s/users", h);
	assert_true(entries(users) <= 0);
}

static uint8_t *slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	uint8_t *p;
	long len;

	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	fseek(f, 0, SEEK_SET);
	p = malloc((size_t)len + 1);
	assert_int_equal(fread(p, 1, (size_t)len, f), (size_t)len);
	fclose(f);
	*n = (size_t)len;
	return p;
}

static void spit(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(p, 1, n, f), n);
	fclose(f);
}

static char *fresh_home(const char *tag)
{
	static char h[4300];

	snprintf(h, sizeof(h), "%s/%s", root, tag);
	return h;
}

/* ---- progress ---- */

struct prog {
	uint64_t calls, last_done, last_total;
	int backwards;
};

static void on_progress(void *ctx, uint64_t done, uint64_t total)
{
	struct prog *p = ctx;

	if (done > total)
		p->backwards = 1;
	p->calls++;
	p->last_done = done;
	p->last_total = total;
}

/* ---- tests ---- */

static void test_roundtrip(void **state)
{
	struct prog pw_prog = { 0 }, pr_prog = { 0 };
	struct lama_backup_progress pw = { on_progress, &pw_prog }, pr = { on_progress, &pr_prog };
	char *before = dump(s), *after, *name = NULL, *h2 = fresh_home("restored");
	lama_session *r = NULL;
	struct lama_store_check chk;
	lama_blob_reader *br;
	uint8_t *back = malloc(ATTACH_BYTES + 1);
	uint64_t size;
	size_t got, total = 0;
	struct stat sb;

	(void)state;
	assert_int_equal(lama_backup_write(s, bak, PW, PWLEN, &pw), 0);
	assert_int_equal(stat(bak, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	assert_true(sb.st_size > (off_t)ATTACH_BYTES);
	assert_true(pw_prog.calls > 0);
	assert_false(pw_prog.backwards);
	assert_int_equal(pw_prog.last_done, pw_prog.last_total);
	/* no temporary file stays beside the backup or in the user's folder */
	assert_int_equal(entries(root), 2); /* home, the backup */
	assert_false(has_prefix(lama_session_dir(s), ".backup-"));

	assert_int_equal(lama_backup_restore(h2, bak, PW, PWLEN, &name, &pr), 0);
	assert_string_equal(name, "alice");
	assert_true(pr_prog.calls > 0);
	assert_false(pr_prog.backwards);
	assert_int_equal(pr_prog.last_done, (uint64_t)sb.st_size);
	lama_free(name);

	/* the same password works there, a wrong one does not */
	assert_int_equal(lama_account_login(h2, "alice", "wrong", 5, &r), LAMA_EAUTH);
	assert_int_equal(lama_account_login(h2, "alice", PW, PWLEN, &r), 0);
	assert_int_equal(lama_models_init(r), 0);
	assert_memory_equal(lama_session_person(r), lama_session_person(s), sizeof(lama_hash));
	assert_memory_equal(lama_session_instance(r), lama_session_instance(s), sizeof(lama_hash));
	after = dump(r);
	assert_string_equal(before, after);
	assert_int_equal(lama_store_check(lama_session_store(r), &chk, NULL, NULL), 0);
	assert_int_equal(chk.bad, 0);
	assert_true(chk.blobs >= 1);
	/* the attachment's bytes */
	assert_int_equal(lama_blob_open(lama_session_store(r), &blob_hash, &br, &size), 0);
	assert_int_equal(size, ATTACH_BYTES);
	do {
		assert_int_equal(lama_blob_read(br, back + total, ATTACH_BYTES + 1 - total, &got), 0);
		total += got;
	} while (got);
	lama_blob_close(br);
	assert_int_equal(total, ATTACH_BYTES);
	assert_memory_equal(back, attach_data, ATTACH_BYTES);
	/* the restored user writes on */
	{
		struct lama_person dave;

		assert_int_equal(lama_leute_add_contact(r, "Dave", NULL, 0, NULL, &dave), 0);
	}
	lama_session_logout(r);
	/* and the original is untouched */
	free(after);
	after = dump(s);
	assert_string_equal(before, after);
	free(before);
	free(after);
	free(back);
}

static void test_wrong_password_write(void **state)
{
	(void)state;
	assert_int_equal(lama_backup_write(s, bak, "nope", 4, NULL), LAMA_EAUTH);
	assert_string_equal(lama_errmsg(), "wrong password");
	assert_int_equal(access(bak, F_OK), -1);
	assert_int_equal(entries(root), 1); /* home alone */
	assert_false(has_prefix(lama_session_dir(s), ".backup-"));
	/* an empty password is wrong too */
	assert_int_equal(lama_backup_write(s, bak, "", 0, NULL), LAMA_EAUTH);
	assert_int_equal(entries(root), 1);
}

static void test_wrong_password_restore(void **state)
{
	char *h = fresh_home("wrongpw"), *name = (char *)"x";

	(void)state;
	assert_int_equal(lama_backup_write(s, bak, PW, PWLEN, NULL), 0);
	assert_int_equal(lama_backup_restore(h, bak, "correct horsf", PWLEN, &name, NULL), LAMA_EAUTH);
	assert_null(name);
	assert_no_user(h);
	assert_int_equal(lama_backup_restore(h, bak, PW, PWLEN - 1, NULL, NULL), LAMA_EAUTH);
	assert_no_user(h);
	/* the right one still works after */
	assert_int_equal(lama_backup_restore(h, bak, PW, PWLEN, NULL, NULL), 0);
}

static void test_flipped_bytes(void **state)
{
	size_t n, pos[40], np = 0;
	uint8_t *orig;
	char path[8192];

	(void)state;
	assert_int_equal(lama_backup_write(s, bak, PW, PWLEN, NULL), 0);
	orig = slurp(bak, &n);
	assert_true(n > LAMA_BACKUP_HEADER_BYTES + 4 * (LAMA_BACKUP_CHUNK + 17));
	pos[np++] = 0;                         /* magic */
	pos[np++] = 8;                         /* version */
	pos[np++] = 12;                        /* chunk size */
	pos[np++] = 16;                        /* opslimit */
	pos[np++] = 26;                        /* memlimit */
	pos[np++] = 33;                        /* salt */
	pos[np++] = 50;                        /* secretstream header */
	pos[np++] = LAMA_BACKUP_HEADER_BYTES;  /* the first chunk */
	pos[np++] = LAMA_BACKUP_HEADER_BYTES + LAMA_BACKUP_CHUNK + 16; /* its MAC */
	pos[np++] = LAMA_BACKUP_HEADER_BYTES + LAMA_BACKUP_CHUNK + 17; /* the second's tag */
	pos[np++] = n / 2;                     /* the middle */
	pos[np++] = n - 17;                    /* the last chunk's tag byte */
	pos[np++] = n - 1;                     /* the last byte */
	{
		uint64_t seed = 7;

		while (np < sizeof(pos) / sizeof(pos[0]))
			pos[np++] = rnd(&seed, (unsigned)n); /* and anywhere */
	}
	snprintf(path, sizeof(path), "%s/flipped", root);
	for (size_t i = 0; i < np; i++) {
		char tag[32], *h;
		uint8_t *copy = malloc(n);
		int rc;

		memcpy(copy, orig, n);
		copy[pos[i]] ^= 0x01;
		spit(path, copy, n);
		free(copy);
		snprintf(tag, sizeof(tag), "flip%zu", i);
		h = fresh_home(tag);
		rc = lama_backup_restore(h, path, PW, PWLEN, NULL, NULL);
		if (rc == 0)
			fail_msg("a flipped bit at byte %zu was not noticed", pos[i]);
		assert_true(rc == LAMA_EFORMAT || rc == LAMA_EAUTH || rc == LAMA_ECORRUPT);
		assert_no_user(h);
		assert_int_equal(access(h, F_OK), -1); /* not even an empty folder */
	}
	free(orig);
}

static void test_cut_and_extended(void **state)
{
	size_t n, cuts[8], nc = 0;
	uint8_t *orig;
	char path[8192];

	(void)state;
	assert_int_equal(lama_backup_write(s, bak, PW, PWLEN, NULL), 0);
	orig = slurp(bak, &n);
	cuts[nc++] = 0;
	cuts[nc++] = 40;
	cuts[nc++] = LAMA_BACKUP_HEADER_BYTES;
	cuts[nc++] = LAMA_BACKUP_HEADER_BYTES + LAMA_BACKUP_CHUNK + 17;     /* at a chunk's end */
	cuts[nc++] = LAMA_BACKUP_HEADER_BYTES + 3 * (LAMA_BACKUP_CHUNK + 17); /* at a chunk's end */
	cuts[nc++] = n - 17;
	cuts[nc++] = n - 1;
	snprintf(path, sizeof(path), "%s/cut", root);
	for (size_t i = 0; i < nc; i++) {
		char tag[32], *h;
		int rc;

		spit(path, orig, cuts[i]);
		snprintf(tag, sizeof(tag), "cut%zu", i);
		h = fresh_home(tag);
		rc = lama_backup_restore(h, path, PW, PWLEN, NULL, NULL);
		if (rc == 0)
			fail_msg("a backup cut at byte %zu of %zu was restored", cuts[i], n);
		assert_no_user(h);
	}
	/* one byte more, or a whole copy of the last chunk more */
	{
		uint8_t *longer = malloc(n + LAMA_BACKUP_CHUNK + 17);

		memcpy(longer, orig, n);
		longer[n] = 0;
		spit(path, longer, n + 1);
		assert_int_equal(lama_backup_restore(fresh_home("ext1"), path, PW, PWLEN, NULL, NULL),
				 LAMA_ECORRUPT);
		assert_no_user(fresh_home("ext1"));
		/* two chunks swapped */
		memcpy(longer, orig, n);
		memcpy(longer + LAMA_BACKUP_HEADER_BYTES + (LAMA_BACKUP_CHUNK + 17),
		       orig + LAMA_BACKUP_HEADER_BYTES + 2 * (LAMA_BACKUP_CHUNK + 17), LAMA_BACKUP_CHUNK + 17);
		memcpy(longer + LAMA_BACKUP_HEADER_BYTES + 2 * (LAMA_BACKUP_CHUNK + 17),
		       orig + LAMA_BACKUP_HEADER_BYTES + (LAMA_BACKUP_CHUNK + 17), LAMA_BACKUP_CHUNK + 17);
		spit(path, longer, n);
		assert_int_equal(lama_backup_restore(fresh_home("swap"), path, PW, PWLEN, NULL, NULL),
				 LAMA_ECORRUPT);
		assert_no_user(fresh_home("swap"));
		free(longer);
	}
	/* not a backup at all */
	spit(path, "hello", 5);
	assert_int_equal(lama_backup_restore(fresh_home("junk"), path, PW, PWLEN, NULL, NULL),
			 LAMA_EFORMAT);
	assert_int_equal(lama_backup_restore(fresh_home("junk"), "/nonexistent/x", PW, PWLEN, NULL, NULL),
			 LAMA_ENOTFOUND);
	free(orig);
}

static void test_exists(void **state)
{
	char *before = dump(s), *after, *h2;
	struct lama_kdf_params kdf = lama_kdf_min();
	lama_session *o = NULL;
	char *name = NULL;

	(void)state;
	assert_int_equal(lama_backup_write(s, bak, PW, PWLEN, NULL), 0);
	/* into the very folder it came from: alice is there */
	assert_int_equal(lama_backup_restore(home, bak, PW, PWLEN, NULL, NULL), LAMA_EEXIST);
	after = dump(s);
	assert_string_equal(before, after);
	free(after);
	{
		char users[8192];

		snprintf(users, sizeof(users), "%s/users", home);
		assert_int_equal(entries(users), 1);
	}
	/* a folder with another alice (another account of the same name) */
	h2 = fresh_home("other-alice");
	assert_int_equal(lama_account_register(h2, "alice", "other", 5, &kdf, &o), 0);
	lama_session_logout(o);
	assert_int_equal(lama_backup_restore(h2, bak, PW, PWLEN, NULL, NULL), LAMA_EEXIST);
	assert_int_equal(lama_account_login(h2, "alice", "other", 5, &o), 0);
	lama_session_logout(o);
	/* a folder with someone else: alice joins them */
	h2 = fresh_home("with-bob");
	assert_int_equal(lama_account_register(h2, "bob", "bobpw", 5, &kdf, &o), 0);
	lama_session_logout(o);
	assert_int_equal(lama_backup_restore(h2, bak, PW, PWLEN, &name, NULL), 0);
	assert_string_equal(name, "alice");
	lama_free(name);
	assert_int_equal(lama_account_login(h2, "alice", PW, PWLEN, &o), 0);
	assert_int_equal(lama_models_init(o), 0);
	after = dump(o);
	assert_string_equal(before, after);
	lama_session_logout(o);
	assert_int_equal(lama_account_login(h2, "bob", "bobpw", 5, &o), 0);
	lama_session_logout(o);
	/* a second time into that folder: refused */
	assert_int_equal(lama_backup_restore(h2, bak, PW, PWLEN, NULL, NULL), LAMA_EEXIST);
	free(before);
	free(after);
}

/* ---- hostile record streams, made with the right password ---- */

struct stream {
	uint8_t b[16384];
	size_t n;
	uint8_t *big; /* when set, used instead of b (malloc'd, bigcap bytes) */
	size_t bigcap;
};

static void s_bytes(struct stream *st, const void *p, size_t n)
{
	uint8_t *to = st->big ? st->big : st->b;

	assert_true(st->n + n <= (st->big ? st->bigcap : sizeof(st->b)));
	memcpy(to + st->n, p, n);
	st->n += n;
}

static void s_head(struct stream *st, const char *name, uint64_t size)
{
	uint8_t len = (uint8_t)strlen(name), sz[8];

	for (int i = 0; i < 8; i++)
		sz[i] = (uint8_t)(size >> (8 * i));
	s_bytes(st, &len, 1);
	s_bytes(st, name, len);
	s_bytes(st, sz, 8);
}

static void s_rec(struct stream *st, const char *name, const char *data)
{
	s_head(st, name, strlen(data));
	s_bytes(st, data, strlen(data));
}

static void s_end(struct stream *st)
{
	uint8_t z = 0;

	s_bytes(st, &z, 1);
}

static const char *meta = "{\"version\":1,\"name\":\"eve\",\"store_format\":3}";

/* The real account record of the fixture (its uid, its wrapped key). */
static void account_text(char *out, size_t n)
{
	char path[8192];
	size_t len;
	uint8_t *p;

	snprintf(path, sizeof(path), "%s/account.json", lama_session_dir(s));
	p = slurp(path, &len);
	assert_true(len < n);
	memcpy(out, p, len);
	out[len] = '\0';
	free(p);
}

static void expect_refused(struct stream *st, const char *tag, int want)
{
	struct lama_kdf_params kdf = lama_kdf_min();
	char path[8192], *h = fresh_home(tag), outside[8192];
	int rc;

	snprintf(path, sizeof(path), "%s/%s.bak", root, tag);
	assert_int_equal(lama_backup__write_raw(path, PW, PWLEN, &kdf, st->big ? st->big : st->b, st->n), 0);
	rc = lama_backup_restore(h, path, PW, PWLEN, NULL, NULL);
	if (rc == 0)
		fail_msg("hostile stream %s was restored", tag);
	if (want)
		assert_int_equal(rc, want);
	assert_no_user(h);
	/* refused while reading: not even the folder is left; refused by the
	 * account check (under the folder's lock): at most its lock and salt */
	if (access(h, F_OK) == 0) {
		char extra[8300];

		assert_true(entries(h) <= 3);
		snprintf(extra, sizeof(extra), "%s/.lock", h);
		assert_int_equal(access(extra, F_OK), 0);
	}
	/* nothing written beside or above the folder */
	snprintf(outside, sizeof(outside), "%s/x", h);
	assert_int_equal(access(outside, F_OK), -1);
	snprintf(outside, sizeof(outside), "%s/users/x", h);
	assert_int_equal(access(outside, F_OK), -1);
	snprintf(outside, sizeof(outside), "%s/x", root);
	assert_int_equal(access(outside, F_OK), -1);
}

/* A whole, genuine record stream made by hand (the archive copied with
 * VACUUM INTO), restoring fine as it is; then the same with the archive's
 * name changed: the name alone must make it fail. */
static void test_hostile_names(void **state)
{
	static const char *const bad[] = { "../x", "./archive.db", "archive.db/", "archive.dbx",
					   "ARCHIVE.DB", "/archive.db", "archive.db\x7f" };
	char account[4096], snap[8192], sql[8300], *h, *err = NULL;
	struct lama_kdf_params kdf = lama_kdf_min();
	struct stream st = { .n = 0 };
	uint8_t *db;
	size_t dbn;

	(void)state;
	account_text(account, sizeof(account));
	snprintf(snap, sizeof(snap), "%s/snap.db", root);
	snprintf(sql, sizeof(sql), "VACUUM INTO '%s'", snap);
	assert_int_equal(sqlite3_exec(lama_store_db(lama_session_store(s)), sql, NULL, NULL, &err), SQLITE_OK);
	db = slurp(snap, &dbn);
	st.bigcap = dbn + 16384;
	st.big = malloc(st.bigcap);
	for (size_t i = 0; i <= sizeof(bad) / sizeof(bad[0]); i++) {
		char tag[32], path[8192];
		int rc;

		st.n = 0;
		s_rec(&st, "lama-backup.json", "{\"version\":1,\"name\":\"alice\",\"store_format\":3}");
		s_rec(&st, "account.json", account);
		s_head(&st, i == 0 ? "archive.db" : bad[i - 1], dbn);
		s_bytes(&st, db, dbn);
		s_end(&st);
		snprintf(tag, sizeof(tag), "names%zu", i);
		h = fresh_home(tag);
		snprintf(path, sizeof(path), "%s/%s.bak", root, tag);
		assert_int_equal(lama_backup__write_raw(path, PW, PWLEN, &kdf, st.big, st.n), 0);
		rc = lama_backup_restore(h, path, PW, PWLEN, NULL, NULL);
		if (i == 0) {
			lama_session *r;

			assert_int_equal(rc, 0); /* the control: a good stream restores */
			assert_int_equal(lama_account_login(h, "alice", PW, PWLEN, &r), 0);
			lama_session_logout(r);
			continue;
		}
		if (rc == 0)
			fail_msg("a backup whose archive is named %s was restored", bad[i - 1]);
		assert_int_equal(rc, LAMA_ECORRUPT);
		assert_no_user(h);
	}
	free(st.big);
	free(db);
}

static void test_hostile(void **state)
{
	char account[4096];
	struct stream st = { .n = 0 };

	(void)state;
	account_text(account, sizeof(account));

	/* a path in a name, at each position */
	st.n = 0;
	s_rec(&st, "../x", meta);
	expect_refused(&st, "dotdot", LAMA_ECORRUPT);
	st.n = 0;
	s_rec(&st, "lama-backup.json", meta);
	s_rec(&st, "../../x", account);
	expect_refused(&st, "dotdot2", LAMA_ECORRUPT);
	st.n = 0;
	s_rec(&st, "lama-backup.json", meta);
	s_rec(&st, "account.json", account);
	s_rec(&st, "/tmp/x", "SQLite");
	expect_refused(&st, "absolute", LAMA_ECORRUPT);
	st.n = 0;
	s_rec(&st, "lama-backup.json", meta);
	s_rec(&st, "account.json", account);
	s_rec(&st, "..", "SQLite");
	expect_refused(&st, "dots", LAMA_ECORRUPT);
	/* a known name in the wrong place */
	st.n = 0;
	s_rec(&st, "account.json", account);
	expect_refused(&st, "order", LAMA_ECORRUPT);
	/* an overlong name */
	{
		char longname[201];

		memset(longname, 'a', 200);
		longname[200] = '\0';
		st.n = 0;
		s_rec(&st, longname, "x");
		expect_refused(&st, "longname", LAMA_ELIMIT);
	}
	/* oversized records: they are refused on their header, before any
	 * byte of them is kept */
	st.n = 0;
	s_head(&st, "lama-backup.json", LAMA_BACKUP_SMALL_MAX + 1);
	expect_refused(&st, "bigmeta", LAMA_ELIMIT);
	st.n = 0;
	s_rec(&st, "lama-backup.json", meta);
	s_head(&st, "account.json", (uint64_t)1 << 40);
	expect_refused(&st, "bigaccount", LAMA_ELIMIT);
	st.n = 0;
	s_rec(&st, "lama-backup.json", meta);
	s_rec(&st, "account.json", account);
	s_head(&st, "archive.db", UINT64_MAX);
	expect_refused(&st, "bigarchive", LAMA_ELIMIT);
	/* a size that promises more than comes */
	st.n = 0;
	s_rec(&st, "lama-backup.json", meta);
	s_rec(&st, "account.json", account);
	s_head(&st, "archive.db", 1000);
	s_bytes(&st, "abc", 3);
	expect_refused(&st, "short", LAMA_ECORRUPT);
	/* no end mark; something after it; a fourth file */
	st.n = 0;
	s_rec(&st, "lama-backup.json", meta);
	s_rec(&st, "account.json", account);
	s_rec(&st, "archive.db", "");
	expect_refused(&st, "noend", LAMA_ECORRUPT);
	st.n = 0;
	s_rec(&st, "lama-backup.json", meta);
	s_rec(&st, "account.json", account);
	s_rec(&st, "archive.db", "");
	s_end(&st);
	s_bytes(&st, "x", 1);
	expect_refused(&st, "after", LAMA_ECORRUPT);
	st.n = 0;
	s_rec(&st, "lama-backup.json", meta);
	s_rec(&st, "account.json", account);
	s_rec(&st, "archive.db", "");
	s_rec(&st, "x", "more");
	s_end(&st);
	expect_refused(&st, "fourth", LAMA_ECORRUPT);
	/* an empty stream, an end mark alone */
	st.n = 0;
	expect_refused(&st, "empty", LAMA_ECORRUPT);
	s_end(&st);
	expect_refused(&st, "endonly", LAMA_ECORRUPT);
	/* from a newer lama */
	st.n = 0;
	s_rec(&st, "lama-backup.json", "{\"version\":1,\"name\":\"eve\",\"store_format\":99}");
	expect_refused(&st, "newer", LAMA_EFORMAT);
	st.n = 0;
	s_rec(&st, "lama-backup.json", "{\"version\":2,\"name\":\"eve\",\"store_format\":3}");
	expect_refused(&st, "newer2", LAMA_EFORMAT);
	/* well-formed records with bad contents: a meta that is not JSON, a
	 * user name with control characters, an account record that is not
	 * one, an archive that is not SQLite */
	st.n = 0;
	s_rec(&st, "lama-backup.json", "{not json");
	expect_refused(&st, "badmeta", LAMA_ECORRUPT);
	st.n = 0;
	s_rec(&st, "lama-backup.json", "{\"version\":1,\"name\":\"e\\nve\"}");
	s_rec(&st, "account.json", account);
	s_rec(&st, "archive.db", "not a database");
	s_end(&st);
	expect_refused(&st, "badname", LAMA_EINVAL);
	st.n = 0;
	s_rec(&st, "lama-backup.json", meta);
	s_rec(&st, "account.json", "{\"version\":1,\"uid\":\"../../../../../../tmp/aaaaaaaaaaaa\"}");
	s_rec(&st, "archive.db", "not a database");
	s_end(&st);
	expect_refused(&st, "badaccount", 0);
	{
		/* a uid of the right length that is a path */
		char *acc = strdup(account), *uid = strstr(acc, "\"uid\": \"");

		assert_non_null(uid);
		memcpy(uid + 8, "../../../../../../../x..", 24);
		st.n = 0;
		s_rec(&st, "lama-backup.json", meta);
		s_rec(&st, "account.json", acc);
		s_rec(&st, "archive.db", "not a database");
		s_end(&st);
		expect_refused(&st, "uidpath", LAMA_ECORRUPT);
		free(acc);
	}
	st.n = 0;
	s_rec(&st, "lama-backup.json", meta);
	s_rec(&st, "account.json", account);
	s_rec(&st, "archive.db", "not a database, but long enough to be read as one..............");
	s_end(&st);
	expect_refused(&st, "baddb", 0);
}

/* A backup taken while another session is halfway through a write is the
 * last committed state; after the commit the next backup has it. */
static void test_live_writer(void **state)
{
	lama_session *w = NULL, *r = NULL;
	struct lama_person p;
	char *h;
	size_t n;

	(void)state;
	assert_int_equal(lama_account_login(home, "alice", PW, PWLEN, &w), 0);
	assert_int_equal(lama_models_init(w), 0);
	assert_int_equal(lama_store_begin(lama_session_store(w)), 0);
	assert_int_equal(lama_leute_add_contact(w, "Uncommitted", NULL, 0, NULL, NULL), 0);
	assert_int_equal(lama_backup_write(s, bak, PW, PWLEN, NULL), 0);
	assert_int_equal(lama_store_commit(lama_session_store(w)), 0);
	lama_session_logout(w);

	h = fresh_home("live1");
	assert_int_equal(lama_backup_restore(h, bak, PW, PWLEN, NULL, NULL), 0);
	assert_int_equal(lama_account_login(h, "alice", PW, PWLEN, &r), 0);
	assert_int_equal(lama_models_init(r), 0);
	assert_int_equal(lama_leute_find(r, "Uncommitted", &p), LAMA_ENOTFOUND);
	lama_session_logout(r);

	assert_int_equal(lama_backup_write(s, bak, PW, PWLEN, NULL), 0);
	h = fresh_home("live2");
	assert_int_equal(lama_backup_restore(h, bak, PW, PWLEN, NULL, NULL), 0);
	assert_int_equal(lama_account_login(h, "alice", PW, PWLEN, &r), 0);
	assert_int_equal(lama_models_init(r), 0);
	assert_int_equal(lama_leute_find(r, "Uncommitted", &p), 0);
	(void)n;
	lama_session_logout(r);
}

struct job_arg {
	lama_backup_job *j;
	int rc;
	int calls;
	int snapping;  /* set by the job: its read transaction is open */
	int written;   /* set by the test: the writes are done */
	int timed_out;
};

/* The first progress call comes from inside the snapshot's read
 * transaction: hold the job there until the main thread has written. */
static void hold(void *ctx, uint64_t done, uint64_t total)
{
	struct job_arg *a = ctx;

	(void)done;
	(void)total;
	if (a->calls++ > 0)
		return;
	__atomic_store_n(&a->snapping, 1, __ATOMIC_SEQ_CST);
	for (int i = 0; i < 30000 && !__atomic_load_n(&a->written, __ATOMIC_SEQ_CST); i++)
		usleep(1000);
	if (!__atomic_load_n(&a->written, __ATOMIC_SEQ_CST))
		a->timed_out = 1;
}

static void *run_job(void *arg)
{
	struct job_arg *a = arg;
	struct lama_backup_progress p = { hold, a };

	a->rc = lama_backup_run(a->j, bak, PW, PWLEN, &p);
	return NULL;
}

static int count_msgs(void *ctx, const struct lama_message *m)
{
	(void)m;
	(*(size_t *)ctx)++;
	return 0;
}

/* The way lama serve would use it: the job prepared where the session
 * lives, run on a worker thread while the session goes on writing. While
 * the copy's read transaction is open the session writes (not blocked);
 * the backup holds the state before those writes, whole. */
static void test_thread(void **state)
{
	struct job_arg a = { 0 };
	struct lama_topic t, rt;
	struct lama_outgoing m = { .text = "written during the backup" };
	lama_session *r;
	struct lama_store_check chk;
	pthread_t th;
	size_t n = 0, base = 0, now = 0;
	char *h = fresh_home("thread");

	(void)state;
	assert_int_equal(lama_chat_find(s, "Team", &t), 0);
	assert_int_equal(lama_chat_messages(s, &t, NULL, 1000, count_msgs, &base, NULL), 0);
	assert_int_equal(lama_backup_prepare(s, &a.j), 0);
	assert_int_equal(pthread_create(&th, NULL, run_job, &a), 0);
	for (int i = 0; i < 30000 && !__atomic_load_n(&a.snapping, __ATOMIC_SEQ_CST); i++)
		usleep(1000);
	assert_true(__atomic_load_n(&a.snapping, __ATOMIC_SEQ_CST));
	for (int i = 0; i < 5; i++)
		assert_int_equal(lama_chat_send(s, &t, &m, 1, NULL), 0);
	__atomic_store_n(&a.written, 1, __ATOMIC_SEQ_CST);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_false(a.timed_out);
	assert_int_equal(a.rc, 0);
	lama_backup_job_free(a.j);
	assert_int_equal(lama_chat_messages(s, &t, NULL, 1000, count_msgs, &now, NULL), 0);
	assert_int_equal(now, base + 5);
	lama_topic_release(&t);

	assert_int_equal(lama_backup_restore(h, bak, PW, PWLEN, NULL, NULL), 0);
	assert_int_equal(lama_account_login(h, "alice", PW, PWLEN, &r), 0);
	assert_int_equal(lama_models_init(r), 0);
	assert_int_equal(lama_store_check(lama_session_store(r), &chk, NULL, NULL), 0);
	assert_int_equal(lama_chat_find(r, "Team", &rt), 0);
	assert_int_equal(lama_chat_messages(r, &rt, NULL, 1000, count_msgs, &n, NULL), 0);
	assert_int_equal(n, base);
	lama_topic_release(&rt);
	lama_session_logout(r);
}

/* A leftover of a crash, aged: mtime an hour ago. */
static void leftover(const char *path, int is_dir, int with_lock)
{
	struct timespec old[2] = { { time(NULL) - 3600, 0 }, { time(NULL) - 3600, 0 } };
	char lock[8300];

	if (is_dir) {
		assert_int_equal(mkdir(path, 0700), 0);
		snprintf(lock, sizeof(lock), "%s/archive.db", path);
		spit(lock, "x", 1);
		if (with_lock) {
			snprintf(lock, sizeof(lock), "%s/.lock", path);
			spit(lock, "", 0);
		}
	} else {
		spit(path, "copy", 4);
	}
	assert_int_equal(utimensat(AT_FDCWD, path, old, 0), 0);
}

/* What a crashed backup or restore left is removed by the next one,
 * unless another lama holds it or it is too fresh to tell. */
static void test_sweep(void **state)
{
	char p[16][8300];
	const char *dir = lama_session_dir(s);
	int held1, held2;

	(void)state;
	snprintf(p[0], sizeof(p[0]), "%s/.backup-stale1", dir);
	snprintf(p[1], sizeof(p[1]), "%s/.backup-held", dir);
	snprintf(p[2], sizeof(p[2]), "%s/.backup-fresh", dir);
	snprintf(p[3], sizeof(p[3]), "%s/users/.restore-stale1", home);
	snprintf(p[4], sizeof(p[4]), "%s/users/.restore-nolock", home);
	snprintf(p[5], sizeof(p[5]), "%s/users/.restore-held", home);
	snprintf(p[6], sizeof(p[6]), "%s/users/.restore-fresh", home);
	snprintf(p[7], sizeof(p[7]), "%s/users/.restore-held/.lock", home);
	snprintf(p[8], sizeof(p[8]), "%s/users/.other", home);
	leftover(p[0], 0, 0);
	leftover(p[1], 0, 0);
	spit(p[2], "copy", 4);
	leftover(p[3], 1, 1);
	leftover(p[4], 1, 0);
	leftover(p[5], 1, 1);
	assert_int_equal(mkdir(p[6], 0700), 0);
	leftover(p[8], 1, 0);
	held1 = open(p[1], O_RDONLY);
	held2 = open(p[7], O_RDONLY);
	assert_int_equal(flock(held1, LOCK_EX), 0);
	assert_int_equal(flock(held2, LOCK_SH), 0);

	assert_int_equal(lama_backup_write(s, bak, PW, PWLEN, NULL), 0);
	assert_int_equal(access(p[0], F_OK), -1);
	assert_int_equal(access(p[1], F_OK), 0);
	assert_int_equal(access(p[2], F_OK), 0);
	/* a refused restore sweeps too */
	assert_int_equal(lama_backup_restore(home, bak, PW, PWLEN, NULL, NULL), LAMA_EEXIST);
	assert_int_equal(access(p[3], F_OK), -1);
	assert_int_equal(access(p[4], F_OK), -1);
	assert_int_equal(access(p[5], F_OK), 0);
	assert_int_equal(access(p[6], F_OK), 0);
	assert_int_equal(access(p[8], F_OK), 0); /* not ours */
	close(held1);
	close(held2);
	/* the user is whole */
	{
		lama_session *r;

		assert_int_equal(lama_account_login(home, "alice", PW, PWLEN, &r), 0);
		lama_session_logout(r);
	}
}

static void test_oom(void **state)
{
	int ok_w = 0, ok_r = 0;

	(void)state;
	for (unsigned long k = 1; k < 400 && !ok_w; k++) {
		int rc;

		lama_mem_fail_after(k, 0);
		rc = lama_backup_write(s, bak, PW, PWLEN, NULL);
		lama_mem_fail_after(0, 0);
		if (rc == 0) {
			ok_w = 1;
			break;
		}
		assert_int_equal(rc, LAMA_ENOMEM);
		assert_int_equal(access(bak, F_OK), -1);
		assert_int_equal(entries(root), 1);
		assert_false(has_prefix(lama_session_dir(s), ".backup-"));
	}
	assert_true(ok_w);
	for (unsigned long k = 1; k < 2000 && !ok_r; k++) {
		char tag[32], *h, *name = NULL;
		int rc;

		snprintf(tag, sizeof(tag), "oom%lu", k);
		h = fresh_home(tag);
		lama_mem_fail_after(k, 0);
		rc = lama_backup_restore(h, bak, PW, PWLEN, &name, NULL);
		lama_mem_fail_after(0, 0);
		if (rc == 0) {
			lama_session *r;

			assert_string_equal(name, "alice");
			lama_free(name);
			assert_int_equal(lama_account_login(h, "alice", PW, PWLEN, &r), 0);
			lama_session_logout(r);
			ok_r = 1;
			break;
		}
		assert_null(name);
		assert_int_equal(rc, LAMA_ENOMEM);
		assert_no_user(h);
		tu_rmtree(h);
	}
	assert_true(ok_r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_password_write, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_password_restore, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flipped_bytes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cut_and_extended, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exists, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_live_writer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_thread, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sweep, setup, teardown),
		cmocka_unit_test_setup_teardown(test_oom, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
