/* chat.h: conversations (ONE's topics) over channels.
 *
 * A topic has an id, a title, its participants and one channel per
 * participant: ChannelInfo (topic id, participant), so every person only
 * ever writes their own log and the logs never conflict. ONE's Topic
 * object {name, id, channel} names the topic (its channel is the
 * creator's); lama keeps the participants in a Group "topic:<id>" and
 * the topics of the user in ONE's TopicAppRegistry. A one-to-one topic's
 * id is the two person IDs, sorted, joined by "<->" (ONE's convention), so
 * both sides arrive at the same topic; a group topic's id is random.
 *
 * A message is a ChatMessage {text, attachments: BlobDescriptors,
 * sender} appended to the sender's channel (through a CreationTime,
 * which also names the message: its hash is the message id). A reply is
 * a LamaChatReply {message, replyTo}; edits and deletions are
 * LamaChatEdit entries appended later, never rewriting history; reading
 * applies the newest edit by the message's own sender. Read positions
 * are versioned LamaReadPosition objects per (topic, person), merged by
 * the larger position. Design: docs/chat.md. */
#ifndef LAMA_CHAT_H
#define LAMA_CHAT_H

#include <stddef.h>
#include <stdint.h>

#include "account/account.h"

#define LAMA_TOPIC_ID_MAX 200       /* bytes of a topic id */
#define LAMA_TOPIC_TITLE_MAX 256    /* bytes of a title */
#define LAMA_TOPIC_PEOPLE_MAX 256   /* participants of a topic */
#define LAMA_CHAT_TEXT_MAX (256u << 10) /* bytes of a message's text */
#define LAMA_CHAT_ATTACH_MAX 32     /* attachments of a message */
#define LAMA_CHAT_NAME_MAX 255      /* bytes of an attachment's name or type */

/* Registers the merge rules of channels, read positions and topics on
 * the session's archive (lama_channel_init included). Call after every
 * login, after lama_leute_init. */
int lama_chat_init(lama_session *s);

/* One topic as the user sees it. */
struct lama_topic {
	char id[LAMA_TOPIC_ID_MAX + 1];
	/* 12 hex digits of the SHA-256 of the id: a short name for people
	 * (a one-to-one id starts with a participant's hash, the same in
	 * every topic of theirs) */
	char handle[13];
	char title[LAMA_TOPIC_TITLE_MAX + 1];
	lama_hash topic;         /* the Topic object */
	lama_hash group;         /* the participants' Group ID */
	size_t npeople;
	lama_hash *people;       /* participants (owned; lama_topic_release) */
	int is_ai;               /* some participant is an AI assistant */
	uint64_t entries;        /* entries in all channels (messages and edits) */
	uint64_t unread;         /* entries of others after the user's read position */
	double last_time;        /* newest entry's time (ms), 0 when empty */
};
void lama_topic_release(struct lama_topic *t);

/* Creates a topic with the user and `with` (n >= 1, not the user). With
 * one other person it is their one-to-one topic: created once, and the
 * existing one is returned (is_new 0) when asked again. title NULL: the
 * other's name, or "Group". *out (may be NULL) to release. */
int lama_chat_create(lama_session *s, const char *title, const lama_hash *with, size_t n,
		     struct lama_topic *out, int *is_new);

/* Calls fn for each topic, newest activity first; the topic is borrowed
 * for the call. A non-zero return stops and is passed back. */
int lama_chat_topics(lama_session *s, int (*fn)(void *ctx, const struct lama_topic *t),
		     void *ctx);

/* Finds a topic by id, by a prefix (at least 4 characters) of its id or
 * of its handle, or by its exact title. LAMA_ENOTFOUND, or LAMA_EINVAL naming candidates if
 * several match. *out to release. */
int lama_chat_find(lama_session *s, const char *query, struct lama_topic *out);

/* A file to attach, already stored as a BLOB. */
struct lama_attachment {
	lama_hash blob;
	const char *name;  /* file name, 1..LAMA_CHAT_NAME_MAX bytes */
	const char *type;  /* MIME type, "" if unknown */
	uint64_t size;
	double mtime;      /* last modified, ms */
};

/* What to send. */
struct lama_outgoing {
	const char *text;                      /* UTF-8, may be "" with attachments */
	const struct lama_attachment *attach;
	size_t nattach;
	const lama_hash *reply_to;             /* a message id, or NULL */
};

/* Sends n messages to a topic as the user, in one transaction: when it
 * returns 0 all are durable, otherwise none is. ids (may be NULL) gets
 * each message's id. */
int lama_chat_send(lama_session *s, const struct lama_topic *t, const struct lama_outgoing *m,
		   size_t n, lama_hash *ids);

/* Replaces the text of the user's own message (text NULL: deletes it). A
 * new entry; the original stays in the log. */
int lama_chat_edit(lama_session *s, const struct lama_topic *t, const lama_hash *msg,
		   const char *text);

/* One message as read. Pointers are valid during the callback only. */
struct lama_message {
	lama_hash id;            /* its CreationTime: the message id and cursor */
	double time;             /* ms since the epoch */
	lama_hash sender;        /* Person ID */
	const char *text;        /* after edits; "" when deleted */
	size_t text_len;
	int edited, deleted;
	double edit_time;
	int has_reply_to;
	lama_hash reply_to;
	size_t nattach;
	const struct lama_attachment *attach;
};

/* Reads up to limit messages, newest first, starting just before the
 * message `before` (NULL: from the newest). *more (may be NULL) says
 * whether older messages remain (after looking at most a few hundred
 * entries further). The channels of all participants are merged in
 * (time, id) order without reading them whole, each paged by key, so a
 * log that grows meanwhile neither hides nor repeats a message. Not
 * shown: a message in a participant's log that claims another sender,
 * entries whose objects are missing or malformed, a participant's log
 * that is broken as a whole; at most 4096 such entries are passed over
 * per call (then *more is 1). A non-zero return of fn stops the read and
 * is passed back (*more is then not computed). */
int lama_chat_messages(lama_session *s, const struct lama_topic *t, const lama_hash *before,
		       size_t limit, int (*fn)(void *ctx, const struct lama_message *m),
		       void *ctx, int *more);

/* Finds a message of the topic by its id or a prefix of it (at least 8
 * hex digits), looking through at most the newest `scan` messages for a
 * prefix. LAMA_ENOTFOUND for a message of another topic. */
int lama_chat_find_message(lama_session *s, const struct lama_topic *t, const char *prefix,
			   size_t scan, lama_hash *id);

/* Marks the topic read up to message msg (NULL: the newest entry, edits
 * included, so nothing already there stays unread). LAMA_ENOTFOUND for
 * a message of another topic. */
int lama_chat_mark_read(lama_session *s, const struct lama_topic *t, const lama_hash *msg);

/* JSON views, the shapes `--json` and the IPC protocol use (new
 * references; NULL when out of memory). A topic: {id, handle, title,
 * topic, group, participants, ai, entries, unread, last_time}. A message:
 * {id, time, sender, sender_name, text, edited, deleted, reply_to?,
 * attachments: [{name, type, size, blob}]}. */
json_t *lama_topic_json(const struct lama_topic *t);
json_t *lama_message_json(const struct lama_message *m, const char *sender_name);

#endif
