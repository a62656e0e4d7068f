# shellcheck shell=bash
# deps.sh: sourced by scripts/run and scripts/test.
#
# ensure_packages PKG...: installs the Debian packages that `dpkg -s` does
# not report as installed, with apt-get (running `apt-get update` first,
# and only when something is missing). Needs root (or sudo) only then.

ensure_packages() {
    local missing=() pkg
    for pkg in "$@"; do
        if ! dpkg -s "$pkg" 2>/dev/null | grep -q '^Status: install ok installed'; then
            missing+=("$pkg")
        fi
    done
    [ "${#missing[@]}" -eq 0 ] && return 0

    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then
            sudo=(sudo)
        else
            echo "missing packages: ${missing[*]} (run as root to install them)" >&2
            return 1
        fi
    fi
    echo "==> installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -q &&
        "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
}
