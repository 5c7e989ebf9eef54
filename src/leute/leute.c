/* leute.c: people, ONE's Leute model, over the archive (leute.h;
 * design in docs/people.md).
 *
 * Every object read here may have come from a peer: types are checked
 * (the archive does not check allowedTypes of references), strings for
 * NULs and lengths, bags for their size. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "crypto/crypto.h"
#include "leute/leute.h"
#include "util/err.h"
#include "util/mem.h"

#define LEUTE_APP "one.leute"
#define PROFILE_MAIN "default"
#define QUERY_MAX 512
#define SHORT_HEX 8 /* digits of a hash in messages */

static int oom(void)
{
	return lama_error(LAMA_ENOMEM, "out of memory");
}

static int hash_cmp(const lama_hash *a, const lama_hash *b)
{
	return memcmp(a->b, b->b, LAMA_HASH_BYTES);
}

/* --- reading, with checks --- */

/* *out: object h, which must be a `type` (a new reference). */
static int get_typed(lama_session *s, const lama_hash *h, const char *type, json_t **out)
{
	const char *t;
	json_t *o;
	int rc;

	*out = NULL;
	if ((rc = lama_archive_get(lama_session_archive(s), h, &o)))
		return rc;
	t = json_string_value(json_object_get(o, "$type$"));
	if (!t || strcmp(t, type) != 0) {
		char hex[LAMA_HASH_HEX + 1];

		lama_hash_hex(h, hex);
		rc = lama_error(LAMA_ECORRUPT, "%.*s is a %.60s where a %s belongs", SHORT_HEX, hex,
				t ? t : "?", type);
		json_decref(o);
		return rc;
	}
	*out = o;
	return 0;
}

/* *out: the current version of ID `id`, which must be a `type`. */
static int current_typed(lama_session *s, const lama_hash *id, const char *type, json_t **out)
{
	lama_hash h;
	int rc;

	*out = NULL;
	if ((rc = lama_archive_current(lama_session_archive(s), id, &h)))
		return rc;
	return get_typed(s, &h, type, out);
}

/* A string field: *out NULL if absent; LAMA_ECORRUPT if not a string or
 * holding a NUL, LAMA_ELIMIT if longer than max. */
static int str_field(const json_t *obj, const char *field, size_t max, const char *type,
		     const char **out)
{
	json_t *v = json_object_get(obj, field);

	*out = NULL;
	if (!v)
		return 0;
	if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
		return lama_error(LAMA_ECORRUPT, "%s.%s is not a text", type, field);
	if (json_string_length(v) > max)
		return lama_error(LAMA_ELIMIT, "%s.%s is longer than %zu bytes", type, field, max);
	*out = json_string_value(v);
	return 0;
}

/* A reference field (mandatory). */
static int ref_field(const json_t *obj, const char *field, const char *type, lama_hash *out)
{
	const char *hex = json_string_value(json_object_get(obj, field));

	if (!hex || lama_hash_parse(hex, strlen(hex), out))
		return lama_error(LAMA_ECORRUPT, "%s.%s is not a reference", type, field);
	return 0;
}

/* The ID hash of a (possibly partial) object: only its ID fields count. */
static int id_of(lama_session *s, const json_t *obj, lama_hash *id)
{
	if (!obj)
		return oom();
	return lama_object_hash(lama_session_recipes(s), obj, NULL, id);
}

static int id_of_new(lama_session *s, json_t *obj, lama_hash *id)
{
	int rc = id_of(s, obj, id);

	json_decref(obj);
	return rc;
}

static int person_id(lama_session *s, const char *email, lama_hash *id)
{
	return id_of_new(s, json_pack("{s:s, s:s}", "$type$", "Person", "email", email), id);
}

static int leute_id(lama_session *s, lama_hash *id)
{
	return id_of_new(s, json_pack("{s:s, s:s}", "$type$", "Leute", "appId", LEUTE_APP), id);
}

static int assistant_id(lama_session *s, const lama_hash *person, lama_hash *id)
{
	char hex[LAMA_HASH_HEX + 1];

	lama_hash_hex(person, hex);
	return id_of_new(s, json_pack("{s:s, s:s}", "$type$", "LamaAssistant", "person", hex), id);
}

/* lama names a person's Someone after the Person ID, so two devices that
 * add the same contact make the same Someone and their Leute merge. */
static int someone_id(lama_session *s, const lama_hash *person, lama_hash *id)
{
	char hex[LAMA_HASH_HEX + 1];

	lama_hash_hex(person, hex);
	return id_of_new(s, json_pack("{s:s, s:s}", "$type$", "Someone", "someoneId", hex), id);
}

/* 1 if s is valid UTF-8 without control characters (C0, DEL, C1). */
static int clean_text(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p) {
		unsigned c = *p;
		size_t n;
		unsigned long cp;

		if (c < 0x80) {
			if (c < 0x20 || c == 0x7f)
				return 0;
			p++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			n = 1, cp = c & 0x1f;
		else if (c >= 0xe0 && c <= 0xef)
			n = 2, cp = c & 0x0f;
		else if (c >= 0xf0 && c <= 0xf4)
			n = 3, cp = c & 0x07;
		else
			return 0;
		for (size_t i = 1; i <= n; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (p[i] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp <= 0x9f))
			return 0;
		p += n + 1;
	}
	return 1;
}

static int check_text(const char *s, size_t max, int empty_ok, const char *what)
{
	if (!s || (!*s && !empty_ok))
		return lama_error(LAMA_EINVAL, "the %s is empty", what);
	if (strlen(s) > max)
		return lama_error(LAMA_EINVAL, "the %s is longer than %zu bytes", what, max);
	if (!clean_text(s))
		return lama_error(LAMA_EINVAL, "the %s is not UTF-8 text without control characters", what);
	return 0;
}

/* A plain addr-spec: local@domain, local of atext and dots (no leading,
 * trailing or double dot, at most 64 bytes), domain of at least two
 * labels of letters, digits and inner hyphens. Written in lower case to
 * out (a Person's ID is its email: one spelling per address). */
static int normalize_email(const char *in, char out[LAMA_LEUTE_EMAIL_MAX + 1])
{
	static const char atext[] = "!#$%&'*+/=?^_`{|}~-";
	const char *at = in ? strchr(in, '@') : NULL;
	size_t len = in ? strlen(in) : 0, local, labels = 0, lablen = 0;

	if (!at || len > LAMA_LEUTE_EMAIL_MAX || strchr(at + 1, '@'))
		goto bad;
	local = (size_t)(at - in);
	if (local == 0 || local > 64 || in[0] == '.' || at[-1] == '.')
		goto bad;
	for (size_t i = 0; i < local; i++) {
		char c = in[i];

		if (c == '.' && in[i + 1] == '.')
			goto bad;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || (c && strchr(atext, c))))
			goto bad;
	}
	for (const char *p = at + 1;; p++) {
		char c = *p;

		if (c == '.' || c == '\0') {
			if (lablen == 0 || lablen > 63 || p[-1] == '-')
				goto bad;
			labels++;
			lablen = 0;
			if (!c)
				break;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      (c == '-' && lablen > 0)))
			goto bad;
		lablen++;
	}
	if (labels < 2)
		goto bad;
	for (size_t i = 0; i <= len; i++)
		out[i] = (char)((in[i] >= 'A' && in[i] <= 'Z') ? in[i] + 32 : in[i]);
	return 0;
bad:
	return lama_error(LAMA_EINVAL, "not an email address: %.*s", 80, in ? in : "");
}

/* --- one person --- */

/* Copies a PersonStatus, PersonName... pick into out when it beats the
 * one held: the smallest hash wins. */
static int beats(int have, const lama_hash *h, const lama_hash *best)
{
	return !have || hash_cmp(h, best) < 0;
}

static int key_field(const json_t *o, const char *type, const char *field, uint8_t key[32])
{
	const char *k;
	int rc = str_field(o, field, 64, type, &k);

	if (rc)
		return rc;
	if (!k || strlen(k) != 64 || lama_hex_decode(k, 64, key, 32))
		return lama_error(LAMA_ECORRUPT, "%s.%s is not 32 bytes in hex", type, field);
	return 0;
}

/* 1 if rc says an object from the archive failed validation (or is not
 * there), so a list can skip what it belongs to and go on; out of memory,
 * I/O and the like are not. */
static int invalid(int rc)
{
	return rc == LAMA_EINVAL || rc == LAMA_ECORRUPT || rc == LAMA_ELIMIT ||
	       rc == LAMA_EFORMAT || rc == LAMA_ENOTFOUND;
}

/* The descriptions of a Profile into out (docs/people.md, "Reading"). A
 * description that fails validation (or is not an object at all) is
 * skipped and counted in out->skipped: one bad object must not hide the
 * rest of the profile. */
static int read_descriptions(lama_session *s, const json_t *profile, struct lama_person *out)
{
	json_t *bag = json_object_get(profile, "personDescription"), *it, *o = NULL;
	lama_hash seen[LAMA_LEUTE_DESCRIPTIONS_MAX], sign_h[4];
	lama_hash name_h, status_h, image_h, enc_h;
	int has_name = 0, has_status = 0, has_image = 0, rc = 0;
	double status_t = 0;
	size_t i, nseen = 0, nsign = 0;

	if (!json_is_array(bag))
		return lama_error(LAMA_ECORRUPT, "Profile.personDescription is not a bag");
	if (json_array_size(bag) > LAMA_LEUTE_DESCRIPTIONS_MAX)
		return lama_error(LAMA_ELIMIT, "a profile holds more than %d descriptions",
				  LAMA_LEUTE_DESCRIPTIONS_MAX);
	json_array_foreach(bag, i, it) {
		const char *hex = json_string_value(it), *type, *v;
		lama_hash h;
		int dup = 0;

		if (!hex || lama_hash_parse(hex, strlen(hex), &h)) {
			out->skipped++;
			continue;
		}
		for (size_t j = 0; j < nseen && !dup; j++)
			dup = lama_hash_eq(&seen[j], &h);
		if (dup)
			continue;
		seen[nseen++] = h;
		rc = lama_archive_get(lama_session_archive(s), &h, &o);
		if (rc == LAMA_ENOTFOUND) {
			/* not synced yet: the profile shows what has arrived */
			lama_error_clear();
			rc = 0;
			continue;
		}
		if (rc == LAMA_EINVAL) {
			/* a CLOB where an object belongs */
			lama_error_clear();
			rc = 0;
			out->skipped++;
			continue;
		}
		if (rc)
			return rc;
		type = json_string_value(json_object_get(o, "$type$"));
		type = type ? type : "";
		if (!strcmp(type, "PersonName")) {
			if (!(rc = str_field(o, "name", LAMA_LEUTE_NAME_MAX, type, &v)) && !v)
				rc = lama_error(LAMA_ECORRUPT, "PersonName without a name");
			if (!rc && beats(has_name, &h, &name_h)) {
				has_name = 1;
				name_h = h;
				strcpy(out->name, v);
			}
		} else if (!strcmp(type, "PersonStatus")) {
			json_t *t = json_object_get(o, "timestamp");
			double ts = json_is_real(t) ? json_real_value(t) : NAN;

			if (!(rc = str_field(o, "value", LAMA_LEUTE_STATUS_MAX, type, &v)) && !v)
				rc = lama_error(LAMA_ECORRUPT, "PersonStatus without a value");
			if (!rc && !isfinite(ts))
				rc = lama_error(LAMA_ECORRUPT, "PersonStatus.timestamp is not a time");
			if (!rc && (!has_status || ts > status_t ||
				    (ts == status_t && hash_cmp(&h, &status_h) < 0))) {
				has_status = 1;
				status_t = ts;
				status_h = h;
				strcpy(out->status, v);
			}
		} else if (!strcmp(type, "ProfileImage")) {
			lama_hash img;

			rc = ref_field(o, "image", type, &img);
			if (!rc && beats(has_image, &h, &image_h)) {
				has_image = 1;
				image_h = h;
				out->has_avatar = 1;
				out->avatar = img;
			}
		} else if (!strcmp(type, "SignKey")) {
			uint8_t key[32];
			size_t at = nsign;

			if (!(rc = key_field(o, type, "key", key))) {
				/* keep the four smallest hashes, in order */
				while (at > 0 && hash_cmp(&h, &sign_h[at - 1]) < 0)
					at--;
				if (at < 4) {
					size_t keep = nsign < 4 ? nsign : 3;

					memmove(&sign_h[at + 1], &sign_h[at], (keep - at) * sizeof(lama_hash));
					memmove(out->sign_key[at + 1], out->sign_key[at], (keep - at) * 32);
					sign_h[at] = h;
					memcpy(out->sign_key[at], key, 32);
					if (nsign < 4)
						nsign++;
				}
				out->nkeys++;
			}
		} else if (!strcmp(type, "EncryptionKey")) {
			uint8_t key[32];

			if (!(rc = key_field(o, type, "key", key)) && beats(out->has_enc_key, &h, &enc_h)) {
				out->has_enc_key = 1;
				enc_h = h;
				memcpy(out->enc_key, key, 32);
			}
		}
		/* other descriptions (OrganisationName, PersonImage) lama does not show */
		json_decref(o);
		o = NULL;
		if (invalid(rc)) {
			lama_error_clear();
			rc = 0;
			out->skipped++;
		}
		if (rc)
			return rc;
	}
	return 0;
}

/* Fills out from a Person ID alone: its email and name. */
static int read_person(lama_session *s, const lama_hash *person, struct lama_person *out)
{
	const char *email, *name;
	json_t *p;
	int rc;

	if ((rc = current_typed(s, person, "Person", &p)))
		return rc;
	rc = str_field(p, "email", LAMA_LEUTE_EMAIL_MAX, "Person", &email);
	if (!rc && !email)
		rc = lama_error(LAMA_ECORRUPT, "Person without an email");
	if (!rc)
		rc = str_field(p, "name", LAMA_LEUTE_NAME_MAX, "Person", &name);
	if (!rc) {
		out->person = *person;
		strcpy(out->email, email);
		strcpy(out->name, name && *name ? name : email);
		out->is_me = 0;
	}
	json_decref(p);
	return rc;
}

/* is_ai and model from a LamaAssistant of the person, if there is one. */
static int read_assistant(lama_session *s, const lama_hash *person, struct lama_person *out)
{
	lama_hash id;
	const char *model;
	json_t *o;
	int rc;

	if ((rc = assistant_id(s, person, &id)))
		return rc;
	rc = current_typed(s, &id, "LamaAssistant", &o);
	if (rc == LAMA_ENOTFOUND) {
		lama_error_clear();
		return 0;
	}
	if (rc)
		return rc;
	rc = str_field(o, "model", LAMA_LEUTE_NAME_MAX, "LamaAssistant", &model);
	if (!rc) {
		out->is_ai = 1;
		strcpy(out->model, model ? model : "");
	}
	json_decref(o);
	return rc;
}

/* Everything about the Someone `someone`, through its main profile. */
static int read_someone(lama_session *s, const lama_hash *someone, struct lama_person *out)
{
	json_t *so = NULL, *po = NULL;
	lama_hash person, owner;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = current_typed(s, someone, "Someone", &so);
	if (!rc)
		rc = ref_field(so, "mainProfile", "Someone", &out->profile);
	if (!rc)
		rc = current_typed(s, &out->profile, "Profile", &po);
	if (!rc)
		rc = ref_field(po, "personId", "Profile", &person);
	if (!rc)
		rc = ref_field(po, "owner", "Profile", &owner);
	if (!rc)
		rc = read_person(s, &person, out);
	if (!rc)
		rc = read_descriptions(s, po, out);
	if (!rc)
		rc = read_assistant(s, &person, out);
	out->someone = *someone;
	json_decref(so);
	json_decref(po);
	return rc;
}

/* --- the Leute object --- */

static int leute_current(lama_session *s, json_t **out)
{
	lama_hash id;
	int rc;

	if ((rc = leute_id(s, &id)))
		return rc;
	rc = current_typed(s, &id, "Leute", out);
	if (rc == LAMA_ENOTFOUND)
		return lama_error(LAMA_ENOTFOUND, "no people yet (lama_leute_init was not run)");
	return rc;
}

/* The Leute.other bag, checked (a borrowed reference into leute). */
static int leute_other(const json_t *leute, json_t **other)
{
	json_t *o = json_object_get(leute, "other");

	if (!json_is_array(o))
		return lama_error(LAMA_ECORRUPT, "Leute.other is not a bag");
	if (json_array_size(o) > LAMA_LEUTE_CONTACTS_MAX)
		return lama_error(LAMA_ELIMIT, "more than %d contacts", LAMA_LEUTE_CONTACTS_MAX);
	*other = o;
	return 0;
}

static int read_me(lama_session *s, const json_t *leute, struct lama_person *out)
{
	lama_hash me;
	int rc = ref_field(leute, "me", "Leute", &me);

	if (!rc)
		rc = read_someone(s, &me, out);
	if (!rc && !lama_hash_eq(&out->person, lama_session_person(s)))
		rc = lama_error(LAMA_ECORRUPT, "Leute.me is not the user's person");
	out->is_me = 1;
	return rc;
}

struct people {
	struct lama_person *p;
	size_t n;
};

static int cmp_str(const void *x, const void *y)
{
	return strcmp(json_string_value(*(json_t *const *)x), json_string_value(*(json_t *const *)y));
}

static int cmp_person(const void *x, const void *y)
{
	const struct lama_person *a = x, *b = y;
	int c = strcasecmp(a->name, b->name);

	if (!c)
		c = strcmp(a->name, b->name);
	return c ? c : hash_cmp(&a->person, &b->person);
}

/* The contacts (and first the user, with_me), sorted by name after the
 * user. out->p is allocated (lama_free). A contact that fails validation
 * (a bad or missing Someone, Profile or Person, a non-reference in the
 * bag) is left out and counted in *skipped (may be NULL), so one bad
 * object from a peer cannot hide the whole list. */
static int load_people(lama_session *s, int with_me, struct people *out, size_t *skipped)
{
	json_t *leute = NULL, *other = NULL, **items = NULL;
	size_t n = 0, k = 0, bad = 0;
	int rc;

	out->p = NULL;
	out->n = 0;
	if (skipped)
		*skipped = 0;
	if ((rc = leute_current(s, &leute)) || (rc = leute_other(leute, &other)))
		goto out;
	n = json_array_size(other);
	items = lama_calloc(n + 1, sizeof(json_t *));
	out->p = lama_calloc(n + 1, sizeof(struct lama_person));
	if (!items || !out->p) {
		rc = oom();
		goto out;
	}
	/* non-strings are skipped (counted), strings sorted */
	for (size_t i = 0, all = n; i < all; i++) {
		json_t *v = json_array_get(other, i);

		if (json_is_string(v))
			items[k++] = v;
		else
			bad++;
	}
	n = k;
	k = 0;
	if (with_me && (rc = read_me(s, leute, &out->p[k++])))
		goto out;
	/* a bag written by a peer may name a Someone twice: once is enough */
	qsort(items, n, sizeof(json_t *), cmp_str);
	for (size_t i = 0; i < n && !rc; i++) {
		const char *hex = json_string_value(items[i]);
		lama_hash id;

		if (i > 0 && !strcmp(hex, json_string_value(items[i - 1])))
			continue;
		if (lama_hash_parse(hex, strlen(hex), &id)) {
			bad++;
			continue;
		}
		rc = read_someone(s, &id, &out->p[k]);
		if (invalid(rc)) {
			/* this contact alone is left out */
			lama_error_clear();
			rc = 0;
			bad++;
			continue;
		}
		if (!rc && out->p[k].is_me == 0 && lama_hash_eq(&out->p[k].person, lama_session_person(s)))
			continue; /* the user is not their own contact */
		k++;
	}
	if (rc)
		goto out;
	qsort(out->p + (with_me ? 1 : 0), k - (with_me ? 1 : 0), sizeof(struct lama_person), cmp_person);
	out->n = k;
	if (skipped)
		*skipped = bad;
out:
	if (rc) {
		lama_free(out->p);
		out->p = NULL;
	}
	lama_free(items);
	json_decref(leute);
	return rc;
}

/* --- writing --- */

/* Stores obj (taking the reference) and returns its hash or ID hash. */
static int put_new(lama_session *s, json_t *obj, lama_hash *hash, lama_hash *id)
{
	struct lama_put_info info;
	int rc;

	if (!obj)
		return oom();
	rc = lama_archive_put(lama_session_archive(s), obj, 0, &info);
	json_decref(obj);
	if (!rc && hash)
		*hash = info.hash;
	if (!rc && id)
		*id = info.id_hash;
	return rc;
}

static int put_text_desc(lama_session *s, const char *type, const char *field, const char *v,
			 lama_hash *h)
{
	return put_new(s, json_pack("{s:s, s:s}", "$type$", type, field, v), h, NULL);
}

/* A bag of hashes in the order of their hex text: the order the set merge
 * writes, so equal bags made on two devices are equal objects. */
static int bag_sorted(json_t *bag)
{
	size_t n = json_array_size(bag);
	json_t **v = lama_calloc(n + 1, sizeof(json_t *)), *out = json_array();
	int rc = 0;

	if (!v || !out) {
		rc = oom();
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		v[i] = json_array_get(bag, i);
	qsort(v, n, sizeof(json_t *), cmp_str);
	for (size_t i = 0; i < n && !rc; i++)
		if (json_array_append(out, v[i]))
			rc = oom();
	if (!rc && json_array_clear(bag))
		rc = oom();
	if (!rc && json_array_extend(bag, out))
		rc = oom();
out:
	json_decref(out);
	lama_free(v);
	return rc;
}

static int bag_add(json_t *bag, const lama_hash *h)
{
	char hex[LAMA_HASH_HEX + 1];

	lama_hash_hex(h, hex);
	if (json_array_append_new(bag, json_string(hex)))
		return oom();
	return bag_sorted(bag);
}

/* The Keys object of the session's person (instance 0) or instance (1):
 * the one holding exactly the keys in the session's keychain. It is found
 * by its hash, never by scanning who names the owner, so Keys objects a
 * peer wrote for the user (their own keys, or the user's public signing
 * key with another encryption key) are never picked. */
static int find_keys(lama_session *s, int instance, lama_hash *keys, json_t **obj)
{
	const lama_hash *owner = instance ? lama_session_instance(s) : lama_session_person(s);
	uint8_t spk[LAMA_SIGN_PK_BYTES], bpk[LAMA_BOX_PK_BYTES];
	char shex[LAMA_HASH_HEX + 1], bhex[LAMA_HASH_HEX + 1], ohex[LAMA_HASH_HEX + 1];
	json_t *k;
	int rc;

	*obj = NULL;
	if ((rc = lama_session_public_keys(s, instance, spk, bpk)))
		return rc;
	lama_hex_encode(spk, sizeof(spk), shex);
	lama_hex_encode(bpk, sizeof(bpk), bhex);
	lama_hash_hex(owner, ohex);
	k = json_pack("{s:s, s:s, s:s, s:s}", "$type$", "Keys", "owner", ohex, "publicKey", bhex,
		      "publicSignKey", shex);
	if (!k)
		return oom();
	rc = lama_object_hash(lama_session_recipes(s), k, keys, NULL);
	json_decref(k);
	if (!rc)
		rc = get_typed(s, keys, "Keys", obj);
	if (rc == LAMA_ENOTFOUND)
		rc = lama_error(LAMA_ENOTFOUND, "no Keys object holds %s's keys",
				instance ? "this instance" : "the user");
	return rc;
}

/* A Profile with one name description (and, for the user, keys and an
 * endpoint): its ID hash in *profile. */
static int make_profile(lama_session *s, const lama_hash *person, const char *name, json_t *extra,
			json_t *endpoints, lama_hash *profile)
{
	char p_hex[LAMA_HASH_HEX + 1], o_hex[LAMA_HASH_HEX + 1];
	lama_hash nh;
	json_t *desc = extra ? json_incref(extra) : json_array();
	int rc;

	if (!desc)
		return oom();
	rc = put_text_desc(s, "PersonName", "name", name, &nh);
	if (!rc)
		rc = bag_add(desc, &nh);
	if (!rc) {
		lama_hash_hex(person, p_hex);
		lama_hash_hex(lama_session_person(s), o_hex);
		rc = put_new(s, json_pack("{s:s, s:s, s:s, s:s, s:O, s:O}", "$type$", "Profile",
					  "profileId", PROFILE_MAIN, "personId", p_hex, "owner", o_hex,
					  "communicationEndpoint", endpoints, "personDescription", desc),
			     NULL, profile);
	}
	json_decref(desc);
	return rc;
}

static int make_someone(lama_session *s, const lama_hash *person, const lama_hash *profile,
			lama_hash *someone)
{
	char p_hex[LAMA_HASH_HEX + 1], pr_hex[LAMA_HASH_HEX + 1];

	lama_hash_hex(person, p_hex);
	lama_hash_hex(profile, pr_hex);
	return put_new(s, json_pack("{s:s, s:s, s:s, s:{s:[[s, {s:[s]}]]}}", "$type$", "Someone",
				    "someoneId", p_hex, "mainProfile", pr_hex, "identities", "$map",
				    p_hex, "$set", pr_hex),
		       NULL, someone);
}

/* The user's Someone, main Profile and Leute (inside the caller's
 * transaction). */
static int create_me(lama_session *s)
{
	const lama_hash *me = lama_session_person(s), *inst = lama_session_instance(s);
	char me_hex[LAMA_HASH_HEX + 1], inst_hex[LAMA_HASH_HEX + 1];
	char pk_hex[LAMA_HASH_HEX + 1], ik_hex[LAMA_HASH_HEX + 1], s_hex[LAMA_HASH_HEX + 1];
	json_t *pkeys = NULL, *ikeys = NULL, *desc = NULL, *ends = NULL;
	struct lama_person who;
	lama_hash pk, ik, h, profile, someone;
	const char *v;
	int rc;

	memset(&who, 0, sizeof(who));
	rc = read_person(s, me, &who);
	if (!rc)
		rc = find_keys(s, 0, &pk, &pkeys);
	if (!rc)
		rc = find_keys(s, 1, &ik, &ikeys);
	if (rc)
		goto out;
	desc = json_array();
	ends = json_array();
	if (!desc || !ends) {
		rc = oom();
		goto out;
	}
	/* ONE's Keys hold the same 64 hex characters SignKey and EncryptionKey do */
	if (!(rc = str_field(pkeys, "publicSignKey", 64, "Keys", &v)) && v)
		rc = put_text_desc(s, "SignKey", "key", v, &h);
	if (!rc && v)
		rc = bag_add(desc, &h);
	if (!rc && !(rc = str_field(pkeys, "publicKey", 64, "Keys", &v)) && v)
		rc = put_text_desc(s, "EncryptionKey", "key", v, &h);
	if (!rc && v)
		rc = bag_add(desc, &h);
	if (rc)
		goto out;
	lama_hash_hex(me, me_hex);
	lama_hash_hex(inst, inst_hex);
	lama_hash_hex(&pk, pk_hex);
	lama_hash_hex(&ik, ik_hex);
	rc = put_new(s, json_pack("{s:s, s:s, s:s, s:s, s:s}", "$type$", "OneInstanceEndpoint",
				  "personId", me_hex, "instanceId", inst_hex, "personKeys", pk_hex,
				  "instanceKeys", ik_hex),
		     &h, NULL);
	if (!rc)
		rc = bag_add(ends, &h);
	if (!rc)
		rc = make_profile(s, me, who.name, desc, ends, &profile);
	if (!rc)
		rc = make_someone(s, me, &profile, &someone);
	if (rc)
		goto out;
	lama_hash_hex(&someone, s_hex);
	rc = put_new(s, json_pack("{s:s, s:s, s:s, s:[], s:[]}", "$type$", "Leute", "appId", LEUTE_APP,
				  "me", s_hex, "other", "group"),
		     NULL, NULL);
out:
	json_decref(pkeys);
	json_decref(ikeys);
	json_decref(desc);
	json_decref(ends);
	return rc;
}

int lama_leute_rules(lama_archive *a)
{
	static const char *const bags[][2] = {
		{ "Profile", "personDescription" }, { "Profile", "communicationEndpoint" },
		{ "Leute", "other" }, { "Leute", "group" },
	};
	int rc;

	for (size_t i = 0; i < sizeof(bags) / sizeof(bags[0]); i++)
		if ((rc = lama_archive_set_rule(a, bags[i][0], bags[i][1], LAMA_CRDT_SET)))
			return rc;
	/* every Leute version names every contact; nobody asks backwards
	 * (contacts are found through Someone), so no reverse-map rows */
	return lama_archive_set_unindexed(a, "Leute");
}

int lama_leute_init(lama_session *s)
{
	lama_archive *a = lama_session_archive(s);
	lama_store *st = lama_session_store(s);
	lama_hash id, h;
	int rc;

	if ((rc = lama_leute_rules(a)))
		return rc;
	if ((rc = leute_id(s, &id)))
		return rc;
	/* look and create under one write lock: two processes starting at
	 * once make one Leute */
	if ((rc = lama_store_begin(st)))
		return rc;
	rc = lama_archive_current(a, &id, &h);
	if (rc == LAMA_ENOTFOUND) {
		lama_error_clear();
		rc = create_me(s);
	}
	if (rc) {
		lama_store_rollback(st);
		return rc;
	}
	return lama_store_commit(st);
}

int lama_leute_me(lama_session *s, struct lama_person *out)
{
	json_t *leute;
	int rc;

	if ((rc = leute_current(s, &leute)))
		return rc;
	rc = read_me(s, leute, out);
	json_decref(leute);
	return rc;
}

/* 1 if the hex ID hash `hex` is in the bag. */
static int bag_has(const json_t *bag, const char *hex)
{
	size_t i;
	json_t *v;

	json_array_foreach(bag, i, v)
		if (json_is_string(v) && !strcmp(json_string_value(v), hex))
			return 1;
	return 0;
}

/* Someones that name a person among their identities (object hashes,
 * from the reverse map); a person has few. Peers can write many, so the
 * read is bounded and a truncated answer fails closed. */
#define SOMEONES_MAX 64
struct someones {
	lama_hash h[SOMEONES_MAX];
	size_t n;
};

static int someone_cb(void *ctx, const char *type, const lama_hash *src)
{
	struct someones *so = ctx;

	(void)type;
	if (so->n < SOMEONES_MAX)
		so->h[so->n++] = *src;
	return 0;
}

/* The contact that is `person`, found without reading the other contacts:
 * the Someone lama would name after them, else any Someone in Leute.other
 * whose identities name them. 1 and *out filled if there is one, 0 if not,
 * or an error. */
static int contact_of(lama_session *s, const json_t *other, const lama_hash *person,
		      struct lama_person *out)
{
	char hex[LAMA_HASH_HEX + 1];
	struct someones so = { .n = 0 };
	lama_hash sid;
	int rc, truncated = 0;

	if ((rc = someone_id(s, person, &sid)))
		return rc;
	lama_hash_hex(&sid, hex);
	if (bag_has(other, hex)) {
		if ((rc = read_someone(s, &sid, out)))
			return rc;
		if (lama_hash_eq(&out->person, person))
			return 1;
	}
	rc = lama_archive_referrers_max(lama_session_archive(s), person, "Someone", SOMEONES_MAX,
					someone_cb, &so, &truncated);
	for (size_t i = 0; i < so.n && !rc; i++) {
		json_t *o;

		if ((rc = get_typed(s, &so.h[i], "Someone", &o)))
			break;
		rc = id_of(s, o, &sid);
		json_decref(o);
		if (rc)
			break;
		lama_hash_hex(&sid, hex);
		if (!bag_has(other, hex))
			continue;
		if ((rc = read_someone(s, &sid, out)))
			break;
		if (lama_hash_eq(&out->person, person))
			return 1;
	}
	if (!rc && truncated) {
		/* the contact may be among those not read: neither "no
		 * contact" (add would make a second one) nor a guess */
		lama_hash_hex(person, hex);
		rc = lama_error(LAMA_ELIMIT,
				"more than %d Someones name person %.*s; cannot tell whether it is a contact",
				SOMEONES_MAX, SHORT_HEX, hex);
	}
	return rc;
}

int lama_leute_add_contact(lama_session *s, const char *name, const char *email, int ai,
			   const char *model, struct lama_person *out)
{
	lama_store *st = lama_session_store(s);
	char em[LAMA_LEUTE_EMAIL_MAX + 1], p_hex[LAMA_HASH_HEX + 1];
	struct lama_person known;
	json_t *leute = NULL, *nl = NULL, *other = NULL;
	lama_hash person, profile, someone, h;
	int rc;

	if ((rc = check_text(name, LAMA_LEUTE_NAME_MAX, 0, "name")))
		return rc;
	if (model && !ai)
		return lama_error(LAMA_EINVAL, "a model is given only to an assistant");
	if (model && (rc = check_text(model, LAMA_LEUTE_NAME_MAX, 0, "model")))
		return rc;
	if (email) {
		if ((rc = normalize_email(email, em)))
			return rc;
	} else {
		uint8_t rnd[16];

		/* a unique address, so two people of one name never collide */
		lama_random(rnd, sizeof(rnd));
		lama_hex_encode(rnd, sizeof(rnd), em);
		strcat(em, ai ? "@ai.lama.local" : "@lama.local");
	}
	if ((rc = person_id(s, em, &person)))
		return rc;
	lama_hash_hex(&person, p_hex);
	/* check and add under one write lock */
	if ((rc = lama_store_begin(st)))
		return rc;
	if (lama_hash_eq(&person, lama_session_person(s))) {
		rc = lama_error(LAMA_EEXIST, "%s is you", em);
		goto out;
	}
	if ((rc = leute_current(s, &leute)) || (rc = leute_other(leute, &other)))
		goto out;
	rc = contact_of(s, other, &person, &known);
	if (rc == 1)
		rc = lama_error(LAMA_EEXIST, "%s is already a contact", em);
	if (rc)
		goto out;
	/* a person known already (from a message) keeps their own Person */
	rc = lama_archive_current(lama_session_archive(s), &person, &h);
	if (rc == LAMA_ENOTFOUND) {
		lama_error_clear();
		rc = put_new(s, json_pack("{s:s, s:s, s:s}", "$type$", "Person", "email", em, "name", name),
			     NULL, NULL);
	}
	if (!rc) {
		json_t *none = json_array();

		rc = none ? make_profile(s, &person, name, NULL, none, &profile) : oom();
		json_decref(none);
	}
	if (!rc)
		rc = make_someone(s, &person, &profile, &someone);
	if (!rc && ai)
		rc = put_new(s, model ? json_pack("{s:s, s:s, s:s}", "$type$", "LamaAssistant", "person", p_hex,
						  "model", model)
				      : json_pack("{s:s, s:s}", "$type$", "LamaAssistant", "person", p_hex),
			     NULL, NULL);
	if (!rc) {
		nl = json_deep_copy(leute);
		rc = nl ? leute_other(nl, &other) : oom();
	}
	if (!rc)
		rc = bag_add(other, &someone);
	if (!rc)
		rc = put_new(s, json_incref(nl), NULL, NULL);
	if (!rc && out)
		rc = read_someone(s, &someone, out);
out:
	json_decref(leute);
	json_decref(nl);
	if (rc) {
		lama_store_rollback(st);
		return rc;
	}
	return lama_store_commit(st);
}

int lama_leute_contacts(lama_session *s, int (*fn)(void *ctx, const struct lama_person *p),
			void *ctx)
{
	return lama_leute_contacts_skip(s, fn, ctx, NULL);
}

int lama_leute_contacts_skip(lama_session *s, int (*fn)(void *ctx, const struct lama_person *p),
			     void *ctx, size_t *skipped)
{
	struct people all;
	int rc;

	if ((rc = load_people(s, 0, &all, skipped)))
		return rc;
	for (size_t i = 0; i < all.n && !rc; i++)
		rc = fn(ctx, &all.p[i]);
	lama_free(all.p);
	return rc;
}

int lama_leute_get(lama_session *s, const lama_hash *person, struct lama_person *out)
{
	char hex[LAMA_HASH_HEX + 1];
	json_t *leute = NULL, *other = NULL;
	int rc;

	if (lama_hash_eq(person, lama_session_person(s)))
		return lama_leute_me(s, out);
	rc = leute_current(s, &leute);
	if (!rc)
		rc = leute_other(leute, &other);
	if (!rc)
		rc = contact_of(s, other, person, out);
	json_decref(leute);
	if (rc)
		return rc < 0 ? rc : 0;
	/* only seen: the Person is all there is */
	memset(out, 0, sizeof(*out));
	rc = read_person(s, person, out);
	if (rc == LAMA_ENOTFOUND) {
		lama_hash_hex(person, hex);
		rc = lama_error(LAMA_ENOTFOUND, "no person %s", hex);
	}
	if (!rc)
		rc = read_assistant(s, person, out);
	return rc;
}

static int is_hex_prefix(const char *q, size_t n)
{
	if (n < 4 || n > LAMA_HASH_HEX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!strchr("0123456789abcdefABCDEF", q[i]))
			return 0;
	return 1;
}

int lama_leute_find(lama_session *s, const char *query, struct lama_person *out)
{
	struct lama_buf msg = LAMA_BUF_INIT(4096);
	struct people all;
	size_t qn = query ? strlen(query) : 0, nmatch = 0, first = 0, skipped = 0;
	int hexq = is_hex_prefix(query ? query : "", qn), rc;

	if (!qn)
		return lama_error(LAMA_EINVAL, "whom? (an empty query)");
	if (qn > QUERY_MAX)
		return lama_error(LAMA_EINVAL, "the query is longer than %d bytes", QUERY_MAX);
	if ((rc = load_people(s, 1, &all, &skipped)))
		return rc;
	for (size_t i = 0; i < all.n && !rc; i++) {
		struct lama_person *p = &all.p[i];
		char hex[LAMA_HASH_HEX + 1];
		int match = !strcasecmp(p->email, query) || !strcasecmp(p->name, query);

		lama_hash_hex(&p->person, hex);
		if (hexq && !strncasecmp(hex, query, qn))
			match = 1;
		if (!match)
			continue;
		if (nmatch++ == 0)
			first = i;
		else if (nmatch <= 6)
			rc = lama_buf_addf(&msg, ", %.40s (%.*s)", p->name, SHORT_HEX, hex);
		else if (nmatch == 7)
			rc = lama_buf_addstr(&msg, ", ...");
	}
	if (rc) {
		/* only the message could not be built */
	} else if (nmatch == 0) {
		if (skipped)
			rc = lama_error(LAMA_ENOTFOUND,
					"nobody matches '%.80s' (%zu of the contacts could not be read)", query,
					skipped);
		else
			rc = lama_error(LAMA_ENOTFOUND, "nobody matches '%.80s'", query);
	} else if (nmatch == 1) {
		*out = all.p[first];
	} else {
		char hex[LAMA_HASH_HEX + 1];

		lama_hash_hex(&all.p[first].person, hex);
		rc = lama_error(LAMA_EINVAL, "'%.80s' matches %zu people: %.40s (%.*s)%s", query, nmatch,
				all.p[first].name, SHORT_HEX, hex, msg.data ? msg.data : "");
	}
	lama_buf_release(&msg);
	lama_free(all.p);
	return rc;
}

/* The user's main Profile ID and its current object (*profile a new
 * reference). */
static int my_profile(lama_session *s, lama_hash *id, json_t **profile)
{
	json_t *leute = NULL, *so = NULL;
	lama_hash me, person;
	int rc;

	*profile = NULL;
	rc = leute_current(s, &leute);
	if (!rc)
		rc = ref_field(leute, "me", "Leute", &me);
	if (!rc)
		rc = current_typed(s, &me, "Someone", &so);
	if (!rc)
		rc = ref_field(so, "mainProfile", "Someone", id);
	if (!rc)
		rc = current_typed(s, id, "Profile", profile);
	if (!rc)
		rc = ref_field(*profile, "personId", "Profile", &person);
	if (!rc && !lama_hash_eq(&person, lama_session_person(s)))
		rc = lama_error(LAMA_ECORRUPT, "the user's main profile is another person's");
	if (rc) {
		json_decref(*profile);
		*profile = NULL;
	}
	json_decref(leute);
	json_decref(so);
	return rc;
}

int lama_leute_set_profile(lama_session *s, const char *name, const char *status,
			   const lama_hash *avatar)
{
	lama_store *st = lama_session_store(s);
	json_t *profile = NULL, *np = NULL, *bag, *kept = NULL, *it, *person = NULL;
	lama_hash id, h;
	size_t i;
	int rc;

	if (name && (rc = check_text(name, LAMA_LEUTE_NAME_MAX, 0, "name")))
		return rc;
	if (status && (rc = check_text(status, LAMA_LEUTE_STATUS_MAX, 1, "status")))
		return rc;
	if (avatar) {
		rc = lama_store_has(st, avatar);
		if (rc < 0)
			return rc;
		if (rc == 0) {
			char hex[LAMA_HASH_HEX + 1];

			lama_hash_hex(avatar, hex);
			return lama_error(LAMA_ENOTFOUND, "no BLOB %s", hex);
		}
	}
	if (!name && !status && !avatar)
		return 0;
	if ((rc = lama_store_begin(st)))
		return rc;
	if ((rc = my_profile(s, &id, &profile)))
		goto out;
	bag = json_object_get(profile, "personDescription");
	if (!json_is_array(bag) || json_array_size(bag) > LAMA_LEUTE_DESCRIPTIONS_MAX) {
		rc = lama_error(LAMA_ECORRUPT, "the user's profile has a bad description bag");
		goto out;
	}
	if (!(kept = json_array())) {
		rc = oom();
		goto out;
	}
	/* drop every description of a type being set */
	json_array_foreach(bag, i, it) {
		const char *hex = json_string_value(it), *type;
		json_t *o = NULL;
		int drop = 0;

		if (!hex || lama_hash_parse(hex, strlen(hex), &h)) {
			rc = lama_error(LAMA_ECORRUPT, "Profile.personDescription holds a non-reference");
			goto out;
		}
		rc = lama_archive_get(lama_session_archive(s), &h, &o);
		if (rc == LAMA_ENOTFOUND) {
			lama_error_clear(); /* not here yet: keep it */
			rc = 0;
		} else if (rc) {
			goto out;
		} else {
			type = json_string_value(json_object_get(o, "$type$"));
			type = type ? type : "";
			drop = (name && !strcmp(type, "PersonName")) ||
			       (status && !strcmp(type, "PersonStatus")) ||
			       (avatar && !strcmp(type, "ProfileImage"));
			json_decref(o);
		}
		if (!drop && !bag_has(kept, hex) && json_array_append(kept, it)) {
			rc = oom();
			goto out;
		}
	}
	if (name && !(rc = put_text_desc(s, "PersonName", "name", name, &h)))
		rc = bag_add(kept, &h);
	if (!rc && status && *status) {
		rc = put_new(s, json_pack("{s:s, s:s, s:f, s:s}", "$type$", "PersonStatus", "value", status,
					  "timestamp", lama_archive_now(), "location", ""),
			     &h, NULL);
		if (!rc)
			rc = bag_add(kept, &h);
	}
	if (!rc && avatar) {
		char hex[LAMA_HASH_HEX + 1];

		lama_hash_hex(avatar, hex);
		rc = put_new(s, json_pack("{s:s, s:s}", "$type$", "ProfileImage", "image", hex), &h, NULL);
		if (!rc)
			rc = bag_add(kept, &h);
	}
	if (!rc)
		rc = bag_sorted(kept);
	if (rc)
		goto out;
	np = json_deep_copy(profile);
	if (!np || json_object_set(np, "personDescription", kept)) {
		rc = oom();
		goto out;
	}
	rc = put_new(s, json_incref(np), NULL, NULL);
	/* peers that know only the Person see the new name too */
	if (!rc && name && !(rc = current_typed(s, lama_session_person(s), "Person", &person))) {
		json_t *p2 = json_deep_copy(person);

		if (!p2 || json_object_set_new(p2, "name", json_string(name)))
			rc = oom();
		if (!rc)
			rc = put_new(s, json_incref(p2), NULL, NULL);
		json_decref(p2);
	}
out:
	json_decref(profile);
	json_decref(np);
	json_decref(kept);
	json_decref(person);
	if (rc) {
		lama_store_rollback(st);
		return rc;
	}
	return lama_store_commit(st);
}

/* ---- JSON, as the CLI's --json and the IPC protocol show a person ---- */

static json_t *json_hash_or_null(const lama_hash *h)
{
	static const lama_hash zero;
	char hex[LAMA_HASH_HEX + 1];

	if (lama_hash_eq(h, &zero))
		return json_null();
	lama_hash_hex(h, hex);
	return json_string(hex);
}

static json_t *json_key(const uint8_t k[32])
{
	char hex[65];

	lama_hex_encode(k, 32, hex);
	return json_string(hex);
}

json_t *lama_person_json(const struct lama_person *p)
{
	json_t *keys = json_array(), *o;

	for (size_t i = 0; keys && i < p->nkeys && i < 4; i++)
		json_array_append_new(keys, json_key(p->sign_key[i]));
	o = json_pack("{s:o, s:o, s:o, s:s, s:s, s:s?, s:o, s:b, s:b, s:s?, s:o, s:o}", "person",
		      json_hash_or_null(&p->person), "someone", json_hash_or_null(&p->someone), "profile",
		      json_hash_or_null(&p->profile), "name", p->name, "email", p->email, "status",
		      *p->status ? p->status : NULL, "avatar",
		      p->has_avatar ? json_hash_or_null(&p->avatar) : json_null(), "me", p->is_me, "ai",
		      p->is_ai, "model", *p->model ? p->model : NULL, "signKeys",
		      keys ? keys : json_null(), "encryptionKey",
		      p->has_enc_key ? json_key(p->enc_key) : json_null());
	return o;
}
