#!/bin/sh
# Crash safety: a writer is killed with SIGKILL at random moments, 25 times.
# After each kill `lama check` passes and every object whose hash the writer
# printed (its acknowledgement) is there, versions included.
. "$(dirname "$0")/lib.sh"
ROUNDS=${CRASH_ROUNDS:-25}
SENDER=0f69db43a925bc5509c37143ffe18e9c11895ad6ec7c50386bcd4c87100b7152

lama register --name crash >/dev/null
: >"$T/acked"
: >"$T/acked_person"
round=0
while [ "$round" -lt "$ROUNDS" ]; do
	round=$((round + 1))
	# an endless stream of messages, and of versions of one Person
	python3 -c "
import sys, itertools
for i in itertools.count():
    sys.stdout.write('{\"text\": \"round $round message %d %s\", \"sender\": \"$SENDER\"}\n' % (i, 'x' * (i % 300)))
    sys.stdout.flush()
" 2>/dev/null | lama object put ChatMessage --lines >>"$T/acked" 2>/dev/null &
python3 -c "
import sys, itertools
for i in itertools.count():
    sys.stdout.write('{\"email\": \"p@x\", \"name\": \"round $round v%d\"}\n' % i)
    sys.stdout.flush()
" 2>/dev/null | lama object put Person --lines >>"$T/acked_person" 2>/dev/null &
	# kill somewhere between 50 and 800 ms in
	sleep "$(python3 -c "import random; print(random.uniform(0.05, 0.8))")"
	pkill -9 -f "$LAMA_BIN object put" || true
	wait 2>/dev/null || true
	# a partial last line is an acknowledgement that never completed
	python3 - "$T/acked" "$T/acked_person" <<'PY'
import re, sys
for p in sys.argv[1:]:
    lines = open(p).read().split("\n")
    good = [l for l in lines if re.fullmatch(r"[0-9a-f]{64}", l)]
    open(p, "w").write("".join(l + "\n" for l in good))
PY
	lama check >"$T/check" 2>"$T/check_err" || fail "round $round: check failed: $(cat "$T/check_err")"
	if [ -s "$T/acked" ]; then
		# shellcheck disable=SC2046
		lama object get $(cat "$T/acked") >"$T/got" || fail "round $round: an acknowledged message is missing"
		[ "$(wc -l <"$T/got")" -eq "$(wc -l <"$T/acked")" ] || fail "round $round: count"
	fi
	if [ -s "$T/acked_person" ]; then
		# shellcheck disable=SC2046
		lama object get $(cat "$T/acked_person") >/dev/null || fail "round $round: an acknowledged version is missing"
	fi
done
acked=$(wc -l <"$T/acked")
[ "$acked" -gt "$ROUNDS" ] || fail "too few writes acknowledged ($acked) to mean anything"
echo "crash: ok ($ROUNDS kills, $acked messages and $(wc -l <"$T/acked_person") versions acknowledged)"
