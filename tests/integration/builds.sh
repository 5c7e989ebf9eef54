#!/bin/sh
# Hashes are the same in every build: the optimised binary ($LAMA_BIN, the
# one ./lama runs) stores every one.core vector of a builtin type and must
# print one.core's hash for each, as the sanitizer build's tests do.
. "$(dirname "$0")/lib.sh"
VEC="${LAMA_ONE_FORMAT:?}/vectors.jsonl"
lama register --name builds >/dev/null
python3 - "$VEC" "$T" <<'PY'
import json, sys
vec, t = sys.argv[1], sys.argv[2]
skip = {"TestAllTypes", "TestInherit", "TestUnversioned", "LamaFormatProbe"}
by_type = {}
for line in open(vec):
    v = json.loads(line)
    if v["type"] not in skip:
        by_type.setdefault(v["type"], []).append(v)
with open(t + "/types", "w") as types:
    for ty, vs in by_type.items():
        types.write(ty + "\n")
        with open("%s/in-%s" % (t, ty), "w") as f, open("%s/want-%s" % (t, ty), "w") as w:
            for v in vs:
                f.write(json.dumps(v["object"]) + "\n")
                w.write(v["hash"] + "\n")
PY
n=0
while read -r type; do
	lama object put "$type" --lines <"$T/in-$type" >"$T/got-$type" || fail "$type: put failed"
	cmp -s "$T/got-$type" "$T/want-$type" || fail "$type: hashes differ from one.core's"
	n=$((n + $(wc -l <"$T/want-$type")))
done <"$T/types"
[ "$n" -gt 300 ] || fail "only $n vectors"
echo "builds: ok ($n vectors, $(basename "$(dirname "$(dirname "$(dirname "$LAMA_BIN")")")"))"
