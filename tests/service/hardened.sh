#!/bin/bash
# hardened.sh PROGRAM ARGS...: runs PROGRAM (mmapiod) as mmapiod.service
# would see the system: a mount namespace of its own, a /proc that shows
# only processes it may ptrace and no system files (ProtectProc=invisible,
# ProcSubset=pid) and the unit's capability bounding set. Needs root,
# unshare(1) and setpriv(1) (util-linux).
set -e
caps=$(sed -n 's/^CapabilityBoundingSet=//p' "${MMAPIOD_SERVICE:?}" |
       tr 'A-Z' 'a-z' | sed 's/cap_/+/g; s/ /,/g')
exec unshare --mount --propagation private -- bash -c '
    mount -t proc -o hidepid=invisible,subset=pid proc /proc || exit 125
    exec setpriv --bounding-set=-all,'"$caps"' -- "$@"' hardened "$@"
