# Sourced by scripts/test.sh and examples/demo.sh: `need_packages PKG...` installs
# with apt-get the Debian packages of the list that are missing. As root it installs
# them; otherwise through sudo when there is one, else it prints the exact command
# to run and fails. On a system without dpkg it only says what it could not check.

need_packages() {
    if ! command -v dpkg-query >/dev/null 2>&1; then
        echo "warning: no dpkg here, so nothing was checked; needed (Debian names): $*" >&2
        return 0
    fi
    local missing=() pkg
    for pkg in "$@"; do
        case "$(dpkg-query -W -f '${Status}' "$pkg" 2>/dev/null)" in
            *" installed") ;;
            *) missing+=("$pkg") ;;
        esac
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "== installing the missing Debian packages: ${missing[*]}"
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        if ! command -v sudo >/dev/null 2>&1; then
            echo "error: ${missing[*]} missing, and installing needs root; as root, run:" >&2
            echo "  apt-get update && apt-get install -y ${missing[*]}" >&2
            return 1
        fi
        sudo=(sudo)
    fi
    # Some of the packages are daemons (haproxy, nginx, redis, stunnel) that the tests
    # start themselves: Debian's policy-rc.d keeps their services from starting
    # during the install (and from holding ports such as 80).
    local policy=/usr/sbin/policy-rc.d ours=
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\n# scripts/packages.sh: no service starts during its install\nexit 101\n' |
            "${sudo[@]}" tee "$policy" >/dev/null && "${sudo[@]}" chmod 755 "$policy" && ours=1
    fi
    local status=0
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" || status=1
    [ -n "$ours" ] && "${sudo[@]}" rm -f "$policy"
    [ "$status" -eq 0 ] || {
        echo "error: installing ${missing[*]} failed (the output above says why); the command:" >&2
        echo "  ${sudo[*]}${sudo:+ }apt-get update && ${sudo[*]}${sudo:+ }apt-get install -y ${missing[*]}" >&2
        return 1
    }
}
