#!/bin/sh
# mmapiod.exe as a Windows service under wine's service control manager:
# installed with `sc create` (binPath with --service), started, asked for
# its status through the library (mmapioctl.exe), stopped with `sc stop`
# (SERVICE_CONTROL_STOP: the stop event's path) and deleted. Also: --service
# outside the service control manager refuses with a clear message. The
# service logs to ROOT\.mmapiod\mmapiod.log (no --log given): after the
# stop it holds its start, the clients' connections and its stop, each
# line timestamped (checked by test_log_win.exe check-log).
# Then: a service given a bad option stops with the service-specific
# code 2 and the reason in its log; a service given no --root makes
# %ProgramData%\mmapio (this build's wine prefix's, removed first and
# after) with the DACL of a shared root (test_log_win.exe check-root) and
# serves it; a default root that is a link (a Unix symbolic link, wine's
# reparse point) is refused: the service stops with code 3, a console
# daemon (%LOCALAPPDATA%\mmapio) exits 3 saying so, and nothing is made
# where the link points.
# (Wine runs every service as the one user: obj= "NT SERVICE\..." is
# accepted and not applied, so the account itself is not tested here.)
#   service_win.sh WINE DAEMON.exe MMAPIOCTL.exe TEST_LOG.exe
set -eu
wine=$1 daemon=$2 ctl=$3 checker=$4
name=mmapiod-test-$$
pipe='\\.\pipe\'$name
d=$(mktemp -d)
pd=$("$wine" winepath -u 'C:\ProgramData\mmapio' 2>/dev/null)
cleanup() {
    for s in "$name" "$name-bad" "$name-def" "$name-link"; do
        "$wine" sc stop "$s" >/dev/null 2>&1 || true
        "$wine" sc delete "$s" >/dev/null 2>&1 || true
    done
    rm -rf "$d" "$pd"
    [ -z "$link" ] || rm -f "$link"
}
link=
trap cleanup EXIT
fail() { echo "service_win.sh: $*" >&2; exit 1; }
# Waits until the service answers on $pipe (sc start returns at
# START_PENDING); its status in $out.
answers() {
    i=0
    until out=$("$wine" "$ctl" --socket "$pipe" --json status 2>&1); do
        i=$((i + 1))
        [ $i -lt 300 ] || fail "the service never answered: $out"
        sleep 0.1
    done
}
# Waits for service $1 to stop with service-specific exit code $2 (0:
# stopped without an error).
stopped_with() {
    i=0
    until "$wine" sc query "$1" | grep -q 'STOPPED' &&
          "$wine" sc query "$1" | grep -q "SERVICE_EXIT_CODE *: $2 "; do
        i=$((i + 1))
        [ $i -lt 300 ] || fail "$1 did not stop with code $2: $("$wine" sc query "$1")"
        sleep 0.1
    done
    w=1066
    [ "$2" != 0 ] || w=0
    "$wine" sc query "$1" | grep -q "WIN32_EXIT_CODE *: $w " ||
        fail "$1: WIN32_EXIT_CODE not $w: $("$wine" sc query "$1")"
}

if "$wine" "$daemon" --service --socket "$pipe" --root "Z:$d" 2>"$d/err"; then
    fail "--service ran outside the service control manager"
fi
grep -q "not started by the service control manager" "$d/err" ||
    fail "--service outside the SCM said: $(cat "$d/err")"

mkdir "$d/root"
bin="$("$wine" winepath -w "$daemon" 2>/dev/null | tr -d '\r')"
root="$("$wine" winepath -w "$d/root" 2>/dev/null | tr -d '\r')"
"$wine" sc create "$name" binPath= "$bin --service --verbose --socket $pipe --root $root" \
    obj= "NT SERVICE\\$name" >/dev/null || fail "sc create"
"$wine" sc start "$name" >/dev/null || fail "sc start"
answers
echo "$out" | grep -q '"root"' || fail "status: $out"
"$wine" sc query "$name" | grep -q RUNNING || fail "not RUNNING: $("$wine" sc query "$name")"
"$wine" "$ctl" --socket "$pipe" create anon:svc 4K >/dev/null || fail "create through the service"
"$wine" sc stop "$name" >/dev/null || fail "sc stop"
i=0
until "$wine" sc query "$name" | grep -q STOPPED; do
    i=$((i + 1))
    [ $i -lt 600 ] || fail "never STOPPED: $("$wine" sc query "$name")"
    sleep 0.1
done
"$wine" sc query "$name" | grep -q 'WIN32_EXIT_CODE *: 0 ' || fail "stopped with an error"
if "$wine" "$ctl" --socket "$pipe" status >/dev/null 2>&1; then
    fail "the pipe is still served after sc stop"
fi
log="$d/root/.mmapiod/mmapiod.log"
[ -f "$log" ] || fail "no log at $log: $(ls -la "$d/root" "$d/root/.mmapiod" 2>&1)"
# The checker links libmmapio.dll, which lies beside mmapioctl.exe.
WINEPATH="Z:$(cd "$(dirname "$ctl")" && pwd)" "$wine" "$checker" check-log "Z:$log" "info: serving $pipe" "debug: process " \
    "info: stopping" "info: stopped" || { cat "$log" >&2; fail "the service's log, above"; }

# A bad option: code 2, and the reason in the log under its root.
mkdir "$d/root2"
root2="$("$wine" winepath -w "$d/root2" 2>/dev/null | tr -d '\r')"
"$wine" sc create "$name-bad" binPath= "$bin --service --socket $pipe --root $root2 --bogus 3" \
    >/dev/null || fail "sc create (bad option)"
"$wine" sc start "$name-bad" >/dev/null 2>&1 || true
stopped_with "$name-bad" 2
WINEPATH="Z:$(cd "$(dirname "$ctl")" && pwd)" "$wine" "$checker" check-log \
    "Z:$d/root2/.mmapiod/mmapiod.log" "error: --bogus 3: unknown" ||
    fail "the bad option's reason is not in the log: $(cat "$d/root2/.mmapiod/mmapiod.log" 2>&1)"

# No --root: %ProgramData%\mmapio, made with a shared root's DACL.
[ -n "$pd" ] || fail "no Unix path for C:\\ProgramData\\mmapio"
rm -rf "$pd"
"$wine" sc create "$name-def" binPath= "$bin --service --socket $pipe" >/dev/null ||
    fail "sc create (default root)"
"$wine" sc start "$name-def" >/dev/null || fail "sc start (default root)"
answers
echo "$out" | grep -Eq '"root": *"C:(\\){1,2}ProgramData(\\){1,2}mmapio"' ||
    fail "not served from C:\\ProgramData\\mmapio: $out"
[ -d "$pd" ] || fail "$pd not made"
WINEPATH="Z:$(cd "$(dirname "$ctl")" && pwd)" "$wine" "$checker" check-root \
    'C:\ProgramData\mmapio' || fail "the default root's DACL, above"
"$wine" sc stop "$name-def" >/dev/null || fail "sc stop (default root)"
stopped_with "$name-def" 0
[ -f "$pd/.mmapiod/mmapiod.log" ] || fail "no log in the default root"

# A default root that is a link: refused, nothing made where it points.
rm -rf "$pd"
mkdir "$d/elsewhere"
ln -s "$d/elsewhere" "$pd"
"$wine" sc create "$name-link" binPath= "$bin --service --socket $pipe" >/dev/null ||
    fail "sc create (linked root)"
"$wine" sc start "$name-link" >/dev/null 2>&1 || true
stopped_with "$name-link" 3
rm -f "$pd"
la=$("$wine" cmd /c 'echo %LOCALAPPDATA%' 2>/dev/null | tr -d '\r')
lau=$("$wine" winepath -u "$la\\mmapio" 2>/dev/null)
if [ -n "$la" ] && [ -n "$lau" ] && [ ! -e "$lau" ] && [ ! -L "$lau" ]; then
    ln -s "$d/elsewhere" "$lau"
    link=$lau
    rc=0
    "$wine" "$daemon" --socket "$pipe" 2>"$d/err" || rc=$?
    rm -f "$link"
    link=
    [ $rc -eq 3 ] || fail "a console daemon on a linked default root: exit $rc: $(cat "$d/err")"
    grep -q "is a link, junction or other reparse point: refused" "$d/err" ||
        fail "a console daemon on a linked default root said: $(cat "$d/err")"
else
    printf '%s\n' "skipped: the console's default root ($lau) is there already"
fi
[ -z "$(ls -A "$d/elsewhere")" ] || fail "made through the link: $(ls -A "$d/elsewhere")"
echo "ok: installed, started, answered, stopped, logged; a bad option logged (code 2);" \
    "the default root made shared; a linked default root refused (code 3)"
