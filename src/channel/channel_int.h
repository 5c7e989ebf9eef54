/* channel_int.h: what the channel tests may look at inside the module. */
#ifndef LAMA_CHANNEL_INT_H
#define LAMA_CHANNEL_INT_H

#include <stdint.h>

/* How many list entries (a LinkedListEntry and its CreationTime) this
 * thread has read from the archive so far: tests use it to show that a
 * merge or an index update costs what the lists differ by. */
uint64_t channel__loads(void);

#endif
