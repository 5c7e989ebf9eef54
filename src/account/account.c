/* account.c: registration, login, password change, erase; the session. */
#include "account/account.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "util/buf.h"
#include "util/err.h"
#include "util/mem.h"

#define ACCOUNT_VERSION 1
#define ACCOUNT_FILE "account.json"
#define ARCHIVE_FILE "archive.db"
#define FOLDER_FILE "folder.json"
#define RECORD_MAX 4096

struct lama_session {
	char dir[LAMA_PATH_MAX];
	lama_keychain *kc;
	lama_store *st;
	lama_recipes *recipes;
	lama_archive *ar;
	lama_hash person, instance;
	uint8_t *sign_sk; /* secure memory: person's, then instance's Ed25519 key */
	int lock_fd;      /* shared lock on dir/.lock while logged in */
};

/* Takes a lock on the user's dir/.lock: shared while a session is open,
 * exclusive (and not waiting) to erase, so a user is never erased under a
 * process that is still writing to their archive. */
static int user_lock(const char *dir, int how, int *fd)
{
	char path[LAMA_PATH_MAX];

	*fd = -1;
	if (snprintf(path, sizeof(path), "%s/.lock", dir) >= (int)sizeof(path))
		return lama_error(LAMA_ELIMIT, "path too long");
	*fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (*fd < 0)
		return lama_error(LAMA_EIO, "cannot open %s: %s", path, strerror(errno));
	while (flock(*fd, how) != 0) {
		int e = errno;

		if (e == EINTR)
			continue;
		close(*fd);
		*fd = -1;
		if (e == EWOULDBLOCK)
			return lama_error(LAMA_EBUSY, "the user is in use by another lama process");
		return lama_error(LAMA_EIO, "cannot lock %s: %s", path, strerror(e));
	}
	return 0;
}

int lama_home_resolve(const char *opt, char *out, size_t n)
{
	const char *env = getenv("LAMA_HOME"), *home = getenv("HOME");
	int w;

	if (opt && *opt)
		w = snprintf(out, n, "%s", opt);
	else if (env && *env)
		w = snprintf(out, n, "%s", env);
	else if (home && *home)
		w = snprintf(out, n, "%s/.local/share/lama", home);
	else
		return lama_error(LAMA_EINVAL, "no data folder: give --home DIR or set LAMA_HOME");
	/* SQLite opens paths of up to 512 bytes; the archive sits ~70 below */
	if (w < 0 || (size_t)w >= n || w > 400)
		return lama_error(LAMA_ELIMIT, "data folder path is too long (at most 400 bytes)");
	return 0;
}

/* ---- files ---- */

static int mkdirs(const char *path)
{
	char tmp[LAMA_PATH_MAX];
	size_t len = strlen(path);

	if (len >= sizeof(tmp))
		return lama_error(LAMA_ELIMIT, "path too long");
	memcpy(tmp, path, len + 1);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
			return lama_error(LAMA_EIO, "cannot create %s: %s", tmp, strerror(errno));
		*p = '/';
	}
	if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
		return lama_error(LAMA_EIO, "cannot create %s: %s", tmp, strerror(errno));
	return 0;
}

int lama_home_create(const char *home)
{
	return mkdirs(home);
}

/* Writes a file atomically: temp file, fsync, rename, fsync the folder. */
static int write_atomic(const char *dir, const char *name, const char *data, size_t n)
{
	char tmp[LAMA_PATH_MAX], path[LAMA_PATH_MAX];
	int fd, dfd, rc = 0;

	if (snprintf(tmp, sizeof(tmp), "%s/.%s.XXXXXX", dir, name) >= (int)sizeof(tmp) ||
	    snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
		return lama_error(LAMA_ELIMIT, "path too long in %s", dir);
	/* a temporary name of its own (mode 0600): two writers never share one */
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return lama_error(LAMA_EIO, "cannot write %s: %s", tmp, strerror(errno));
	if (write(fd, data, n) != (ssize_t)n || fsync(fd) != 0)
		rc = lama_error(LAMA_EIO, "cannot write %s: %s", tmp, strerror(errno));
	close(fd);
	if (!rc && rename(tmp, path) != 0)
		rc = lama_error(LAMA_EIO, "cannot replace %s: %s", path, strerror(errno));
	if (rc) {
		unlink(tmp);
		return rc;
	}
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return 0;
}

/* Registration, password changes and erasure of one data folder run one
 * at a time: an exclusive lock on DIR/.lock, released by closing *fd. */
static int folder_lock(const char *home, int *fd)
{
	char path[LAMA_PATH_MAX];
	int rc;

	*fd = -1;
	if ((rc = mkdirs(home)))
		return rc;
	if (snprintf(path, sizeof(path), "%s/.lock", home) >= (int)sizeof(path))
		return lama_error(LAMA_ELIMIT, "data folder path is too long");
	*fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (*fd < 0)
		return lama_error(LAMA_EIO, "cannot open %s: %s", path, strerror(errno));
	while (flock(*fd, LOCK_EX) != 0) {
		if (errno != EINTR) {
			rc = lama_error(LAMA_EIO, "cannot lock %s: %s", path, strerror(errno));
			close(*fd);
			*fd = -1;
			return rc;
		}
	}
	return 0;
}

static void folder_unlock(int fd)
{
	if (fd >= 0)
		close(fd);
}

static int read_json(const char *path, json_t **out)
{
	json_error_t jerr;
	FILE *f = fopen(path, "re");
	char buf[RECORD_MAX + 1];
	size_t n;

	*out = NULL;
	if (!f)
		return lama_error(errno == ENOENT ? LAMA_ENOTFOUND : LAMA_EIO, "cannot read %s: %s",
				  path, strerror(errno));
	n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	if (n > RECORD_MAX)
		return lama_error(LAMA_ECORRUPT, "%s is too large", path);
	*out = json_loadb(buf, n, JSON_REJECT_DUPLICATES, &jerr);
	if (!*out || !json_is_object(*out)) {
		json_decref(*out);
		*out = NULL;
		return lama_error(LAMA_ECORRUPT, "%s is damaged: %s", path, jerr.text);
	}
	return 0;
}

static int hex_field(const json_t *o, const char *key, void *out, size_t n, const char *path)
{
	const char *s = json_string_value(json_object_get(o, key));

	if (!s || lama_hex_decode(s, strlen(s), out, n))
		return lama_error(LAMA_ECORRUPT, "%s: bad or missing \"%s\"", path, key);
	return 0;
}

/* The folder's salt for name tags, created on first use. */
static int folder_salt(const char *home, uint8_t salt[16], int create)
{
	char path[LAMA_PATH_MAX], hex[33];
	json_t *o = NULL;
	int rc;

	snprintf(path, sizeof(path), "%s/%s", home, FOLDER_FILE);
	rc = read_json(path, &o);
	if (rc == LAMA_ENOTFOUND && create) {
		char *text;

		lama_random(salt, 16);
		lama_hex_encode(salt, 16, hex);
		o = json_pack("{s:i, s:s}", "version", ACCOUNT_VERSION, "salt", hex);
		text = o ? json_dumps(o, JSON_INDENT(1)) : NULL;
		json_decref(o);
		if (!text)
			return lama_error(LAMA_ENOMEM, "out of memory");
		rc = mkdirs(home);
		if (!rc)
			rc = write_atomic(home, FOLDER_FILE, text, strlen(text));
		free(text);
		return rc;
	}
	if (rc == LAMA_ENOTFOUND)
		return lama_error(LAMA_ENOTFOUND, "no users in %s (run `lama register`)", home);
	if (!rc)
		rc = hex_field(o, "salt", salt, 16, path);
	json_decref(o);
	return rc;
}

static void name_tag(const uint8_t salt[16], const char *name, char hex[65])
{
	uint8_t key[32] = { 0 }, tag[32];

	memcpy(key, salt, 16);
	lama_keyed_hash(tag, name, strlen(name), key);
	lama_hex_encode(tag, 32, hex);
}

static int check_name(const char *name)
{
	size_t n = name ? strlen(name) : 0;
	json_t *utf8;

	if (n == 0 || n > LAMA_NAME_MAX)
		return lama_error(LAMA_EINVAL, "a user name has 1 to %d bytes", LAMA_NAME_MAX);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
			return lama_error(LAMA_EINVAL, "a user name cannot contain control characters");
	utf8 = json_string(name);
	if (!utf8)
		return lama_error(LAMA_EINVAL, "a user name must be UTF-8 text");
	json_decref(utf8);
	return 0;
}

/* Finds the user folder for a name (NULL: the only user). */
static int find_user(const char *home, const char *name, char *dir, size_t dirlen)
{
	char users[LAMA_PATH_MAX], path[2 * LAMA_PATH_MAX], tag[65];
	uint8_t salt[16];
	struct dirent *de;
	DIR *d;
	int rc = 0, found = 0;

	if (name && (rc = check_name(name)))
		return rc;
	if ((rc = folder_salt(home, salt, 0)))
		return rc;
	if (name)
		name_tag(salt, name, tag);
	snprintf(users, sizeof(users), "%s/users", home);
	d = opendir(users);
	if (!d)
		return lama_error(LAMA_ENOTFOUND, "no users in %s (run `lama register`)", home);
	while ((de = readdir(d))) {
		json_t *o;
		const char *t;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s/%s", users, de->d_name, ACCOUNT_FILE);
		if (read_json(path, &o))
			continue; /* a half-made or foreign folder: not a user */
		t = json_string_value(json_object_get(o, "name_tag"));
		if (!name || (t && strcmp(t, tag) == 0)) {
			if (snprintf(dir, dirlen, "%s/%s", users, de->d_name) < (int)dirlen)
				found++;
		}
		json_decref(o);
	}
	closedir(d);
	if (found == 0)
		return name ? lama_error(LAMA_ENOTFOUND, "no user named %s", name)
			    : lama_error(LAMA_ENOTFOUND, "no users in %s (run `lama register`)", home);
	if (found > 1 && !name)
		return lama_error(LAMA_EINVAL, "%d users share this folder: say which with --user NAME", found);
	if (found > 1)
		return lama_error(LAMA_ECORRUPT, "%d users are named %s: the data folder is damaged", found, name);
	return 0;
}

int lama_account_count(const char *home, size_t *n)
{
	char users[LAMA_PATH_MAX], path[2 * LAMA_PATH_MAX];
	struct dirent *de;
	DIR *d;

	*n = 0;
	snprintf(users, sizeof(users), "%s/users", home);
	d = opendir(users);
	if (!d)
		return 0;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s/%s", users, de->d_name, ACCOUNT_FILE);
		if (access(path, F_OK) == 0)
			(*n)++;
	}
	closedir(d);
	return 0;
}

/* ---- the account record ---- */

struct record {
	char uid[33];
	char tag[65];
	struct lama_kdf_params kdf;
	uint8_t salt[LAMA_SALT_BYTES];
	uint8_t wrapped[LAMA_MASTER_WRAPPED_BYTES];
};

static void record_ad(const struct record *r, char ad[64])
{
	snprintf(ad, 64, "lama master v1 %s", r->uid);
}

static int record_write(const char *dir, const struct record *r)
{
	char salt[2 * LAMA_SALT_BYTES + 1], wrapped[2 * LAMA_MASTER_WRAPPED_BYTES + 1];
	json_t *o;
	char *text;
	int rc;

	lama_hex_encode(r->salt, sizeof(r->salt), salt);
	lama_hex_encode(r->wrapped, sizeof(r->wrapped), wrapped);
	o = json_pack("{s:i, s:s, s:s, s:{s:I, s:I}, s:s, s:s}", "version", ACCOUNT_VERSION,
		      "uid", r->uid, "name_tag", r->tag, "kdf", "opslimit", (json_int_t)r->kdf.opslimit,
		      "memlimit", (json_int_t)r->kdf.memlimit, "salt", salt, "master", wrapped);
	text = o ? json_dumps(o, JSON_INDENT(1)) : NULL;
	json_decref(o);
	if (!text)
		return lama_error(LAMA_ENOMEM, "out of memory");
	rc = write_atomic(dir, ACCOUNT_FILE, text, strlen(text));
	free(text);
	return rc;
}

static int record_read(const char *dir, struct record *r)
{
	char path[LAMA_PATH_MAX];
	json_t *o, *kdf;
	const char *uid, *tag;
	int rc;

	snprintf(path, sizeof(path), "%s/%s", dir, ACCOUNT_FILE);
	if ((rc = read_json(path, &o)))
		return rc;
	uid = json_string_value(json_object_get(o, "uid"));
	tag = json_string_value(json_object_get(o, "name_tag"));
	kdf = json_object_get(o, "kdf");
	if (json_integer_value(json_object_get(o, "version")) != ACCOUNT_VERSION || !uid ||
	    strlen(uid) != 32 || !tag || strlen(tag) != 64 ||
	    json_integer_value(json_object_get(kdf, "opslimit")) <= 0 ||
	    json_integer_value(json_object_get(kdf, "memlimit")) <= 0) {
		rc = lama_error(LAMA_ECORRUPT, "%s is damaged or from a newer lama", path);
		goto out;
	}
	memcpy(r->uid, uid, 33);
	memcpy(r->tag, tag, 65);
	r->kdf.opslimit = (uint64_t)json_integer_value(json_object_get(kdf, "opslimit"));
	r->kdf.memlimit = (uint64_t)json_integer_value(json_object_get(kdf, "memlimit"));
	rc = hex_field(o, "salt", r->salt, sizeof(r->salt), path);
	if (!rc)
		rc = hex_field(o, "master", r->wrapped, sizeof(r->wrapped), path);
out:
	json_decref(o);
	return rc;
}

/* ---- the session ---- */

/* A worker's session (lama_account_worker_open) has no master key. */
static int no_keychain(void)
{
	return lama_error(LAMA_EINVAL, "a worker's session holds no keys but the archive's");
}

/* The archive's storage key and index key, from the master key. */
static int archive_keys(lama_keychain *kc, uint8_t enc[LAMA_KEY_BYTES], uint8_t idx[LAMA_KEY_BYTES])
{
	int rc = lama_keychain_subkey(kc, 1, "lamastor", enc);

	if (!rc)
		rc = lama_keychain_subkey(kc, 2, "lamaindx", idx);
	return rc;
}

/* The store, recipes and archive of a session whose dir is set. */
static int session_archive(lama_session *s, const uint8_t enc[LAMA_KEY_BYTES],
			   const uint8_t idx[LAMA_KEY_BYTES], int create)
{
	char path[LAMA_PATH_MAX];
	int rc;

	if (snprintf(path, sizeof(path), "%s/%s", s->dir, ARCHIVE_FILE) >= (int)sizeof(path))
		return lama_error(LAMA_ELIMIT, "path too long");
	rc = lama_store_open(&s->st, path, enc, idx, create ? LAMA_STORE_CREATE : 0);
	if (!rc)
		rc = lama_recipes_new(&s->recipes);
	if (!rc)
		rc = lama_recipes_add_builtin(s->recipes);
	if (!rc)
		rc = lama_archive_new(&s->ar, s->st, s->recipes);
	return rc;
}

static int session_open(const char *dir, lama_keychain *kc, int create, lama_session **out)
{
	lama_session *s = lama_calloc(1, sizeof(*s));
	uint8_t enc[32], idx[32];
	int rc;

	*out = NULL;
	if (!s) {
		lama_keychain_free(kc);
		return lama_error(LAMA_ENOMEM, "out of memory");
	}
	snprintf(s->dir, sizeof(s->dir), "%s", dir);
	s->kc = kc;
	s->lock_fd = -1;
	if ((rc = user_lock(dir, LOCK_SH, &s->lock_fd))) {
		lama_session_logout(s);
		return rc;
	}
	rc = archive_keys(kc, enc, idx);
	if (!rc)
		rc = session_archive(s, enc, idx, create);
	lama_wipe(enc, sizeof(enc));
	lama_wipe(idx, sizeof(idx));
	if (rc) {
		lama_session_logout(s);
		return rc;
	}
	*out = s;
	return 0;
}

void lama_session_logout(lama_session *s)
{
	if (!s)
		return;
	lama_archive_free(s->ar);
	lama_store_close(s->st);
	lama_recipes_free(s->recipes);
	lama_keychain_free(s->kc);
	lama_secure_free(s->sign_sk);
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	lama_wipe(s, sizeof(*s));
	lama_free(s);
}

int lama_session_subkey(lama_session *s, uint64_t id, const char ctx[8],
			uint8_t out[LAMA_KEY_BYTES])
{
	if (!s->kc)
		return no_keychain();
	return lama_keychain_subkey(s->kc, id, ctx, out);
}

lama_archive *lama_session_archive(lama_session *s) { return s->ar; }
lama_store *lama_session_store(lama_session *s) { return s->st; }
const lama_recipes *lama_session_recipes(lama_session *s) { return s->recipes; }
const lama_hash *lama_session_person(lama_session *s) { return &s->person; }
const lama_hash *lama_session_instance(lama_session *s) { return &s->instance; }
const char *lama_session_dir(lama_session *s) { return s->dir; }

/* Keys are kept in the keychain under these names; the public halves are
 * ONE Keys objects in the archive. */
static const char *const sign_names[2] = { "person.sign", "instance.sign" };
static const char *const box_names[2] = { "person.box", "instance.box" };

static int keychain_put(lama_session *s, const char *name, const void *secret, size_t n)
{
	struct lama_buf w = LAMA_BUF_INIT(LAMA_KV_MAX);
	char kvname[64];
	int rc;

	if (!s->kc)
		return no_keychain();
	snprintf(kvname, sizeof(kvname), "keychain/%s", name);
	rc = lama_keychain_wrap(s->kc, name, secret, n, &w);
	if (!rc)
		rc = lama_store_kv_put(s->st, kvname, w.data, w.len);
	lama_buf_release(&w);
	return rc;
}

static int keychain_get(lama_session *s, const char *name, void *secret, size_t n)
{
	struct lama_buf w = LAMA_BUF_INIT(LAMA_KV_MAX);
	char kvname[64];
	int rc;

	if (!s->kc)
		return no_keychain();
	snprintf(kvname, sizeof(kvname), "keychain/%s", name);
	rc = lama_store_kv_get(s->st, kvname, &w);
	if (!rc)
		rc = lama_keychain_unwrap(s->kc, name, (const uint8_t *)w.data, w.len, secret, n);
	lama_buf_release(&w);
	return rc;
}

int lama_session_sign(lama_session *s, int instance, const void *msg, size_t n,
		      uint8_t sig[LAMA_SIG_BYTES])
{
	int rc;

	if (!s->sign_sk) {
		s->sign_sk = lama_secure_alloc(2 * LAMA_SIGN_SK_BYTES);
		if (!s->sign_sk)
			return lama_error(LAMA_ENOMEM, "cannot allocate secure memory");
		rc = keychain_get(s, sign_names[0], s->sign_sk, LAMA_SIGN_SK_BYTES);
		if (!rc)
			rc = keychain_get(s, sign_names[1], s->sign_sk + LAMA_SIGN_SK_BYTES, LAMA_SIGN_SK_BYTES);
		if (rc) {
			lama_secure_free(s->sign_sk);
			s->sign_sk = NULL;
			return rc;
		}
	}
	lama_sign(sig, msg, n, s->sign_sk + (instance ? LAMA_SIGN_SK_BYTES : 0));
	return 0;
}

int lama_session_public_keys(lama_session *s, int instance, uint8_t sign_pk[LAMA_SIGN_PK_BYTES],
			     uint8_t box_pk[LAMA_BOX_PK_BYTES])
{
	uint8_t *sk = lama_secure_alloc(LAMA_SIGN_SK_BYTES + LAMA_BOX_SK_BYTES);
	int rc;

	if (!sk)
		return lama_error(LAMA_ENOMEM, "cannot allocate secure memory");
	instance = !!instance;
	rc = keychain_get(s, sign_names[instance], sk, LAMA_SIGN_SK_BYTES);
	if (!rc)
		rc = keychain_get(s, box_names[instance], sk + LAMA_SIGN_SK_BYTES, LAMA_BOX_SK_BYTES);
	if (!rc) {
		/* libsodium's Ed25519 secret key is seed || public key */
		memcpy(sign_pk, sk + LAMA_SIGN_SK_BYTES - LAMA_SIGN_PK_BYTES, LAMA_SIGN_PK_BYTES);
		rc = lama_box_public(box_pk, sk + LAMA_SIGN_SK_BYTES);
	}
	lama_secure_free(sk);
	return rc;
}

/* Creates keys for the person (0) or instance (1) and their Keys object. */
static int make_keys(lama_session *s, int which, const lama_hash *owner)
{
	uint8_t spk[LAMA_SIGN_PK_BYTES], bpk[LAMA_BOX_PK_BYTES];
	uint8_t *sk = lama_secure_alloc(LAMA_SIGN_SK_BYTES + LAMA_BOX_SK_BYTES);
	char spk_hex[65], bpk_hex[65], owner_hex[65];
	json_t *keys;
	int rc;

	if (!sk)
		return lama_error(LAMA_ENOMEM, "cannot allocate secure memory");
	rc = lama_sign_keypair(spk, sk);
	if (!rc)
		rc = lama_box_keypair(bpk, sk + LAMA_SIGN_SK_BYTES);
	if (!rc)
		rc = keychain_put(s, sign_names[which], sk, LAMA_SIGN_SK_BYTES);
	if (!rc)
		rc = keychain_put(s, box_names[which], sk + LAMA_SIGN_SK_BYTES, LAMA_BOX_SK_BYTES);
	lama_secure_free(sk);
	if (rc)
		return rc;
	/* ONE's Keys hold the public keys as 64 hex characters. */
	lama_hex_encode(spk, sizeof(spk), spk_hex);
	lama_hex_encode(bpk, sizeof(bpk), bpk_hex);
	lama_hash_hex(owner, owner_hex);
	keys = json_pack("{s:s, s:s, s:s, s:s}", "$type$", "Keys", "owner", owner_hex,
			 "publicKey", bpk_hex, "publicSignKey", spk_hex);
	if (!keys)
		return lama_error(LAMA_ENOMEM, "out of memory");
	rc = lama_archive_put(s->ar, keys, 0, NULL);
	json_decref(keys);
	return rc;
}

static int make_identity(lama_session *s, const char *name)
{
	struct lama_put_info info;
	uint8_t rnd[16];
	char email[64], iname[128], host[64] = "device", person_hex[65];
	json_t *person = NULL, *instance = NULL, *ident = NULL;
	char *text = NULL;
	int rc;

	/* A Person's ID is its email; lama makes a unique one per identity so
	 * two people of the same name never collide. */
	lama_random(rnd, sizeof(rnd));
	lama_hex_encode(rnd, sizeof(rnd), email);
	strcat(email, "@lama.local");
	gethostname(host, sizeof(host) - 1);
	lama_random(rnd, 4);
	snprintf(iname, sizeof(iname), "%.60s-%02x%02x%02x%02x", host, rnd[0], rnd[1], rnd[2], rnd[3]);

	rc = lama_store_begin(s->st);
	if (rc)
		return rc;
	person = json_pack("{s:s, s:s, s:s}", "$type$", "Person", "email", email, "name", name);
	rc = person ? lama_archive_put(s->ar, person, 0, &info) : lama_error(LAMA_ENOMEM, "out of memory");
	if (rc)
		goto out;
	s->person = info.id_hash;
	lama_hash_hex(&s->person, person_hex);
	instance = json_pack("{s:s, s:s, s:s, s:{s:[]}, s:{s:[]}, s:{s:[]}}", "$type$", "Instance",
			     "name", iname, "owner", person_hex, "recipe", "$set",
			     "enabledReverseMapTypes", "$map", "enabledReverseMapTypesForIdObjects", "$map");
	rc = instance ? lama_archive_put(s->ar, instance, 0, &info) : lama_error(LAMA_ENOMEM, "out of memory");
	if (rc)
		goto out;
	s->instance = info.id_hash;
	rc = make_keys(s, 0, &s->person);
	if (!rc)
		rc = make_keys(s, 1, &s->instance);
	if (rc)
		goto out;
	{
		char inst_hex[65];

		lama_hash_hex(&s->instance, inst_hex);
		ident = json_pack("{s:s, s:s}", "person", person_hex, "instance", inst_hex);
	}
	text = ident ? json_dumps(ident, JSON_COMPACT) : NULL;
	rc = text ? lama_store_kv_put(s->st, "identity", text, strlen(text))
		  : lama_error(LAMA_ENOMEM, "out of memory");
out:
	free(text);
	json_decref(ident);
	json_decref(person);
	json_decref(instance);
	if (rc) {
		lama_store_rollback(s->st);
		return rc;
	}
	return lama_store_commit(s->st);
}

static int load_identity(lama_session *s)
{
	struct lama_buf b = LAMA_BUF_INIT(RECORD_MAX);
	json_t *o = NULL;
	const char *p, *i;
	int rc;

	rc = lama_store_kv_get(s->st, "identity", &b);
	if (!rc) {
		o = json_loadb(b.data, b.len, 0, NULL);
		p = json_string_value(json_object_get(o, "person"));
		i = json_string_value(json_object_get(o, "instance"));
		if (!p || !i || lama_hash_parse(p, strlen(p), &s->person) ||
		    lama_hash_parse(i, strlen(i), &s->instance))
			rc = lama_error(LAMA_ECORRUPT, "the identity record is damaged");
	}
	json_decref(o);
	lama_buf_release(&b);
	return rc;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int rmtree(const char *dir)
{
	if (nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0 && errno != ENOENT)
		return lama_error(LAMA_EIO, "cannot remove %s: %s", dir, strerror(errno));
	return 0;
}

/* How a new master key is wrapped: under the password (Argon2id here), or
 * under a key a crypto worker made from it and a salt. */
struct wrapping {
	const char *pw;
	size_t pwlen;
	const uint8_t *salt, *wkey; /* both or neither */
};

static int register_locked(const char *home, const char *name, const struct wrapping *w,
			   const struct lama_kdf_params *kdf, lama_session **out)
{
	struct record r;
	uint8_t salt[16], uidb[16], *master = NULL;
	char dir[LAMA_PATH_MAX], existing[LAMA_PATH_MAX], ad[64];
	lama_keychain *kc = NULL;
	int rc;

	*out = NULL;
	if ((rc = check_name(name)))
		return rc;
	if (!w->wkey && w->pwlen == 0)
		return lama_error(LAMA_EINVAL, "the password must not be empty");
	if ((rc = folder_salt(home, salt, 1)))
		return rc;
	rc = find_user(home, name, existing, sizeof(existing));
	if (rc == 0)
		return lama_error(LAMA_EEXIST, "a user named %s already exists", name);
	if (rc != LAMA_ENOTFOUND)
		return rc;
	memset(&r, 0, sizeof(r));
	lama_random(uidb, sizeof(uidb));
	lama_hex_encode(uidb, sizeof(uidb), r.uid);
	name_tag(salt, name, r.tag);
	r.kdf = *kdf;
	snprintf(dir, sizeof(dir), "%s/users/%s", home, r.uid);
	if ((rc = mkdirs(dir)))
		return rc;
	master = lama_secure_alloc(LAMA_KEY_BYTES);
	if (!master) {
		rc = lama_error(LAMA_ENOMEM, "cannot allocate secure memory");
		goto fail;
	}
	lama_random(master, LAMA_KEY_BYTES);
	record_ad(&r, ad);
	if (w->wkey) {
		memcpy(r.salt, w->salt, LAMA_SALT_BYTES);
		rc = lama_master_wrap_key(master, w->wkey, r.wrapped, ad, strlen(ad));
	} else {
		rc = lama_master_wrap(master, w->pw, w->pwlen, kdf, r.salt, r.wrapped, ad, strlen(ad));
	}
	if (!rc)
		rc = lama_keychain_new(&kc, master);
	lama_secure_free(master);
	if (rc)
		goto fail;
	rc = session_open(dir, kc, 1, out);
	if (!rc)
		rc = make_identity(*out, name);
	/* The account record comes last: until it exists the folder is not a
	 * user, so a crash during registration leaves nothing usable behind. */
	if (!rc)
		rc = record_write(dir, &r);
	if (!rc)
		return 0;
fail:
	lama_session_logout(*out);
	*out = NULL;
	{
		char msg[512];

		snprintf(msg, sizeof(msg), "%s", lama_errmsg());
		rmtree(dir);
		lama_error(rc, "%s", msg);
	}
	return rc;
}

static int unlock(const char *dir, const char *pw, size_t pwlen, struct record *r,
		  lama_keychain **kc)
{
	char ad[64];
	int rc;

	if ((rc = record_read(dir, r)))
		return rc;
	record_ad(r, ad);
	rc = lama_keychain_unlock(kc, pw, pwlen, &r->kdf, r->salt, r->wrapped, ad, strlen(ad));
	if (rc == LAMA_EAUTH || rc == LAMA_ECRYPTO)
		return lama_error(LAMA_EAUTH, "wrong password");
	return rc;
}

/* The session of an unlocked keychain (taken), identity loaded. */
static int session_start(const char *dir, lama_keychain *kc, lama_session **out)
{
	int rc = session_open(dir, kc, 0, out);

	if (!rc)
		rc = load_identity(*out);
	if (rc) {
		lama_session_logout(*out);
		*out = NULL;
	}
	return rc;
}

int lama_account_worker_keys(lama_session *s, uint8_t keys[LAMA_WORKER_KEYS_BYTES])
{
	int rc;

	if (!s->kc)
		return no_keychain();
	rc = archive_keys(s->kc, keys, keys + LAMA_KEY_BYTES);
	if (rc)
		lama_wipe(keys, LAMA_WORKER_KEYS_BYTES);
	return rc;
}

int lama_account_worker_open(const char *dir, const uint8_t keys[LAMA_WORKER_KEYS_BYTES],
			     lama_session **out)
{
	lama_session *s;
	int rc;

	*out = NULL;
	if (!dir || !*dir || strlen(dir) >= sizeof(s->dir))
		return lama_error(LAMA_EINVAL, "a user folder path of 1 to %d bytes is needed",
				  LAMA_PATH_MAX - 1);
	if (!(s = lama_calloc(1, sizeof(*s))))
		return lama_error(LAMA_ENOMEM, "out of memory");
	snprintf(s->dir, sizeof(s->dir), "%s", dir);
	s->lock_fd = -1; /* the parent's session holds the user lock */
	rc = session_archive(s, keys, keys + LAMA_KEY_BYTES, 0);
	if (!rc)
		rc = load_identity(s);
	if (rc) {
		lama_session_logout(s);
		return rc;
	}
	*out = s;
	return 0;
}

int lama_account_kdf_input(const char *home, const char *name, uint8_t salt[LAMA_SALT_BYTES],
			   struct lama_kdf_params *p)
{
	char dir[LAMA_PATH_MAX];
	struct record r;
	int rc;

	if ((rc = find_user(home, name, dir, sizeof(dir))) || (rc = record_read(dir, &r)))
		return rc;
	memcpy(salt, r.salt, LAMA_SALT_BYTES);
	*p = r.kdf;
	return 0;
}

int lama_account_login_key(const char *home, const char *name, const uint8_t wkey[LAMA_KEY_BYTES],
			   lama_session **out)
{
	char dir[LAMA_PATH_MAX], ad[64];
	struct record r;
	lama_keychain *kc;
	int rc;

	*out = NULL;
	if ((rc = find_user(home, name, dir, sizeof(dir))) || (rc = record_read(dir, &r)))
		return rc;
	record_ad(&r, ad);
	rc = lama_keychain_unlock_key(&kc, wkey, r.wrapped, ad, strlen(ad));
	if (rc == LAMA_EAUTH || rc == LAMA_ECRYPTO)
		return lama_error(LAMA_EAUTH, "wrong password");
	if (rc)
		return rc;
	return session_start(dir, kc, out);
}

int lama_account_login(const char *home, const char *name, const char *pw, size_t pwlen,
		       lama_session **out)
{
	char dir[LAMA_PATH_MAX];
	struct record r;
	lama_keychain *kc;
	int rc;

	*out = NULL;
	if ((rc = find_user(home, name, dir, sizeof(dir))))
		return rc;
	if ((rc = unlock(dir, pw, pwlen, &r, &kc)))
		return rc;
	return session_start(dir, kc, out);
}

static int passwd_locked(const char *home, const char *name, const char *old_pw, size_t oldlen,
			 const char *new_pw, size_t newlen, const struct lama_kdf_params *kdf)
{
	char dir[LAMA_PATH_MAX], ad[64];
	struct record r;
	uint8_t *master;
	int rc;

	if (newlen == 0)
		return lama_error(LAMA_EINVAL, "the password must not be empty");
	if ((rc = find_user(home, name, dir, sizeof(dir))))
		return rc;
	if ((rc = record_read(dir, &r)))
		return rc;
	master = lama_secure_alloc(LAMA_KEY_BYTES);
	if (!master)
		return lama_error(LAMA_ENOMEM, "cannot allocate secure memory");
	record_ad(&r, ad);
	rc = lama_master_unwrap(master, old_pw, oldlen, &r.kdf, r.salt, r.wrapped, ad, strlen(ad));
	if (rc == LAMA_EAUTH || rc == LAMA_ECRYPTO)
		rc = lama_error(LAMA_EAUTH, "wrong password");
	if (!rc) {
		r.kdf = *kdf;
		rc = lama_master_wrap(master, new_pw, newlen, kdf, r.salt, r.wrapped, ad, strlen(ad));
	}
	lama_secure_free(master);
	if (!rc)
		rc = record_write(dir, &r);
	return rc;
}

static int erase_locked(const char *home, const char *name, const char *pw, size_t pwlen)
{
	char dir[LAMA_PATH_MAX], gone[LAMA_PATH_MAX];
	struct record r;
	lama_keychain *kc;
	int rc, lock = -1;

	if ((rc = find_user(home, name, dir, sizeof(dir))))
		return rc;
	if ((rc = unlock(dir, pw, pwlen, &r, &kc)))
		return rc;
	lama_keychain_free(kc);
	if ((rc = user_lock(dir, LOCK_EX | LOCK_NB, &lock)))
		return rc;
	/* Rename first so a crash halfway never leaves a half-user. */
	snprintf(gone, sizeof(gone), "%s/users/.erased-%s", home, r.uid);
	if (rename(dir, gone) != 0) {
		rc = lama_error(LAMA_EIO, "cannot remove %s: %s", dir, strerror(errno));
		close(lock);
		return rc;
	}
	rc = rmtree(gone);
	close(lock);
	return rc;
}

int lama_account_register(const char *home, const char *name, const char *pw, size_t pwlen,
			  const struct lama_kdf_params *kdf, lama_session **out)
{
	int fd, rc;

	*out = NULL;
	if ((rc = folder_lock(home, &fd)))
		return rc;
	rc = register_locked(home, name, &(struct wrapping){ .pw = pw, .pwlen = pwlen }, kdf, out);
	folder_unlock(fd);
	return rc;
}

int lama_account_register_key(const char *home, const char *name, const uint8_t salt[LAMA_SALT_BYTES],
			      const struct lama_kdf_params *kdf, const uint8_t wkey[LAMA_KEY_BYTES],
			      lama_session **out)
{
	int fd, rc;

	*out = NULL;
	if ((rc = folder_lock(home, &fd)))
		return rc;
	rc = register_locked(home, name, &(struct wrapping){ .salt = salt, .wkey = wkey }, kdf, out);
	folder_unlock(fd);
	return rc;
}

int lama_account_passwd(const char *home, const char *name, const char *old_pw, size_t oldlen,
			const char *new_pw, size_t newlen, const struct lama_kdf_params *kdf)
{
	int fd, rc;

	if ((rc = folder_lock(home, &fd)))
		return rc;
	rc = passwd_locked(home, name, old_pw, oldlen, new_pw, newlen, kdf);
	folder_unlock(fd);
	return rc;
}

int lama_account_erase(const char *home, const char *name, const char *pw, size_t pwlen)
{
	int fd, rc;

	if ((rc = folder_lock(home, &fd)))
		return rc;
	rc = erase_locked(home, name, pw, pwlen);
	folder_unlock(fd);
	return rc;
}

/* ---- backup and restore (src/backup) ---- */

/* The data folder of a user folder DIR/users/<uid>. */
static int home_of(const char *dir, char *home, size_t n)
{
	size_t len = strlen(dir);

	for (int cut = 0; cut < 2; cut++) {
		while (len > 0 && dir[len - 1] != '/')
			len--;
		while (len > 1 && dir[len - 1] == '/')
			len--;
	}
	if (len == 0 || len >= n)
		return lama_error(LAMA_EINVAL, "cannot tell the data folder of %s", dir);
	memcpy(home, dir, len);
	home[len] = '\0';
	return 0;
}

static int read_file_bytes(const char *path, struct lama_buf *out, size_t max)
{
	char buf[RECORD_MAX + 1];
	FILE *f = fopen(path, "re");
	size_t n;

	if (!f)
		return lama_error(LAMA_EIO, "cannot read %s: %s", path, strerror(errno));
	n = fread(buf, 1, sizeof(buf) < max + 1 ? sizeof(buf) : max + 1, f);
	fclose(f);
	if (n > max)
		return lama_error(LAMA_ECORRUPT, "%s is too large", path);
	return lama_buf_add(out, buf, n);
}

int lama_session_name(lama_session *s, char **name)
{
	lama_hash obj;
	json_t *o = NULL;
	const char *n;
	int rc;

	*name = NULL;
	rc = lama_archive_current(s->ar, &s->person, &obj);
	if (!rc)
		rc = lama_archive_get(s->ar, &obj, &o);
	if (rc)
		return rc;
	n = json_string_value(json_object_get(o, "name"));
	if (!n)
		rc = lama_error(LAMA_ECORRUPT, "the user's Person has no name");
	else if (!(*name = lama_strdup(n)))
		rc = lama_error(LAMA_ENOMEM, "out of memory");
	json_decref(o);
	return rc;
}

int lama_account_export(const char *dir, const char *name, const char *pw, size_t pwlen,
			struct lama_buf *record, struct lama_kdf_params *kdf)
{
	char home[LAMA_PATH_MAX], path[LAMA_PATH_MAX], ad[64], tag[65];
	struct lama_buf raw = LAMA_BUF_INIT(RECORD_MAX);
	uint8_t salt[16], *master = NULL;
	struct record r;
	int rc, fd;

	if ((rc = home_of(dir, home, sizeof(home))))
		return rc;
	if (snprintf(path, sizeof(path), "%s/%s", dir, ACCOUNT_FILE) >= (int)sizeof(path))
		return lama_error(LAMA_ELIMIT, "path too long");
	/* under the folder's lock, so a password change cannot swap the
	 * record between reading its bytes and checking the password */
	if ((rc = folder_lock(home, &fd)))
		return rc;
	rc = read_file_bytes(path, &raw, RECORD_MAX);
	if (!rc)
		rc = record_read(dir, &r);
	if (!rc)
		rc = folder_salt(home, salt, 0);
	folder_unlock(fd);
	if (rc)
		goto out;
	name_tag(salt, name, tag);
	if (strcmp(tag, r.tag) != 0) {
		rc = lama_error(LAMA_ECORRUPT, "the user's name does not match the account record");
		goto out;
	}
	master = lama_secure_alloc(LAMA_KEY_BYTES);
	if (!master) {
		rc = lama_error(LAMA_ENOMEM, "cannot allocate secure memory");
		goto out;
	}
	record_ad(&r, ad);
	rc = lama_master_unwrap(master, pw, pwlen, &r.kdf, r.salt, r.wrapped, ad, strlen(ad));
	lama_secure_free(master);
	if (rc == LAMA_EAUTH || rc == LAMA_ECRYPTO)
		rc = lama_error(LAMA_EAUTH, "wrong password");
	if (!rc)
		rc = lama_buf_add(record, raw.data, raw.len);
	if (!rc)
		*kdf = r.kdf;
out:
	lama_buf_release(&raw);
	return rc;
}

int lama_account_stage(const char *home, char *dir, size_t n)
{
	char users[LAMA_PATH_MAX];
	int rc;

	if (snprintf(users, sizeof(users), "%s/users", home) >= (int)sizeof(users) ||
	    snprintf(dir, n, "%s/.restore-XXXXXX", users) >= (int)n)
		return lama_error(LAMA_ELIMIT, "data folder path is too long");
	if ((rc = mkdirs(users)))
		return rc;
	if (!mkdtemp(dir))
		return lama_error(LAMA_EIO, "cannot create a folder in %s: %s", users, strerror(errno));
	return 0;
}

void lama_account_discard(const char *dir)
{
	char msg[512];

	/* keep the caller's error: the removal is cleanup */
	snprintf(msg, sizeof(msg), "%s", lama_errmsg());
	rmtree(dir);
	lama_error(0, "%s", msg);
}

static int adopt_locked(const char *home, const char *dir, const char *name, const char *pw,
			size_t pwlen)
{
	char existing[LAMA_PATH_MAX], target[LAMA_PATH_MAX], users[LAMA_PATH_MAX];
	uint8_t salt[16], uidb[16];
	struct record r;
	lama_keychain *kc;
	lama_session *s = NULL;
	int rc, dfd;

	if ((rc = check_name(name)))
		return rc;
	if ((rc = record_read(dir, &r)))
		return rc;
	/* the uid names a folder: only hex, never a path */
	if (lama_hex_decode(r.uid, 32, uidb, sizeof(uidb)))
		return lama_error(LAMA_ECORRUPT, "the account record's uid is not hex");
	if ((rc = folder_salt(home, salt, 1)))
		return rc;
	rc = find_user(home, name, existing, sizeof(existing));
	if (rc == 0)
		return lama_error(LAMA_EEXIST, "a user named %s already exists in %s", name, home);
	if (rc != LAMA_ENOTFOUND)
		return rc;
	snprintf(users, sizeof(users), "%s/users", home);
	if (snprintf(target, sizeof(target), "%s/%s", users, r.uid) >= (int)sizeof(target))
		return lama_error(LAMA_ELIMIT, "data folder path is too long");
	if (access(target, F_OK) == 0 || errno != ENOENT)
		return lama_error(LAMA_EEXIST, "this user is already in %s", home);
	/* the password opens the record and the record opens the archive */
	if ((rc = unlock(dir, pw, pwlen, &r, &kc)))
		return rc;
	rc = session_open(dir, kc, 0, &s);
	if (!rc)
		rc = load_identity(s);
	lama_session_logout(s);
	if (rc)
		return rc;
	name_tag(salt, name, r.tag);
	if ((rc = record_write(dir, &r)))
		return rc;
	if (rename(dir, target) != 0)
		return lama_error(LAMA_EIO, "cannot move the restored user into %s: %s", users,
				  strerror(errno));
	dfd = open(users, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return 0;
}

int lama_account_adopt(const char *home, const char *dir, const char *name, const char *pw,
		       size_t pwlen)
{
	int fd, rc;

	if ((rc = folder_lock(home, &fd)))
		return rc;
	rc = adopt_locked(home, dir, name, pw, pwlen);
	folder_unlock(fd);
	return rc;
}
