#!/bin/sh
# People end to end: contacts add/list/show, assistants, the user's own
# profile and its edits, --json parsed, errors with one line and the
# right exit status, nothing changed by a refused command.
. "$(dirname "$0")/lib.sh"

# json FILE EXPR: evaluates a Python expression over the parsed JSON `j`
# and prints it (one value per line for a list).
json() {
	python3 - "$1" "$2" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
v = eval(sys.argv[2])
for x in (v if isinstance(v, list) else [v]):
    print(x)
PY
}

for c in contacts me profile; do
	lama "$c" --help >"$T/out" || fail "$c --help"
	grep -q "usage: lama $c" "$T/out" || fail "$c --help shows usage"
done
lama --help | grep -q "contacts" || fail "--help lists contacts"

# usage errors: exit 2, one line, before any password is asked
LAMA_PASSWORD= expect_fail lama contacts frob
[ "$(cat "$T/err" | wc -l)" = 1 ] && echo "$ERR" | grep -q "unknown verb" || fail "unknown verb: $ERR"
for args in "contacts add" "contacts add Bob" "contacts show" "contacts show a b" \
	"contacts add --name X --model m" "contacts --bogus" "me extra" "profile set" \
	"profile frob" "profile show --name x"; do
	# shellcheck disable=SC2086
	if lama $args >/dev/null 2>"$T/err"; then fail "lama $args succeeded"; else st=$?; fi
	[ "$st" -eq 2 ] || fail "lama $args: exit $st, expected 2"
	[ "$(wc -l <"$T/err")" -eq 1 ] || fail "lama $args: not one line: $(cat "$T/err")"
done

lama register --name alice >"$T/ids"
me_id=$(sed -n 's/^person //p' "$T/ids")

# the user: made on first use, the same every time
lama me --json >"$T/me.json"
[ "$(json "$T/me.json" 'j["person"]')" = "$me_id" ] || fail "me is the registered person"
[ "$(json "$T/me.json" 'j["name"]')" = "alice" ] || fail "me has the name"
[ "$(json "$T/me.json" 'j["me"]')" = "True" ] || fail "me is me"
[ "$(json "$T/me.json" 'len(j["signKeys"])')" = 1 ] || fail "my profile has my signing key"
json "$T/me.json" 'j["encryptionKey"]' | grep -qx "[0-9a-f]\{64\}" || fail "and my encryption key"
lama contacts me --json | cmp -s - "$T/me.json" || fail "contacts me = me"
lama profile --json | cmp -s - "$T/me.json" || fail "profile = me"
lama me | grep -q "^person   $me_id$" || fail "me in text"
lama contacts >"$T/out"
[ ! -s "$T/out" ] || fail "no contacts yet, got: $(cat "$T/out")"
lama contacts --json | grep -qx '\[\]' || fail "an empty JSON list"

# add
bob=$(lama contacts add --name Bob --email Bob@Example.org)
echo "$bob" | grep -qx "[0-9a-f]\{64\}" || fail "add prints the person ID: $bob"
lama contacts add --name "Carol C" --json >"$T/carol.json"
carol=$(json "$T/carol.json" 'j["person"]')
json "$T/carol.json" 'j["email"]' | grep -q "^[0-9a-f]\{32\}@lama\.local$" || fail "a made-up email"
lama contacts add --name Llama --ai --model qwen2.5 >/dev/null
lama contacts add --name "$(printf 'Zo\303\253')" --email zoe@example.org >/dev/null

# list: sorted by name, short IDs, ai marked; JSON with full hashes
lama contacts >"$T/list"
[ "$(wc -l <"$T/list")" -eq 4 ] || fail "four contacts: $(cat "$T/list")"
sed -n 1p "$T/list" | grep -q "^$(echo "$bob" | cut -c1-12)  Bob  bob@example.org$" || fail "Bob's line: $(sed -n 1p "$T/list")"
sed -n 3p "$T/list" | grep -q "  Llama  [0-9a-f]*@ai\.lama\.local  ai$" || fail "the assistant's line"
lama contacts --json >"$T/list.json"
[ "$(json "$T/list.json" '[p["name"] for p in j]' | tr '\n' ,)" = "Bob,Carol C,Llama,Zoë," ] || fail "JSON order: $(cat "$T/list.json")"
[ "$(json "$T/list.json" '[p["ai"] for p in j]' | tr '\n' ,)" = "False,False,True,False," ] || fail "JSON ai"
[ "$(json "$T/list.json" 'j[2]["model"]')" = "qwen2.5" ] || fail "JSON model"
[ "$(json "$T/list.json" 'j[0]["person"]')" = "$bob" ] || fail "JSON full hash"
json "$T/list.json" '[p["someone"] for p in j]' | grep -c "^[0-9a-f]\{64\}$" | grep -qx 4 || fail "someones"

# show: by email, name, ID prefix
lama contacts show BOB@example.org | grep -q "^person   $bob$" || fail "show by email"
lama contacts show "carol c" --json >"$T/c.json"
[ "$(json "$T/c.json" 'j["person"]')" = "$carol" ] || fail "show by name"
lama contacts show "$(echo "$carol" | cut -c1-10)" | grep -q "^name     Carol C$" || fail "show by prefix"
lama contacts show llama | grep -q "^ai       yes, model qwen2.5$" || fail "show an assistant"
lama contacts show "$me_id" | grep -q "^me       yes$" || fail "show me by ID"

# refusals: one line, exit 1, nothing changes
snap() { find "$LAMA_HOME" -type f -name 'archive.db*' -exec sha256sum {} + | sort; }
lama contacts show nobody >/dev/null 2>&1 || true # a read may merge; settle first
snap >"$T/before"
expect_fail lama contacts show nobody
[ "$ERR" = "lama: nobody matches 'nobody'" ] || fail "not found: $ERR"
expect_fail lama contacts add --name Robert --email bob@EXAMPLE.org
echo "$ERR" | grep -q "already a contact" || fail "duplicate: $ERR"
expect_fail lama contacts add --name X --email "not an email"
echo "$ERR" | grep -q "not an email address" || fail "bad email: $ERR"
expect_fail lama contacts add --name ""
echo "$ERR" | grep -q "name is empty" || fail "empty name: $ERR"
expect_fail lama contacts add --name "$(printf 'a\tb')"
expect_fail lama contacts add --name "$(head -c 300 /dev/zero | tr '\0' n)"
echo "$ERR" | grep -q "longer than 256" || fail "long name: $ERR"
LAMA_PASSWORD=wrong expect_fail lama contacts
[ "$ERR" = "lama: wrong password" ] || fail "wrong password: $ERR"
snap >"$T/after"
cmp -s "$T/before" "$T/after" || fail "a refused command changed the archive"
[ "$(lama contacts | wc -l)" -eq 4 ] || fail "still four contacts"

# ambiguity names the candidates
lama contacts add --name bob --email bob@other.example >/dev/null
expect_fail lama contacts show Bob
echo "$ERR" | grep -q "matches 2 people: .*$(echo "$bob" | cut -c1-8)" || fail "ambiguous: $ERR"
[ "$(wc -l <"$T/err")" -eq 1 ] || fail "ambiguity in one line"

# the own profile
head -c 5000 /dev/urandom >"$T/face.jpg"
lama profile set --name "Alice L." --status "in a meeting" --avatar "$T/face.jpg" --json >"$T/p.json"
[ "$(json "$T/p.json" 'j["name"]')" = "Alice L." ] || fail "new name"
[ "$(json "$T/p.json" 'j["status"]')" = "in a meeting" ] || fail "new status"
av=$(json "$T/p.json" 'j["avatar"]')
[ "$av" = "$(sha256sum "$T/face.jpg" | cut -c1-64)" ] || fail "avatar is the file's BLOB"
lama blob get "$av" -o "$T/back.jpg"
cmp -s "$T/face.jpg" "$T/back.jpg" || fail "avatar reads back"
lama profile set --status "" >/dev/null
lama me --json >"$T/p.json"
[ "$(json "$T/p.json" 'j["status"]')" = "None" ] || fail "status removed"
[ "$(json "$T/p.json" 'j["avatar"]')" = "$av" ] || fail "avatar kept"
[ "$(json "$T/p.json" 'j["name"]')" = "Alice L." ] || fail "name kept"
lama contacts show "alice l." | grep -q "^me       yes$" || fail "found by the new name"
expect_fail lama profile set --avatar "$T/missing.jpg"
echo "$ERR" | grep -q "cannot open" || fail "missing avatar: $ERR"
head -c $((9 * 1024 * 1024)) /dev/zero >"$T/big.jpg"
expect_fail lama profile set --name Big --avatar "$T/big.jpg"
echo "$ERR" | grep -q "larger than" || fail "big avatar: $ERR"
[ "$(lama me --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["name"])')" = "Alice L." ] ||
	fail "a refused edit changed the name"

# peer text never reaches the terminal raw (review finding 10): a name
# with a bidi override (U+202E, accepted as input), and a status with a
# C1 CSI (U+009B) that only a peer's objects can carry
lama contacts add --name "$(printf 'Eve\342\200\256gnp.exe')" --email eve@example.org >/dev/null
me_json=$(lama me --json)
myhex=$(echo "$me_json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["person"])')
eve_json=$(lama contacts show eve@example.org --json)
evehex=$(echo "$eve_json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["person"])')
st=$(printf '{"$type$": "PersonStatus", "value": "x\\u009b31mred\\u2066y\\u0007", "timestamp": 1.5, "location": ""}' |
	lama object put PersonStatus) || fail "status object"
nm=$(printf '{"$type$": "PersonName", "name": "Eve\\u009b2J\\u202e"}' | lama object put PersonName) ||
	fail "name object"
printf '{"$type$": "Profile", "profileId": "default", "personId": "%s", "owner": "%s", "communicationEndpoint": [], "personDescription": ["%s", "%s"]}' \
	"$evehex" "$myhex" "$nm" "$st" | lama object put Profile >/dev/null || fail "profile version"
lama contacts >"$T/list"
lama contacts show eve@example.org >"$T/show"
for f in "$T/list" "$T/show"; do
	# U+009B, U+202E, U+2066 as UTF-8, and BEL
	if LC_ALL=C grep -q "$(printf '\302\233')\|$(printf '\342\200\256')\|$(printf '\342\201\246')\|$(printf '\007')" "$f"; then
		fail "raw control or bidi characters in $(basename "$f"): $(od -c "$f" | head -5)"
	fi
done
grep -q "^status   x$(printf '\357\277\275')31mred$(printf '\357\277\275')y$(printf '\357\277\275')$" "$T/show" ||
	fail "status shown with U+FFFD: $(od -c "$T/show" | head -5)"
grep -q "^name     Eve$(printf '\357\277\275')2J$(printf '\357\277\275')$" "$T/show" ||
	fail "name shown with U+FFFD: $(cat "$T/show")"

lama check >/dev/null || fail "the archive checks clean"
echo "ok"
