/* channel.h: ONE's ChannelManager: append-only logs, one per (channel id,
 * owner), that merge from any number of devices in any order to the same
 * result.
 *
 * A channel is the versioned ChannelInfo {id, owner, head}; `head` names
 * the newest LinkedListEntry {data: CreationTime, previous}, and each
 * CreationTime {timestamp, data} names the object appended. The list is
 * kept sorted by (timestamp, CreationTime hash), newest at the head, so
 * the list of a given set of entries is one chain of objects with one
 * hash: devices that know the same entries have the same head. Concurrent
 * ChannelInfo versions (other devices of the owner, sync) merge by the
 * linked-list rule, registered on the archive by lama_channel_init:
 * walk both lists newest-first to their common tail and rebuild the
 * entries above it, so a merge costs what the lists differ by, not their
 * length. The same CreationTime appended twice is one entry.
 *
 * A local, sealed position index (store kv rows) numbers the entries of
 * the current head from 0 (the oldest), so reading from any point in
 * either direction, seeking by time and counting never walk the chain.
 * It is brought up to date lazily when the head changed under it (a merge
 * or versions from sync). Nothing here checks who wrote a version: sync
 * must accept versions of (id, owner P) only from P's own instances.
 * Design: docs/channels.md. */
#ifndef LAMA_CHANNEL_H
#define LAMA_CHANNEL_H

#include <stddef.h>
#include <stdint.h>

#include "archive/archive.h"

/* Registers the ChannelInfo merge rule on the archive. Call once after
 * lama_archive_new, before any channel is merged or read. */
int lama_channel_init(lama_archive *a);

/* The ChannelInfo ID hash of (id, owner); owner NULL for a channel without
 * owner. id is 1..LAMA_CHANNEL_ID_MAX bytes of UTF-8. */
#define LAMA_CHANNEL_ID_MAX 256
int lama_channel_idhash(lama_archive *a, const char *id, const lama_hash *owner,
			lama_hash *chan);

/* Creates the channel (a first ChannelInfo version without head) unless it
 * exists; *chan (may be NULL) is its ID hash. */
int lama_channel_create(lama_archive *a, const char *id, const lama_hash *owner,
			lama_hash *chan);

/* One entry of a channel. */
struct lama_chan_entry {
	uint64_t pos;     /* 0 is the oldest entry of the current head */
	double time;      /* CreationTime.timestamp, ms since the epoch */
	lama_hash ct;     /* the CreationTime: names the entry on every device */
	lama_hash data;   /* the object appended */
	lama_hash entry;  /* the LinkedListEntry */
};

/* Appends n stored objects (their hashes) to the channel, with times[i]
 * (ms, finite, within JavaScript's Date range; NULL: now, each item 1 ms
 * after the one before if the clock has not moved, so that later items
 * are never before earlier ones) and writes one new ChannelInfo version
 * for all of them, in one transaction: when it returns 0 all n are
 * durable, on error none is. An entry older than the head is inserted in
 * order; an entry (CreationTime) the channel has already is not added
 * again. out (may be NULL) gets each appended entry (positions as of
 * after the append). LAMA_ENOTFOUND for an unknown channel or object. */
int lama_channel_append(lama_archive *a, const lama_hash *chan, const lama_hash *data,
			const double *times, size_t n, struct lama_chan_entry *out);

/* Number of entries, and the head entry's LinkedListEntry hash (*head may
 * be NULL; all zero for an empty channel). Merges concurrent heads first. */
int lama_channel_count(lama_archive *a, const lama_hash *chan, uint64_t *count,
		       lama_hash *head);

/* Reads up to max entries starting at position `from`, going to older
 * entries (dir < 0: from, from-1, ...) or newer ones (dir > 0). *got is
 * how many were written to out (0 past either end). */
int lama_channel_read(lama_archive *a, const lama_hash *chan, uint64_t from, int dir,
		      struct lama_chan_entry *out, size_t max, size_t *got);

/* The position of the newest entry ordered at or before (time, ct) (ct
 * NULL: any entry at that time), by binary search over the index; *pos is
 * UINT64_MAX when every entry is after it. */
int lama_channel_seek(lama_archive *a, const lama_hash *chan, double time,
		      const lama_hash *ct, uint64_t *pos);

/* Finds the entry whose CreationTime is ct; LAMA_ENOTFOUND if the channel
 * has none. */
int lama_channel_find(lama_archive *a, const lama_hash *chan, const lama_hash *ct,
		      struct lama_chan_entry *e);

#endif
