#!/bin/sh
# Tampering: one flipped byte in the database file, inside a stored
# object's ciphertext, gives a corruption error on read and in `lama check`;
# so does one flipped byte in a BLOB chunk. Nothing reads back as garbage.
. "$(dirname "$0")/lib.sh"
lama register --name tamper >/dev/null
h=$(echo '{"text": "do not touch", "sender": "0f69db43a925bc5509c37143ffe18e9c11895ad6ec7c50386bcd4c87100b7152"}' |
	lama object put ChatMessage)
head -c 400000 /dev/urandom >"$T/file"
b=$(lama blob put "$T/file")
lama check >/dev/null || fail "check before tampering"
DB=$(ls "$LAMA_HOME"/users/*/archive.db)
cp "$DB" "$T/pristine.db"

# flip_in SQL: finds the first value the query returns inside the db file and
# flips one byte of it in place (the raw file, not through SQLite)
flip_in() {
	python3 - "$DB" "$1" <<'PY'
import sqlite3, sys
path, sql = sys.argv[1], sys.argv[2]
db = sqlite3.connect(path)
db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
vals = [r[0] for r in db.execute(sql)]
db.close()
data = bytearray(open(path, "rb").read())
for v in vals:
    piece = bytes(v[:64])
    at = data.find(piece)
    if at >= 0:
        data[at + 30] ^= 0x01
        open(path, "wb").write(data)
        sys.exit(0)
sys.exit("no value found in the file")
PY
}

# any object row: `lama check` must see it
flip_in "SELECT val FROM obj"
expect_fail lama check
echo "$ERR" | grep -q "damaged" || fail "check message: $ERR"

# the message's own row: try the rows one by one until the message's is hit;
# its read must then fail with a corruption error, never return garbage
for i in $(seq 1 40); do
	cp "$T/pristine.db" "$DB"
	rm -f "$DB-wal" "$DB-shm"
	python3 - "$DB" "$i" <<'PY' || break
import sqlite3, sys
path, i = sys.argv[1], int(sys.argv[2])
db = sqlite3.connect(path)
rows = [r[0] for r in db.execute("SELECT val FROM obj ORDER BY key")]
db.close()
if i > len(rows):
    sys.exit(3)
data = bytearray(open(path, "rb").read())
at = data.find(bytes(rows[i - 1][:64]))
data[at + 40] ^= 0x80
open(path, "wb").write(data)
PY
	if ! lama object get "$h" >"$T/out" 2>"$T/err"; then
		grep -q "tampered or damaged\|does not match\|corrupt\|damaged" "$T/err" || fail "get error: $(cat "$T/err")"
		FOUND=1
		break
	fi
	grep -q "do not touch" "$T/out" || fail "garbage read back"
done
[ "${FOUND:-0}" = 1 ] || fail "flipping the message's row never gave an error"
expect_fail lama check

# a BLOB chunk
cp "$T/pristine.db" "$DB"
rm -f "$DB-wal" "$DB-shm"
flip_in "SELECT val FROM chunk"
expect_fail lama blob get "$b" -o "$T/blobout"
echo "$ERR" | grep -q "BLOB" || fail "blob error: $ERR"
[ -z "$(ls "$T" | grep "^blobout")" ] || fail "a damaged BLOB left an output file"
expect_fail lama check

# pristine again: all is well
cp "$T/pristine.db" "$DB"
rm -f "$DB-wal" "$DB-shm"
lama check >/dev/null || fail "restored database checks"
echo "tamper: ok"
