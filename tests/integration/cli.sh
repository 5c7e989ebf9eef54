#!/bin/sh
# The CLI end to end: accounts, objects against one.core's own vectors,
# BLOBs, check, exit statuses and messages.
. "$(dirname "$0")/lib.sh"
VEC="${LAMA_ONE_FORMAT:?}/vectors.jsonl"

lama --help | grep -q "register" || fail "--help lists commands"
for c in register login passwd erase object blob check; do
	lama "$c" --help >/dev/null || fail "$c --help"
done
expect_fail lama frobnicate
echo "$ERR" | grep -q "unknown command" || fail "unknown command message: $ERR"

# no user yet
expect_fail lama login
echo "$ERR" | grep -q "no users" || fail "login without users: $ERR"

lama register --name alice >"$T/ids"
grep -q "^person [0-9a-f]\{64\}$" "$T/ids" || fail "register prints the person"
expect_fail lama register --name alice
echo "$ERR" | grep -q "already exists" || fail "duplicate name: $ERR"
lama login | cmp - "$T/ids" || fail "login shows the same identity"
[ "$(stat -c %a "$LAMA_HOME/users"/*/archive.db)" = 600 ] || fail "archive mode 0600"

# wrong password: clear error, nothing changes
snap() { find "$LAMA_HOME" -type f -exec sha256sum {} + | sort; }
snap >"$T/before"
LAMA_PASSWORD=wrong expect_fail lama login
[ "$ERR" = "lama: wrong password" ] || fail "wrong password message: $ERR"
LAMA_PASSWORD=wrong expect_fail lama object get 0000000000000000000000000000000000000000000000000000000000000000
snap >"$T/after"
cmp -s "$T/before" "$T/after" || fail "a wrong password changed files"

# objects: every 7th vector of one.core goes in as JSON and must come out
# with one.core's hash and microdata, byte for byte
n=0
python3 - "$VEC" "$T/vec" <<'PY'
import json, sys
out = open(sys.argv[2], "w")
for i, line in enumerate(open(sys.argv[1])):
    v = json.loads(line)
    if i % 7 or v["type"] in ("TestAllTypes", "TestInherit", "TestUnversioned", "LamaFormatProbe"):
        continue
    out.write("%s\t%s\t%s\n" % (v["type"], v["hash"], json.dumps(v["object"])))
PY
while IFS="$(printf '\t')" read -r type hash obj; do
	got=$(printf '%s' "$obj" | lama object put "$type")
	[ "$got" = "$hash" ] || fail "$type: hash $got, one.core says $hash"
	lama object get "$hash" --microdata >"$T/md"
	python3 - "$VEC" "$hash" "$T/md" <<'PY' || fail "$type microdata differs"
import json, sys
md = {json.loads(l)["hash"]: json.loads(l)["microdata"] for l in open(sys.argv[1])}
got = open(sys.argv[3], encoding="utf-8").read()
sys.exit(0 if got == md[sys.argv[2]] + "\n" else 1)
PY
	n=$((n + 1))
done <"$T/vec"
[ "$n" -gt 40 ] || fail "only $n vectors checked"

# get returns JSON that puts back to the same hash
h=$(echo '{"text":"round trip","sender":"0f69db43a925bc5509c37143ffe18e9c11895ad6ec7c50386bcd4c87100b7152"}' | lama object put ChatMessage)
lama object get "$h" | lama object put ChatMessage | grep -qx "$h" || fail "get/put round trip"

# rejections: one-line errors with one.core's codes
echo '{"sender":"0f69db43a925bc5509c37143ffe18e9c11895ad6ec7c50386bcd4c87100b7152"}' >"$T/bad"
expect_fail lama object put ChatMessage <"$T/bad"
echo "$ERR" | grep -q "O2M-RTYC2" || fail "missing property: $ERR"
echo '{"text":"x","sender":"nothex"}' >"$T/bad"
expect_fail lama object put ChatMessage <"$T/bad"
echo "$ERR" | grep -q "O2M-RTYC4" || fail "bad reference: $ERR"
echo '{"text":' >"$T/bad"
expect_fail lama object put ChatMessage <"$T/bad"
echo "$ERR" | grep -q "not valid JSON" || fail "malformed JSON: $ERR"
expect_fail lama object put NoSuchType </dev/null
echo "$ERR" | grep -q "OR-GR1" || fail "unknown type: $ERR"
expect_fail lama object get abc
expect_fail lama object get 1111111111111111111111111111111111111111111111111111111111111111
echo "$ERR" | grep -q "no object" || fail "unknown hash: $ERR"

# versions: a second version of a Person follows the first; refs find it
p1=$(echo '{"email":"bob@example.org","name":"Bob"}' | lama object put Person --verbose)
id=$(echo "$p1" | sed -n 's/^id //p')
echo '{"email":"bob@example.org","name":"Robert"}' | lama object put Person --verbose >"$T/p2"
[ "$(sed -n 's/^id //p' "$T/p2")" = "$id" ] || fail "same ID for both versions"
node=$(sed -n 's/^node //p' "$T/p2")
[ "$(lama object heads "$id")" = "$node" ] || fail "one head after a change"
lama object get "$node" | grep -q '"VersionNodeChange"' || fail "change node"
lama object refs "$id" --type VersionNodeChange | grep -q "^$node VersionNodeChange$" || fail "refs by type"

# BLOBs of a few sizes, byte for byte
for size in 0 1 131072 131073 3000000; do
	head -c "$size" /dev/urandom >"$T/f"
	h=$(lama blob put "$T/f")
	[ "$h" = "$(sha256sum "$T/f" | cut -d' ' -f1)" ] || fail "blob hash for $size bytes"
	lama blob get "$h" | cmp - "$T/f" || fail "blob round trip for $size bytes"
	lama blob get "$h" -o "$T/g" && cmp "$T/f" "$T/g" || fail "blob get -o"
done
expect_fail lama blob put "$T/missing"

lama check >"$T/check" || fail "check on a good archive"
grep -q "^bad 0$" "$T/check" || fail "check report"

# password change: old stops working, new works, data intact
LAMA_NEW_PASSWORD=new-secret lama passwd 2>/dev/null
expect_fail lama login
LAMA_PASSWORD=new-secret lama object get "$h" --microdata >/dev/null 2>&1 || true
LAMA_PASSWORD=new-secret lama login | cmp - "$T/ids" || fail "login with the new password"

# a second user in the same folder; then --user is needed
LAMA_PASSWORD=pw2 lama register --name carol >/dev/null
expect_fail lama login
echo "$ERR" | grep -q -- "--user" || fail "several users: $ERR"
LAMA_PASSWORD=pw2 lama --user carol login >/dev/null || fail "login as carol"
LAMA_PASSWORD=wrong expect_fail lama --user carol erase --yes
LAMA_PASSWORD=pw2 lama --user carol erase --yes 2>/dev/null
LAMA_PASSWORD=pw2 expect_fail lama --user carol login
echo "$ERR" | grep -q "no user named carol" || fail "erased: $ERR"
LAMA_PASSWORD=new-secret lama login >/dev/null || fail "alice survives carol's erase"
# a data folder path SQLite could not open is refused up front
expect_fail lama --home "$T/$(printf 'x%.0s' $(seq 1 420))" login
echo "$ERR" | grep -q "too long" || fail "long --home: $ERR"
# an empty --home is an error, not the default folder
expect_fail lama --home "" login
echo "$ERR" | grep -q "needs a value" || fail "empty --home: $ERR"
# output that cannot be written is a failure (the hash would be lost)
if [ -w /dev/full ]; then
	LAMA_PASSWORD=new-secret expect_fail sh -c "echo '{\"email\":\"full@x\"}' | \"$LAMA_BIN\" object put Person >/dev/full"
	echo "$ERR" | grep -q "cannot write" || fail "/dev/full: $ERR"
fi
# a line over the object limit is refused before it is all in memory
head -c 17000000 /dev/zero | tr '\0' 'a' >"$T/huge"
LAMA_PASSWORD=new-secret expect_fail lama object put Person --lines <"$T/huge"
echo "$ERR" | grep -q "larger than" || fail "huge line: $ERR"
rm -f "$T/huge"
# registrations at the same time in a fresh folder: each user is there and
# findable; two of the same name: exactly one wins
H2="$T/race"
for u in r1 r2 r3 r4; do
	LAMA_HOME="$H2" LAMA_PASSWORD=pw lama register --name "$u" >/dev/null 2>&1 &
done
wait
for u in r1 r2 r3 r4; do
	LAMA_HOME="$H2" LAMA_PASSWORD=pw lama --user "$u" login >/dev/null || fail "racing register lost $u"
done
ok=0
for i in 1 2 3; do
	LAMA_HOME="$H2" LAMA_PASSWORD=pw lama register --name same >/dev/null 2>&1 &
done
wait
LAMA_HOME="$H2" LAMA_PASSWORD=pw lama --user same login >/dev/null || fail "one 'same' must exist"
[ "$(ls "$H2/users" | wc -l)" -eq 5 ] || fail "duplicate names registered: $(ls "$H2/users" | wc -l) users"
# a user is never erased under a process that is still writing for them
mkfifo "$T/fifo"
LAMA_HOME="$H2" LAMA_PASSWORD=pw lama --user r1 object put ChatMessage --lines <"$T/fifo" >"$T/fifo.out" &
exec 3>"$T/fifo"
# its first acknowledgement shows it is logged in and writing
echo '{"text":"first","sender":"0f69db43a925bc5509c37143ffe18e9c11895ad6ec7c50386bcd4c87100b7152"}' >&3
i=0
until [ -s "$T/fifo.out" ]; do
	i=$((i + 1))
	[ "$i" -lt 600 ] || fail "the writer never acknowledged"
	sleep 0.05
done
LAMA_HOME="$H2" LAMA_PASSWORD=pw expect_fail lama --user r1 erase --yes
echo "$ERR" | grep -q "in use by another lama process" || fail "erase under a session: $ERR"
echo '{"text":"still here","sender":"0f69db43a925bc5509c37143ffe18e9c11895ad6ec7c50386bcd4c87100b7152"}' >&3
exec 3>&-
wait
[ "$(wc -l <"$T/fifo.out")" -eq 2 ] || fail "the writer's objects were not acknowledged"
LAMA_HOME="$H2" LAMA_PASSWORD=pw lama --user r1 object get "$(tail -1 "$T/fifo.out")" | grep -q "still here" ||
	fail "the writer's object is not there"
LAMA_HOME="$H2" LAMA_PASSWORD=pw lama --user r1 erase --yes 2>/dev/null || fail "erase once idle"
# prompts on a terminal: no echo, a new password asked twice
cat >"$T/prompts.py" <<'PY'
import faulthandler, os, pty, sys
faulthandler.dump_traceback_later(50, exit=True)
def run(args, answers):
    env = dict(os.environ)
    env.pop("LAMA_PASSWORD", None)
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(args[0], args, env)
    seen = b""
    for a in answers:
        while b": " not in seen.split(b"\n")[-1]:
            seen += os.read(fd, 1024)
        os.write(fd, a.encode() + b"\n")
        seen += b"\n"
    try:
        while True:
            chunk = os.read(fd, 1024)
            if not chunk:
                break
            seen += chunk
    except OSError:
        pass
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), seen.decode(errors="replace")
lama = os.environ["LAMA_BIN"]
code, out = run([lama, "register", "--name", "dora"], ["sesame", "sesame-typo"])
assert code == 1 and "do not match" in out, out
assert "sesame" not in out, "the password was echoed: " + out
code, out = run([lama, "register", "--name", "dora"], ["sesame", "sesame"])
assert code == 0 and "person" in out, out
code, out = run([lama, "--user", "dora", "login"], ["sesame"])
assert code == 0 and "sesame" not in out, out
# Ctrl-C at the prompt: lama dies of SIGINT and the terminal echoes again
import signal, termios, time
env = dict(os.environ)
env.pop("LAMA_PASSWORD", None)
pid, fd = pty.fork()
if pid == 0:
    os.execve(lama, [lama, "--user", "dora", "login"], env)
seen = b""
while b": " not in seen:
    seen += os.read(fd, 1024)
time.sleep(0.2)
os.write(fd, b"\x03")
_, status = os.waitpid(pid, 0)
assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGINT, status
assert termios.tcgetattr(fd)[3] & termios.ECHO, "echo left off after Ctrl-C"
PY
timeout 60 python3 "$T/prompts.py" || fail "terminal prompts"
echo "cli: ok ($n vectors)"
