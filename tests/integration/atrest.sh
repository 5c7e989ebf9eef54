#!/bin/sh
# At rest: after storing a known message and a known file, both as raw
# objects and through a conversation (a contact, a topic, a message with
# the file attached), no byte sequence of either (no 12-byte window), nor
# its SHA-256 (raw or hex), nor the contact's name, is anywhere under the
# data folder: database, WAL, shared memory, account files.
. "$(dirname "$0")/lib.sh"
MSG="Meet me at the old lighthouse at seven, bring the blue notebook. $(date +%s%N)"
python3 -c "
import random
random.seed(7)
open('$T/file', 'wb').write(bytes(random.getrandbits(8) for _ in range(300000)))
"
lama register --name atrest >/dev/null
printf '{"text": "%s", "sender": "0f69db43a925bc5509c37143ffe18e9c11895ad6ec7c50386bcd4c87100b7152"}' "$MSG" |
	lama object put ChatMessage >"$T/h1"
lama blob put "$T/file" >"$T/h2"
printf '%s' "$MSG" >"$T/msg"
# the same words as a chat message to a contact, the file attached
lama contacts add --name "Bartholomew Quillfeather" >/dev/null
lama topic new --with "Bartholomew Quillfeather" --title "Lighthouse plans" >/dev/null
lama send "Lighthouse plans" "$MSG" --attach "$T/file" >/dev/null
printf 'Bartholomew Quillfeather' >"$T/name"

scan() {
	python3 - "$LAMA_HOME" "$T/msg" "$T/file" "$(cat "$T/h1")" "$(cat "$T/h2")" "$T/name" <<'PY'
import hashlib, os, sys
home, msgp, filep, h1, h2, namep = sys.argv[1:]
msg = open(msgp, "rb").read()
name_bytes = open(namep, "rb").read()
blob = open(filep, "rb").read()
needles = {"message sha256 hex": hashlib.sha256(msg).hexdigest().encode(),
           "file sha256 hex": h2.encode(), "file sha256 raw": bytes.fromhex(h2),
           "object hash hex": h1.encode(), "object hash raw": bytes.fromhex(h1),
           "message sha256 raw": hashlib.sha256(msg).digest()}
W = 12
windows = {}
for name, data in (("message", msg), ("file", blob), ("contact name", name_bytes)):
    for i in range(0, len(data) - W + 1, 97 if name == "file" else 1):
        windows.setdefault(data[i:i + W], name)
bad = []
for root, dirs, files in os.walk(home):
    for f in files:
        p = os.path.join(root, f)
        data = open(p, "rb").read()
        for name, n in needles.items():
            if n in data:
                bad.append("%s in %s" % (name, p))
        for i in range(0, len(data) - W + 1):
            w = data[i:i + W]
            if w in windows:
                bad.append("a 12-byte piece of the %s in %s at %d" % (windows[w], p, i))
                break
if bad:
    print("\n".join(bad))
    sys.exit(1)
PY
}
# while the archive is live (WAL present) and after it is checkpointed
scan || fail "plaintext or hash found at rest (WAL)"
lama check >/dev/null
lama object get "$(cat "$T/h1")" | grep -q "lighthouse" || fail "the message reads back"
lama messages "Lighthouse plans" | grep -q "lighthouse" || fail "the chat message reads back"
python3 -c "
import sqlite3, glob
db = sqlite3.connect(glob.glob('$LAMA_HOME/users/*/archive.db')[0])
db.execute('PRAGMA wal_checkpoint(TRUNCATE)')
db.close()
"
scan || fail "plaintext or hash found at rest (checkpointed)"
echo "atrest: ok"
