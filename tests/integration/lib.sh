# lib.sh: shared by the integration tests. Source it; it sets `set -eu`,
# makes a fresh data folder in $T (removed on exit) and defines helpers.
set -eu
: "${LAMA_BIN:?LAMA_BIN must point at the lama binary}"
T=$(mktemp -d "${TMPDIR:-/tmp}/lama-it-XXXXXX")
trap 'rm -rf "$T"' EXIT
export LAMA_HOME="$T/home"
export LAMA_PASSWORD="correct horse battery staple"
export LAMA_KDF=min # Argon2id at its minimum: these tests are about storage, not the KDF
# ASan's leak check runs in every lama process the tests start
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"

lama() { "$LAMA_BIN" "$@"; }

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

# expect_fail CMD...: the command must exit non-zero with exactly one line
# on stderr; the line is left in $ERR.
expect_fail() {
	if "$@" >"$T/out" 2>"$T/err"; then
		fail "expected failure: $*"
	fi
	ERR=$(cat "$T/err")
	[ "$(wc -l <"$T/err")" -eq 1 ] || fail "expected one line on stderr from $*, got: $ERR"
}
