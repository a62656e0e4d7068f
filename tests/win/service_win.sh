#!/bin/sh
# mmapiod.exe as a Windows service under wine's service control manager:
# installed with `sc create` (binPath with --service), started, asked for
# its status through the library (mmapioctl.exe), stopped with `sc stop`
# (SERVICE_CONTROL_STOP: the stop event's path) and deleted. Also: --service
# outside the service control manager refuses with a clear message. The
# service logs to ROOT\.mmapiod\mmapiod.log (no --log given): after the
# stop it holds its start, the clients' connections and its stop, each
# line timestamped (checked by test_log_win.exe check-log).
# (Wine runs every service as the one user: obj= "NT SERVICE\..." is
# accepted and not applied, so the account itself is not tested here.)
#   service_win.sh WINE DAEMON.exe MMAPIOCTL.exe TEST_LOG.exe
set -eu
wine=$1 daemon=$2 ctl=$3 checker=$4
name=mmapiod-test-$$
pipe='\\.\pipe\'$name
d=$(mktemp -d)
cleanup() {
    "$wine" sc stop "$name" >/dev/null 2>&1 || true
    "$wine" sc delete "$name" >/dev/null 2>&1 || true
    rm -rf "$d"
}
trap cleanup EXIT
fail() { echo "service_win.sh: $*" >&2; exit 1; }

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
# Running once it answers (sc start returns at START_PENDING).
i=0
until out=$("$wine" "$ctl" --socket "$pipe" --json status 2>&1); do
    i=$((i + 1))
    [ $i -lt 300 ] || fail "the service never answered: $out"
    sleep 0.1
done
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
echo "ok: installed, started, answered, stopped, logged"
