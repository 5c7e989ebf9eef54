#!/bin/sh
# Conversations through the CLI: contacts, topics, sending with
# attachments, replies, edits, paging with --before, --json for scripts,
# read positions, and clear one-line errors.
. "$(dirname "$0")/lib.sh"

json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

lama register --name alice >/dev/null
lama contacts add --name Bob --email bob@example.org >/dev/null
lama contacts add --name Carol >/dev/null
lama contacts add --name Helper --ai >/dev/null

# a one-to-one topic is created once
t=$(lama topic new --with Bob)
t2=$(lama topic new --with bob@example.org --title "ignored" 2>"$T/err")
[ "$t" = "$t2" ] || fail "a second one-to-one topic with Bob: $t / $t2"
grep -q "exists already" "$T/err" || fail "no notice that the topic exists"
g=$(lama topic new --title "Team" --with Bob Carol)
[ "$g" != "$t" ] || fail "the group topic is the one-to-one topic"
ai=$(lama topic new --with Helper --json | json 'd["ai"]')
[ "$ai" = "True" ] || fail "a topic with an assistant is not marked ai"

# sending: plain, with an attachment, as a reply
printf 'attached bytes\n' >"$T/note.txt"
m1=$(lama send "$t" "hello Bob")
m2=$(lama send Bob "see the file" --attach "$T/note.txt")
m3=$(lama send "$t" "replying" --reply-to "$(echo "$m1" | cut -c1-10)")
lama messages Bob --json >"$T/page"
[ "$(json 'len(d["messages"])' <"$T/page")" -eq 3 ] || fail "three messages expected: $(cat "$T/page")"
[ "$(json 'd["messages"][0]["text"]' <"$T/page")" = "hello Bob" ] || fail "oldest first"
[ "$(json 'd["messages"][2]["reply_to"]' <"$T/page")" = "$m1" ] || fail "reply_to"
blob=$(json 'd["messages"][1]["attachments"][0]["blob"]' <"$T/page")
[ "$(json 'd["messages"][1]["attachments"][0]["name"]' <"$T/page")" = "note.txt" ] || fail "attachment name"
lama blob get "$blob" -o "$T/back.txt"
cmp -s "$T/note.txt" "$T/back.txt" || fail "the attachment did not come back intact"
lama messages "$t" | grep -q "attachment: note.txt (15 bytes, text/plain)" || fail "text output shows no attachment"

# edits and deletions
lama edit "$t" "$m1" "hello, Bob"
lama delete "$t" "$m2"
lama messages "$t" --json >"$T/page"
[ "$(json 'd["messages"][0]["text"]' <"$T/page")" = "hello, Bob" ] || fail "edit not applied"
[ "$(json 'd["messages"][0]["edited"]' <"$T/page")" = "True" ] || fail "edit not marked"
[ "$(json 'd["messages"][1]["deleted"]' <"$T/page")" = "True" ] || fail "delete not applied"
[ "$m3" != "" ] || fail "no id for the reply"

# paging a longer conversation with --before
seq 1 130 | sed 's/^/line /' | lama send Team --lines >"$T/acks"
[ "$(wc -l <"$T/acks")" -eq 130 ] || fail "--lines acknowledged $(wc -l <"$T/acks") of 130"
lama messages Team --limit 50 --json >"$T/p1"
[ "$(json 'd["more"]' <"$T/p1")" = "True" ] || fail "more expected"
before=$(json 'd["before"]' <"$T/p1")
lama messages Team --limit 50 --before "$before" --json >"$T/p2"
lama messages Team --limit 50 --before "$(json 'd["before"]' <"$T/p2")" --json >"$T/p3"
[ "$(json 'd["more"]' <"$T/p3")" = "False" ] || fail "the third page is the last"
python3 - "$T/p3" "$T/p2" "$T/p1" <<'PY' || fail "pages do not give every line once, in order"
import json, sys
texts = [m["text"] for p in sys.argv[1:] for m in json.load(open(p))["messages"]]
assert texts == ["line %d" % i for i in range(1, 131)], texts[:5]
PY

# topics: counts (other participants' unread entries and read positions
# are tested in tests/unit/chat: only the user writes here)
lama topics --json >"$T/topics"
[ "$(json 'len(d)' <"$T/topics")" -eq 3 ] || fail "three topics expected"
[ "$(json '[x for x in d if x["title"]=="Team"][0]["entries"]' <"$T/topics")" -eq 130 ] || fail "entries"
[ "$(json '[x for x in d if x["title"]=="Team"][0]["unread"]' <"$T/topics")" -eq 0 ] || fail "own messages are not unread"
lama topic read Team
lama topic read Team "$(head -1 "$T/acks")"
expect_fail lama topic read Team "$m1"
lama topics | grep -q "Team  (3 people, 130 entries, 0 unread" || fail "topic list: $(lama topics)"
handle=$(json '[x for x in d if x["title"]=="Bob"][0]["handle"]' <"$T/topics")
lama messages "$handle" --limit 1 | grep -q "replying" || fail "a topic by its handle"

# text from a peer cannot drive the terminal; lines of a message are indented
printf '{"text": "line one\\nline two \\u009b31m \\u202e evil \\u0007"}\n' | lama send "$t" --jsonl >/dev/null
lama messages "$t" --limit 1 >"$T/shown"
python3 - "$T/shown" <<'PY' || fail "control characters reached the terminal: $(cat "$T/shown")"
import sys
out = open(sys.argv[1], "rb").read().decode("utf-8")
assert "line one" in out and "\n    line two" in out, out
for bad in ("\u009b", "\u202e", "\u0007", "\x1b"):
    assert bad not in out, repr(bad)
assert "\ufffd" in out
PY

# errors: one line, non-zero
expect_fail lama send nosuchtopic "x"
expect_fail lama send "$t" "x" --attach "$T/missing"
expect_fail lama topic new --with Nobody
expect_fail lama messages "$t" --limit 0
expect_fail lama messages "$t" --before 0123456789
expect_fail lama edit "$t" "$m1"
printf '{"text": 5}\n' | expect_fail lama send "$t" --jsonl
head -c 300000 /dev/zero | tr '\0' a | expect_fail lama send "$t" --lines
lama check >/dev/null || fail "check after the chat test"
echo "chat: ok"
