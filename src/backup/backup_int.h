/* backup_int.h: the backup module's insides, for its tests only. */
#ifndef LAMA_BACKUP_INT_H
#define LAMA_BACKUP_INT_H

#include <stddef.h>

#include "crypto/crypto.h"

/* Header layout (docs/backup.md). */
#define LAMA_BACKUP_MAGIC "LAMABKUP"
#define LAMA_BACKUP_VERSION 1
#define LAMA_BACKUP_HEADER_BYTES 72
#define LAMA_BACKUP_ABYTES 17 /* secretstream: tag byte + MAC */
/* Largest small record (the meta record, the account record). */
#define LAMA_BACKUP_SMALL_MAX 4096

/* Writes a backup file at path whose decrypted content is exactly
 * plain[0..n) (a record stream made by hand), encrypted under pw with
 * Argon2id cost kdf: so tests can make a backup that the right password
 * opens but that breaks the record rules (a bad name, an oversized record,
 * a missing end). Same file handling as lama_backup_write. */
int lama_backup__write_raw(const char *path, const char *pw, size_t pwlen,
			   const struct lama_kdf_params *kdf, const void *plain, size_t n);

#endif
