#!/bin/sh
# Builds the libFuzzer targets with clang directly, independent of the Meson
# build (whose compiler may be gcc): src/util and src/object plus the target,
# all instrumented (fuzz_ipc: src/util and src/ipc). Usage:
#   fuzz/build.sh [OUTDIR]            (default: build-fuzz)
#   build-fuzz/fuzz_microdata -max_total_time=60 fuzz/corpus/microdata
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-"$root/build-fuzz"}
mkdir -p "$out"
CC=${CC:-clang}
python3 "$root/src/object/recipes/gen_builtin.py" "$root/src/object/recipes/builtin.json" \
	"$out/builtin_recipes.c"
flags="-std=gnu11 -g -O1 -Wall -Wextra -Werror -Wno-unused-parameter -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined"
libs=$(pkg-config --cflags --libs jansson libpcre2-8 libcrypto libsodium)
for t in fuzz_microdata fuzz_object; do
	# shellcheck disable=SC2086
	$CC $flags -I"$root/src" "$root"/src/util/*.c "$root"/src/object/*.c "$out/builtin_recipes.c" \
		"$root/fuzz/$t.c" -o "$out/$t" $libs -lm
	echo "built $out/$t"
done
# the IPC protocol needs only src/util and jansson
# shellcheck disable=SC2086
$CC $flags -I"$root/src" "$root"/src/util/*.c "$root"/src/ipc/*.c "$root/fuzz/fuzz_ipc.c" \
	-o "$out/fuzz_ipc" $libs -lm
echo "built $out/fuzz_ipc"
