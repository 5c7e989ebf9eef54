#!/bin/sh
# lama backup and lama restore with the real binary: a user with
# contacts, topics, messages and an attachment is backed up and restored
# into a fresh folder, where every listing is identical and `lama check`
# passes; the file shows nothing in clear; a wrong password, a flipped
# byte, a cut file and a folder that has the user already are refused
# with one line and a non-zero exit, leaving nothing behind; a backup
# taken while `lama serve` runs and writes is consistent.
. "$(dirname "$0")/lib.sh"

json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# a refused restore into a new folder leaves nothing, not even the folder
no_user() {
	[ ! -e "$1" ] || fail "something was left in $1: $(ls -AR "$1")"
}

lama register --name alice >/dev/null
lama contacts add --name Bob --email bob@example.org >/dev/null
lama contacts add --name Carol >/dev/null
lama topic new --with Bob >/dev/null
lama topic new --title Team --with Bob Carol >/dev/null
head -c 300000 /dev/urandom >"$T/photo.bin"
lama send Bob "hello Bob" >/dev/null
m=$(lama send Bob "the photo" --attach "$T/photo.bin")
lama edit Bob "$m" "the photo, again"
seq 1 60 | sed 's/^/line /' | lama send Team --lines >/dev/null
lama topic read Team

# the help and the command list
lama --help | grep -q "backup" || fail "lama --help does not list backup"
lama backup --help | grep -q "usage: lama \[--user NAME\] backup" || fail "backup --help"
lama restore --help | grep -q "usage: lama \[--home DIR\] restore" || fail "restore --help"

lama backup "$T/a.backup" >"$T/out" || fail "backup failed"
grep -q "backup written to $T/a.backup" "$T/out" || fail "backup output: $(cat "$T/out")"
[ "$(stat -c %a "$T/a.backup")" = 600 ] || fail "backup mode $(stat -c %a "$T/a.backup")"
[ -z "$(ls -A "$T" | grep -e '\.tmp-')" ] || fail "a temporary file was left: $(ls -A "$T")"
ls -A "$LAMA_HOME"/users/*/ | grep -q '^\.backup-' && fail "a snapshot was left in the user's folder"
# nothing in clear: no name, no text, no SQLite header, no hex of the uid
uid=$(ls "$LAMA_HOME/users")
for s in alice Bob Carol "line 1" "SQLite format" "$uid" name_tag; do
	grep -qa "$s" "$T/a.backup" && fail "the backup shows \"$s\" in clear"
done

# restore into a fresh folder
H2="$T/h2"
lama --home "$H2" restore "$T/a.backup" >"$T/out" || fail "restore failed"
grep -q "restored user alice into $H2" "$T/out" || fail "restore output: $(cat "$T/out")"
lama --home "$H2" login >/dev/null || fail "cannot log in to the restored user"
for cmd in "topics --json" "contacts --json" "me --json" "messages Bob --json" \
	"messages Team --limit 100 --json" "topics"; do
	# shellcheck disable=SC2086
	lama $cmd >"$T/one" || fail "lama $cmd"
	# shellcheck disable=SC2086
	lama --home "$H2" $cmd >"$T/two" || fail "lama --home h2 $cmd"
	cmp -s "$T/one" "$T/two" || fail "lama $cmd differs after restore: $(diff "$T/one" "$T/two" | head -5)"
done
[ "$(lama messages Team --limit 100 --json | json 'len(d["messages"])')" -eq 60 ] || fail "60 Team messages"
blob=$(lama messages Bob --json | json 'd["messages"][1]["attachments"][0]["blob"]')
lama --home "$H2" blob get "$blob" -o "$T/photo.back"
cmp -s "$T/photo.bin" "$T/photo.back" || fail "the attachment did not come back intact"
lama --home "$H2" check >"$T/check" || fail "lama check fails on the restored folder: $(cat "$T/check")"
grep -q "^bad 0" "$T/check" || fail "check: $(cat "$T/check")"
# the restored user goes on, apart from the original
lama --home "$H2" send Bob "after the restore" >/dev/null
lama messages Bob | grep -q "after the restore" && fail "a write in the restored folder reached the original"

# --json, and an existing file is replaced only with --force
lama backup --json "$T/b.backup" >"$T/out"
[ "$(json 'd["bytes"]' <"$T/out")" -eq "$(stat -c %s "$T/b.backup")" ] || fail "--json bytes: $(cat "$T/out")"
expect_fail lama backup "$T/b.backup"
echo "$ERR" | grep -q "exists already" || fail "overwrite: $ERR"
lama backup --force "$T/b.backup" >/dev/null || fail "--force"
cmp -s "$T/a.backup" "$T/b.backup" && fail "two backups are byte-identical (no fresh salt?)"

# the same user again into that folder: refused, the folder unchanged
lama --home "$H2" topics --json >"$T/before"
expect_fail lama --home "$H2" restore "$T/a.backup"
echo "$ERR" | grep -q "already exists" || fail "restore over the user: $ERR"
lama --home "$H2" topics --json >"$T/after"
cmp -s "$T/before" "$T/after" || fail "a refused restore changed the folder"

# a wrong password: at backup and at restore
LAMA_PASSWORD=wrong expect_fail lama backup "$T/c.backup"
echo "$ERR" | grep -q "wrong password" || fail "backup with a wrong password: $ERR"
[ ! -e "$T/c.backup" ] || fail "a backup was written with a wrong password"
LAMA_PASSWORD=wrong expect_fail lama --home "$T/h3" restore "$T/a.backup"
echo "$ERR" | grep -q "wrong password" || fail "restore with a wrong password: $ERR"
no_user "$T/h3"

# one flipped byte, at the start, in the middle, at the end; a cut file
size=$(stat -c %s "$T/a.backup")
for pos in 40 100 $((size / 2)) $((size - 1)); do
	python3 - "$T/a.backup" "$T/bad.backup" "$pos" <<'PY'
import sys
d = bytearray(open(sys.argv[1], "rb").read())
d[int(sys.argv[3])] ^= 0x20
open(sys.argv[2], "wb").write(d)
PY
	expect_fail lama --home "$T/h4" restore "$T/bad.backup"
	echo "$ERR" | grep -Eq "damaged|wrong password" || fail "flipped byte $pos: $ERR"
	no_user "$T/h4"
done
head -c $((size - 100)) "$T/a.backup" >"$T/cut.backup"
expect_fail lama --home "$T/h4" restore "$T/cut.backup"
echo "$ERR" | grep -Eq "damaged|cut short" || fail "cut file: $ERR"
no_user "$T/h4"
echo "not a backup" >"$T/junk"
expect_fail lama --home "$T/h4" restore "$T/junk"
echo "$ERR" | grep -q "not a lama backup" || fail "junk: $ERR"
expect_fail lama --home "$T/h4" restore "$T/nonexistent"
no_user "$T/h4"

# while lama serve runs and a client sends messages through it
before=$(lama messages Team --limit 500 --json | json 'len(d["messages"])')
team=$(lama topics --json | json '[x for x in d if x["title"]=="Team"][0]["id"]')
"$LAMA_BIN" serve >"$T/serve.out" 2>"$T/serve.err" &
spid=$!
sock="$LAMA_HOME/lama.sock"
for _ in $(seq 1 200); do
	[ -S "$sock" ] && break
	sleep 0.05
done
[ -S "$sock" ] || fail "no socket: $(cat "$T/serve.err")"
python3 - "$sock" "$team" >"$T/sent" 2>"$T/client.err" <<'PY' &
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.settimeout(30)
f = s.makefile("rb")
n = 0
for i in range(150):
    s.sendall((json.dumps({"id": i, "channel": "action:sendMessage",
                           "payload": {"topic": sys.argv[2], "text": "live %d" % i}}) + "\n").encode())
    while True:
        r = json.loads(f.readline())
        if r.get("id") == i:
            break
    assert "result" in r, r
    n += 1
print(n)
PY
cpid=$!
sleep 0.3
lama backup "$T/live.backup" >/dev/null 2>"$T/err" || fail "backup while lama serve runs: $(cat "$T/err")"
wait $cpid || fail "the client failed: $(cat "$T/client.err")"
[ "$(cat "$T/sent")" -eq 150 ] || fail "the client sent $(cat "$T/sent")"
lama --home "$T/h5" restore "$T/live.backup" >/dev/null || fail "restore of the live backup"
lama --home "$T/h5" check >"$T/check" || fail "check of the live backup: $(cat "$T/check")"
got=$(lama --home "$T/h5" messages Team --limit 500 --json | json 'len(d["messages"])')
[ "$got" -ge "$before" ] && [ "$got" -le $((before + 150)) ] || fail "live backup holds $got Team messages ($before before, 150 sent)"
echo "live backup: $got Team messages ($before before the 150 sent during it)"
# the messages it holds are the oldest ones, in order, with no gap
lama --home "$T/h5" messages Team --limit 500 --json >"$T/live"
python3 - "$T/live" "$before" <<'PY' || fail "the live backup is not one consistent state"
import json, sys
msgs = json.load(open(sys.argv[1]))["messages"]
before = int(sys.argv[2])
texts = [m["text"] for m in msgs[before:]]
assert texts == ["live %d" % i for i in range(len(texts))], texts[:5]
PY
kill -TERM $spid
wait $spid || fail "lama serve did not stop cleanly"

# after it stopped, a new backup matches the folder exactly
lama backup "$T/final.backup" >/dev/null
lama --home "$T/h6" restore "$T/final.backup" >/dev/null
for cmd in "topics --json" "contacts --json" "messages Team --limit 500 --json"; do
	# shellcheck disable=SC2086
	lama $cmd >"$T/one"
	# shellcheck disable=SC2086
	lama --home "$T/h6" $cmd >"$T/two"
	cmp -s "$T/one" "$T/two" || fail "lama $cmd differs after the final restore"
done
echo "backup: all passed"
