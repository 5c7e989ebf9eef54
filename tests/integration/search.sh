#!/bin/sh
# lama search through the CLI (no server): the index made on first use,
# words, phrases, exclusions, OR, order by relevance, a topic filter, a
# message sent a moment ago, edits and deletions followed, --json with
# highlights, hostile queries as one-line errors, and nothing readable in
# search.db, its WAL or shared memory. Then through lama serve and its
# index worker (search_serve.py): a build in the background while the
# server answers, partial results meanwhile, exact ones after, a message
# sent a moment ago, the worker killed (also mid-build), logout.
. "$(dirname "$0")/lib.sh"
export LAMA_NO_SERVER=1

json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

lama register --name alice >/dev/null
lama contacts add --name Bob >/dev/null
lama contacts add --name Carol >/dev/null
tb=$(lama topic new --with Bob)
tc=$(lama topic new --with Carol)
W=quokkazanzibar$(date +%s)
m1=$(lama send "$tb" "the $W visits the harbour once")
m2=$(lama send "$tb" "$W $W $W: the $W is everywhere")
m3=$(lama send "$tc" "Crème brûlée at the harbour, said Carol")
m4=$(lama send "$tc" "nothing to see here")

# first use builds the index; the one with the word four times ranks first
lama search "$W" --json >"$T/r"
[ "$(json 'len(d["results"])' <"$T/r")" -eq 2 ] || fail "two results expected: $(cat "$T/r")"
[ "$(json 'd["results"][0]["id"]' <"$T/r")" = "$m2" ] || fail "bm25 order: $(cat "$T/r")"
[ "$(json 'd["results"][1]["id"]' <"$T/r")" = "$m1" ] || fail "bm25 order (second)"
[ "$(json 'd["results"][0]["topic"]' <"$T/r")" = "$tb" ] || fail "topic of a result"
[ "$(json 'd["results"][0]["sender_name"]' <"$T/r")" = "alice" ] || fail "sender name"
python3 - "$T/r" "$W" <<'PY' || fail "highlights do not point at the word"
import json, sys
d = json.load(open(sys.argv[1]))
for r in d["results"]:
    s = r["snippet"].encode()
    assert r["highlights"], r
    for off, n in r["highlights"]:
        assert s[off:off + n].decode() == sys.argv[2], (s, off, n)
PY
[ -f "$LAMA_HOME"/users/*/search.db ] || fail "no search.db in the user's folder"

# folding, phrases, exclusions, OR, a topic filter
[ "$(lama search 'CREME brulee' --json | json 'd["results"][0]["id"]')" = "$m3" ] || fail "case and accents"
[ "$(lama search '"brulee at the harbour"' --json | json 'len(d["results"])')" -eq 1 ] || fail "phrase"
[ "$(lama search '"harbour brulee"' --json | json 'len(d["results"])')" -eq 0 ] || fail "phrase order"
[ "$(lama search "harbour -$W" --json | json 'd["results"][0]["id"]')" = "$m3" ] || fail "exclusion"
[ "$(lama search "nothing OR brulee" --json | json 'len(d["results"])')" -eq 2 ] || fail "OR"
[ "$(lama search harbour --topic "$tc" --json | json 'len(d["results"])')" -eq 1 ] || fail "--topic"
[ "$(lama search harbour --limit 1 --json | json 'len(d["results"])')" -eq 1 ] || fail "--limit"
# the text for people: the snippet and the short id
lama search brulee >"$T/out"
grep -q "Crème brûlée at the harbour" "$T/out" || fail "text output: $(cat "$T/out")"
grep -q "$(echo "$m3" | cut -c1-12)" "$T/out" || fail "text output shows no id"

# sent a moment ago, edited, deleted: the next search follows
m5=$(lama send "$tc" "a fresh marmalade message")
[ "$(lama search marmalade --json | json 'd["results"][0]["id"]')" = "$m5" ] || fail "a new message is not found"
lama edit "$tc" "$m5" "a fresh jam message"
[ "$(lama search marmalade --json | json 'len(d["results"])')" -eq 0 ] || fail "an edit left the old words"
[ "$(lama search jam --json | json 'd["results"][0]["id"]')" = "$m5" ] || fail "an edit's words are not found"
lama delete "$tc" "$m5"
[ "$(lama search jam --json | json 'len(d["results"])')" -eq 0 ] || fail "a deleted message is found"
# --rebuild makes the same from the archive
[ "$(lama search "$W" --rebuild --json | json 'len(d["results"])')" -eq 2 ] || fail "after --rebuild"
# a lost index is made again
rm -f "$LAMA_HOME"/users/*/search.db*
[ "$(lama search "$W" --json | json 'len(d["results"])')" -eq 2 ] || fail "after removing the index"

# hostile queries: one clear line, never an SQL message
for q in '"open' 'OR' "$W OR" '-only' '***' "$(python3 -c 'print("a" * 2000)')" \
	"$(printf 'bad\377utf8')"; do
	expect_fail lama search "$q"
	case "$ERR" in
	*fts5* | *SQL* | *syntax*) fail "an SQL error leaked for [$q]: $ERR" ;;
	"lama: search: "*) ;;
	*) fail "unclear error for [$q]: $ERR" ;;
	esac
done
for q in 'NEAR(a b)' 'body: harbour' '{body}: x' 'x*' '^harbour' "harbour\")) OR ((\"x" \
	"'; DROP TABLE docs; --"; do
	lama search "$q" --json >/dev/null || fail "[$q] should run literally"
done
[ "$(lama search 'body: harbour' --json | json 'len(d["results"])')" -eq 0 ] || fail "a column filter worked"
expect_fail lama search x --limit 0
expect_fail lama search x --topic nosuchtopic

# at rest: no 12-byte piece of a message, no word, no SHA-256 of a word and
# no message id in the index files (WAL and shared memory included)
lama search harbour >/dev/null
printf '%s\n' "the $W visits the harbour once" "Crème brûlée at the harbour, said Carol" \
	"nothing to see here" >"$T/texts"
python3 - "$T/texts" "$W" "$m1 $m2 $m3 $m4" "$LAMA_HOME"/users/*/search.db* <<'PY' || fail "plaintext at rest in the index"
import hashlib, sys
texts = open(sys.argv[1], "rb").read().split(b"\n")
words = [sys.argv[2], "harbour", "brulee", "brûlée", "marmalade", "carol", "everywhere"]
ids = sys.argv[3].split()
files = sys.argv[4:]
assert files, files  # the WAL is gone once closed: test_search looks at a live one
needles = {}
for w in words:
    for v in (w, w.upper(), w.capitalize()):
        needles["word " + v] = v.encode()
    needles["sha256 hex of " + w] = hashlib.sha256(w.encode()).hexdigest().encode()
    needles["sha256 of " + w] = hashlib.sha256(w.encode()).digest()
for i in ids:
    needles["id hex " + i[:12]] = i.encode()
    needles["id " + i[:12]] = bytes.fromhex(i)
windows = set()
for t in texts:
    for i in range(0, len(t) - 11):
        windows.add(t[i:i + 12])
bad = []
for p in files:
    data = open(p, "rb").read()
    for name, n in needles.items():
        if n in data:
            bad.append("%s in %s" % (name, p))
    for i in range(0, len(data) - 11):
        if data[i:i + 12] in windows:
            bad.append("a piece of a message in %s at %d" % (p, i))
            break
if bad:
    print("\n".join(bad))
    sys.exit(1)
PY
for f in "$LAMA_HOME"/users/*/search.db*; do
	[ "$(stat -c %a "$f")" = 600 ] || fail "$f is not 0600"
done

# with lama serve running: through query:search once the server has it,
# else (a server from before it) the same search here, alongside the server
unset LAMA_NO_SERVER
"$LAMA_BIN" serve >"$T/serve.out" 2>"$T/serve.err" &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -rf "$T"' EXIT
for _ in $(seq 1 200); do [ -S "$LAMA_HOME/lama.sock" ] && break; sleep 0.05; done
[ -S "$LAMA_HOME/lama.sock" ] || fail "lama serve did not start: $(cat "$T/serve.err")"
m6=$(lama send "$tc" "while serving: a wombat")
[ "$(lama search wombat --json | json 'd["results"][0]["id"]')" = "$m6" ] ||
	fail "with lama serve running, a message sent a moment ago is not found"
expect_fail lama search '"open'
# written beside the server, straight into the archive (as big attachments
# and --jsonl are): the server notices the foreign commit at the next
# query and syncs; a query answers "partial" until it is in
m7=$(LAMA_NO_SERVER=1 lama send "$tc" "written beside the server: a quokka")
found=
for _ in $(seq 1 100); do
	if [ "$(lama search quokka --json 2>/dev/null | json 'd["results"][0]["id"] if d["results"] else ""')" = "$m7" ]; then
		found=1
		break
	fi
	sleep 0.1
done
[ -n "$found" ] || fail "a message written beside the server is never found through it"
kill "$pid"
wait "$pid" 2>/dev/null || true

# lama serve's index worker (search_serve.py): a fresh folder of N
# messages, never indexed, so the server builds the index when it starts
export LAMA_HOME="$T/serve"
N=10000
lama register --name alice >/dev/null
lama contacts add --name Bob >/dev/null
lama contacts add --name Carol >/dev/null
lama topic new --with Bob >/dev/null
lama topic new --with Carol >/dev/null
python3 -c "
import sys
for i in range(int(sys.argv[1])): print('message number %d about zebra%d and apples' % (i, i % 50))" "$N" |
	lama send Bob --lines >/dev/null
printf '%s\n' "one pavlova" "pavlova pavlova pavlova for Carol" "pavlova pavlova and cream" |
	lama send Carol --lines >/dev/null
"$LAMA_BIN" serve >"$T/serve.out" 2>"$T/serve.err" &
pid=$!
PYTHONPATH="$(dirname "$0")" python3 "$(dirname "$0")/search_serve.py" "$LAMA_HOME/lama.sock" "$pid" "$N" ||
	fail "search through lama serve's index worker: $(cat "$T/serve.err")"
kill "$pid"
wait "$pid" || fail "lama serve did not exit 0: $(cat "$T/serve.err")"
echo ok
