# Shared by packaging/install-test and packaging/boot-test (sourced, not run).
#
# A fresh copy of the cached Debian root (packaging/test-root) per test, removed at exit;
# helpers to run commands in it; pass/fail bookkeeping that prints every check.

set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${PATHDNS_CACHE:-/var/cache/pathdns-ci}
test_name=$(basename "$0")

checks=0
failures=0

say() {
    echo "$test_name [$(printf '%3d' "$SECONDS")s]: $*" >&2
}

pass() {
    checks=$((checks + 1))
    say "ok: $*"
}

fail() {
    checks=$((checks + 1))
    failures=$((failures + 1))
    say "FAIL: $*"
}

# check DESCRIPTION COMMAND...: passes when COMMAND succeeds.
check() {
    local what=$1
    shift
    if "$@"; then pass "$what"; else fail "$what"; fi
}

# Stops the test at once (the steps after it depend on it).
die() {
    failures=$((failures + 1))
    say "FAIL: $*"
    finish
}

finish() {
    if [[ $failures -gt 0 ]]; then
        say "$failures of $checks checks FAILED"
        exit 1
    fi
    say "all $checks checks passed"
    exit 0
}

cleanups=()
run_cleanups() {
    local i
    for ((i = ${#cleanups[@]} - 1; i >= 0; i--)); do
        eval "${cleanups[i]}" || true
    done
}
trap run_cleanups EXIT

if [[ $(id -u) -ne 0 ]]; then
    {
        echo
        echo "################################################################################"
        echo "## $test_name SKIPPED: it needs root (debootstrap, chroot, systemd-nspawn)."
        echo "## Run it as root, or the whole suite: sudo tests/run.sh"
        echo "################################################################################"
    } >&2
    exit 0
fi

pristine=$("$repo/packaging/test-root") || exit 1

# A fresh copy of the root, on the cache's file system; removed at exit. Copies left by a
# run that was killed are removed after a day.
mkdir -p "$cache"
find "$cache" -maxdepth 1 -name 'work-*' -mmin +1440 -exec rm -rf {} + 2>/dev/null || true
work=$(mktemp -d "$cache/work-$test_name.XXXXXX")
cleanups+=("rm -rf '$work'")
root=$work/root
cp -a "$pristine" "$root"

# Runs a command inside the root (not booted), with a clean environment.
in_root() {
    chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 \
        DEBIAN_FRONTEND=noninteractive "$@"
}

# Builds (or reuses) the packages: the .deb of this checkout, path on stdout.
build_deb() {
    "$repo/packaging/build-deb" "$@" | tail -n1
}
