#!/usr/bin/env bash
# apt_install WHO PKG...: installs Debian packages for the script WHO, the one
# way ci/setup.sh and ci/test-mpich.sh both do it. It assumes nothing beyond
# apt-get: as root it runs apt-get itself; otherwise it needs `sudo` without a
# password prompt (`sudo -n`, so CI never hangs on one) and says what to run
# when there is none. It refreshes the package lists first (a fresh machine
# has none), waits for another apt run's lock instead of failing on it,
# passes DEBIAN_FRONTEND through sudo (which drops the environment), and
# shows apt's own messages when it fails. Meant to be sourced.

apt_install() {
    local who=$1
    shift
    local -a as_root=()
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "$who: missing $*, and this machine has no apt-get: install them (or your system's equivalents) and run again" >&2
        return 1
    fi
    if [ "$(id -u)" -ne 0 ]; then
        if ! command -v sudo >/dev/null 2>&1 || ! sudo -n true 2>/dev/null; then
            echo "$who: missing $*: run \`sudo apt-get install $*\` (or run this as root), then again" >&2
            return 1
        fi
        as_root=(sudo -n)
    fi
    echo "$who: installing $*" >&2
    local log
    log=$(mktemp)
    if ! "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update >"$log" 2>&1 ||
        ! "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 \
            install -y "$@" >>"$log" 2>&1; then
        tail -n 25 "$log" >&2
        rm -f "$log"
        echo "$who: apt-get could not install $* (its messages are above)" >&2
        return 1
    fi
    rm -f "$log"
}
