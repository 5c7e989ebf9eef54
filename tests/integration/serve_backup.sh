#!/bin/sh
# Backup and restore over IPC (action:backup, action:restore): the work
# runs off the loop, and a restored user is the same on another folder.
. "$(dirname "$0")/lib.sh"
here=$(cd "$(dirname "$0")" && pwd)
export PYTHONPATH="$here"

lama register --name alice >/dev/null
lama contacts add --name Bob --email bob@example.org >/dev/null
lama topic new --with Bob >/dev/null
for i in 1 2 3; do lama send Bob "before the backup $i" >/dev/null; done

wait_sock() {
	for _ in $(seq 1 200); do [ -S "$1" ] && return 0; sleep 0.05; done
	fail "no socket $1"
}
"$LAMA_BIN" serve >"$T/a.out" 2>"$T/a.err" &
a=$!
other="$T/other"
LAMA_HOME="$other" "$LAMA_BIN" serve --locked >"$T/b.out" 2>"$T/b.err" &
b=$!
wait_sock "$LAMA_HOME/lama.sock"
wait_sock "$other/lama.sock"
python3 "$here/serve_backup.py" "$LAMA_HOME/lama.sock" "$other/lama.sock" "$T/alice.bak" "$LAMA_PASSWORD" ||
	fail "backup and restore over IPC"
kill -TERM "$a" "$b"
wait "$a" || fail "server a did not exit 0: $(cat "$T/a.err")"
wait "$b" || fail "server b did not exit 0: $(cat "$T/b.err")"
LAMA_HOME="$other" lama check >/dev/null || fail "the restored archive does not check"
echo "serve_backup: ok"
