#!/bin/sh
# A chat with attachments survives SIGKILL of its writers mid-burst: two
# writers (a --jsonl stream with attachments, and one process per message
# with an attachment) are killed at random moments, 12 times; afterwards
# `lama check` passes and every acknowledged message is in the topic with
# its attachment intact.
. "$(dirname "$0")/lib.sh"
ROUNDS=${CRASH_ROUNDS:-12}

lama register --name writer >/dev/null
lama contacts add --name Peer >/dev/null
topic=$(lama topic new --with Peer)
for i in 0 1 2 3 4; do
	head -c $((i * 40000 + 7)) /dev/urandom >"$T/file$i"
done
: >"$T/acked"
round=0
while [ "$round" -lt "$ROUNDS" ]; do
	round=$((round + 1))
	python3 -c "
import itertools, json, sys
for i in itertools.count():
    m = {'text': 'round $round stream %d' % i}
    if i % 2 == 0:
        m['attach'] = ['$T/file%d' % (i % 5)]
    sys.stdout.write(json.dumps(m) + '\n')
    sys.stdout.flush()
" 2>/dev/null | lama send "$topic" --jsonl >>"$T/acked" 2>/dev/null &
	(
		i=0
		while :; do
			lama send "$topic" "round $round single $i" --attach "$T/file$((i % 5))" >>"$T/acked" 2>/dev/null || true
			i=$((i + 1))
		done
	) &
	loop=$!
	sleep "$(python3 -c "import random; print(random.uniform(0.3, 1.5))")"
	kill "$loop" 2>/dev/null || true
	pkill -9 -f "$LAMA_BIN send" || true
	wait 2>/dev/null || true
	python3 - "$T/acked" <<'PY'
import re, sys
p = sys.argv[1]
lines = open(p).read().split("\n")
open(p, "w").write("".join(l + "\n" for l in lines if re.fullmatch(r"[0-9a-f]{64}", l)))
PY
	lama check >"$T/check" 2>"$T/check_err" || fail "round $round: check failed: $(cat "$T/check_err")"
done
lama messages "$topic" --limit 10000 --json >"$T/all"
python3 - "$T/acked" "$T/all" "$T" <<'PY' || fail "acknowledged messages are missing or damaged"
import hashlib, json, sys
acked = open(sys.argv[1]).read().split()
msgs = {m["id"]: m for m in json.load(open(sys.argv[2]))["messages"]}
files = {hashlib.sha256(open("%s/file%d" % (sys.argv[3], i), "rb").read()).hexdigest() for i in range(5)}
missing = [a for a in acked if a not in msgs]
assert not missing, "%d of %d acknowledged messages missing" % (len(missing), len(acked))
assert len(set(acked)) == len(acked), "an id was acknowledged twice"
with_att = 0
for a in acked:
    for att in msgs[a]["attachments"]:
        assert att["blob"] in files, "attachment of %s is not one of the files" % a
        with_att += 1
assert with_att > 0, "no acknowledged message had an attachment"
print("checked %d acknowledged messages, %d attachments" % (len(acked), with_att))
PY
# every attachment's bytes come back
for i in 0 1 2 3 4; do
	h=$(sha256sum "$T/file$i" | cut -c1-64)
	if grep -q "$h" "$T/all"; then
		lama blob get "$h" -o "$T/back$i"
		cmp -s "$T/file$i" "$T/back$i" || fail "file$i came back different"
	fi
done
acked=$(wc -l <"$T/acked")
[ "$acked" -gt "$ROUNDS" ] || fail "too few messages acknowledged ($acked) to mean anything"
echo "chat_crash: ok ($ROUNDS kills, $acked messages acknowledged)"
