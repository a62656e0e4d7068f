#!/bin/bash
# test_install: install this build into a DESTDIR, then use it as a program
# outside the repository would: build consumer.c with
# `pkg-config --cflags --libs mmapio` (and the old name libmmapio), run it
# alone and against the installed mmapiod, and check the man pages, units
# and pkg-config files are where packagers expect them.
#   test_install.sh BUILD_DIR SOURCE_DIR [B_SANITIZE]
set -u
build=$1 src=$2
if [ "${3:-none}" != none ]; then
    echo "skipped: a $3 build's library needs its sanitizer runtime"
    exit 77
fi
tmp=$(mktemp -d /tmp/mmapio-install-XXXXXX) || exit 1
daemon=
cleanup() {
    if [ -n "$daemon" ]; then kill -TERM "$daemon" 2>/dev/null; wait "$daemon"; fi
    rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

dest=$tmp/dest
meson install -C "$build" --destdir "$dest" --no-rebuild --quiet \
    >"$tmp/install.log" 2>&1 || { cat "$tmp/install.log"; fail "meson install"; }

pc=$(find "$dest" -name mmapio.pc | head -n 1)
[ -n "$pc" ] || fail "no mmapio.pc installed"
[ -n "$(find "$dest" -name libmmapio.pc)" ] || fail "no libmmapio.pc (alias) installed"
for f in man8/mmapiod.8 man1/mmapioctl.1 man3/mmapio.3 man3/libmmapio.3 \
         include/mmapio.h; do
    [ -n "$(find "$dest" -path "*/$f*" | head -n 1)" ] || fail "$f not installed"
done
for f in mmapiod.service mmapiod.socket mmapiod.conf; do
    [ -n "$(find "$dest" -name "$f" | head -n 1)" ] || fail "$f not installed"
done

# The installed tree seen through the sysroot, as a cross build would.
export PKG_CONFIG_PATH=$(dirname "$pc")
export PKG_CONFIG_SYSROOT_DIR=$dest
pkg-config --exists mmapio || fail "pkg-config does not find mmapio"
pkg-config --exists libmmapio || fail "pkg-config does not find libmmapio"
[ "$(pkg-config --modversion mmapio)" = "$(pkg-config --modversion libmmapio)" ] ||
    fail "mmapio and libmmapio differ in version"
flags=$(pkg-config --cflags --libs mmapio) || fail "pkg-config --cflags --libs mmapio"
case "$flags" in *"$dest"*) ;; *) fail "flags do not point into the DESTDIR: $flags" ;; esac
${CC:-cc} -std=c11 -Wall -Werror "$src/tests/install/consumer.c" $flags \
    -o "$tmp/consumer" || fail "cannot build consumer.c with: $flags"
${CC:-cc} -std=c11 -Wall -Werror "$src/tests/install/consumer.c" \
    $(pkg-config --cflags --libs libmmapio) -o "$tmp/consumer-old" ||
    fail "cannot build with pkg-config libmmapio"

libdir=$(dirname "$(find "$dest" -name 'libmmapio.so.0' | head -n 1)")
export LD_LIBRARY_PATH=$libdir
ldd "$tmp/consumer" | grep -q "$libdir/libmmapio.so" ||
    fail "consumer does not load the installed library: $(ldd "$tmp/consumer")"

unset MMAPIO_SOCKET
out=$("$tmp/consumer") || fail "consumer without a daemon: $out"
case "$out" in *"$(pkg-config --modversion mmapio)"*) ;; *) fail "consumer printed: $out" ;; esac

# Against the installed daemon, on a socket and root of this test's own.
mmapiod=$(find "$dest" -name mmapiod -type f -perm -u+x | head -n 1)
[ -n "$mmapiod" ] || fail "no mmapiod installed"
"$mmapiod" --socket "$tmp/run/mmapiod.sock" --root "$tmp/root" 2>"$tmp/daemon.log" &
daemon=$!
for _ in $(seq 1 200); do
    [ -S "$tmp/run/mmapiod.sock" ] && break
    kill -0 "$daemon" 2>/dev/null || { cat "$tmp/daemon.log"; fail "mmapiod exited"; }
    sleep 0.05
done
export MMAPIO_SOCKET=$tmp/run/mmapiod.sock
out=$("$tmp/consumer" 2>&1) || fail "consumer against mmapiod: $out"
case "$out" in *"read back hello"*) ;; *) fail "consumer printed: $out" ;; esac
mmapioctl=$(find "$dest" -name mmapioctl -type f | head -n 1)
"$mmapioctl" status >/dev/null || fail "the installed mmapioctl cannot reach mmapiod"
echo "ok: built with $flags"
