#!/usr/bin/env bash
# The whole pathdns test suite: formatting, lints, unit and integration tests, doc tests,
# supply-chain checks (cargo deny), a fuzz smoke run, and the packages: both built and
# checked, installed into a fresh Debian root, and booted.
#
#   sudo tests/run.sh
#
# On a fresh Debian 12 machine with Rust (rustup, with rustfmt and clippy) this is the only
# command needed. Run as root (or through sudo) it first installs the Debian packages the
# integration tests drive, if any is missing:
#
#   dnsutils (dig)  dnsmasq-base  unbound  iproute2 (ip)  nftables (nft)  procps  curl
#   prometheus-alertmanager  prometheus (promtool)  docker.io (dockerd, docker, docker-init)
#   docker-registry  busybox-static (busybox)  chromium  fonts-dejavu-core  nsd
#
# and those the package steps need:
#
#   lintian  rpm  cpio  debootstrap  systemd-container (systemd-nspawn)
#
# plus cargo-deb and cargo-generate-rpm (cargo install --locked, pinned versions, only when
# missing) and cargo-deny (cargo install --locked, only when missing). `cargo deny check bans
# licenses sources` runs every time; `advisories` needs the RustSec database from GitHub and
# is SKIPPED, loudly, when GitHub cannot be reached. The fuzz smoke run (fuzz/run --smoke,
# 45 s per libFuzzer target) runs when rustup has a nightly toolchain and cargo-fuzz is
# installed, and is SKIPPED, loudly, otherwise; tests/fuzz_smoke.rs runs the same fuzz
# target bodies on the stable toolchain in every run either way.
#
# The package steps (packaging/check-packages, install-test, boot-test; see
# packaging/README.md) need root; without it they are skipped, loudly. The Debian root they
# use is made once by debootstrap from this machine's apt mirror and kept outside the
# repository (/var/cache/pathdns-ci), so later runs take seconds for it.
#
# Services are never started by that install, and no test relies on one: the tests start
# their own dnsmasq and unbound processes, on loopback or inside network namespaces that they
# create and remove themselves. Network-namespace tests need root; without it they are
# skipped (loudly), and nothing can be installed.
#
# Every step runs even when an earlier one fails; the exit status is 0 only when all pass.

set -euo pipefail

if [[ $# -gt 0 ]]; then
    echo "usage: tests/run.sh   (no arguments; run it as root, e.g. sudo tests/run.sh)" >&2
    exit 2
fi

cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$(pwd)

# Tools live in sbin directories that a non-root user's PATH (and sometimes sudo's) lacks.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

is_root=false
[[ $(id -u) -eq 0 ]] && is_root=true

bold="" plain=""
if [[ -t 2 ]]; then
    bold=$'\033[1m' plain=$'\033[0m'
fi

# Every section's wall time, printed at the end (the whole run should stay within 12
# minutes on the 2-core CI machine; this shows where the time goes).
stage_names=()
stage_seconds=()
stage_started=$SECONDS
run_started=$SECONDS
close_stage() {
    if [[ ${#stage_names[@]} -gt 0 ]]; then
        stage_seconds+=($((SECONDS - stage_started)))
    fi
}
section() {
    close_stage
    stage_names+=("$*")
    stage_started=$SECONDS
    printf '\n%s==> %s%s\n' "$bold" "$*" "$plain" >&2
}
print_stage_times() {
    close_stage
    local i
    echo "Time per stage:" >&2
    for ((i = 0; i < ${#stage_names[@]}; i++)); do
        printf '  %5d s  %s\n' "${stage_seconds[i]:-0}" "${stage_names[i]}" >&2
    done
    printf '  %5d s  total\n' "$((SECONDS - run_started))" >&2
}

# An executable program on PATH (bash's `command -v` also reports non-executable files).
have() {
    local path
    path=$(command -v "$1" 2>/dev/null) || return 1
    [[ -f $path && -x $path ]]
}

loud() {
    {
        echo
        echo "################################################################################"
        while [[ $# -gt 0 ]]; do
            echo "## $1"
            shift
        done
        echo "################################################################################"
        echo
    } >&2
}

# --- Rust toolchain ---------------------------------------------------------------------

# `sudo` resets PATH, so a rustup toolchain installed by the invoking user is not found.
# Use that user's toolchain and cargo home (its config, e.g. a crates.io mirror, applies).
adopted_cargo_home=""
if ! have cargo && [[ -n ${SUDO_USER:-} ]]; then
    user_home=$(getent passwd "$SUDO_USER" | cut -d: -f6)
    if [[ -n $user_home && -x $user_home/.cargo/bin/cargo ]]; then
        export PATH="$user_home/.cargo/bin:$PATH"
        export CARGO_HOME="${CARGO_HOME:-$user_home/.cargo}"
        adopted_cargo_home=$CARGO_HOME
        if [[ -d $user_home/.rustup ]]; then
            export RUSTUP_HOME="${RUSTUP_HOME:-$user_home/.rustup}"
        fi
    fi
fi
if ! have cargo; then
    loud "cargo not found." \
        "Install Rust with rustup (https://rustup.rs), then run this again;" \
        "under sudo, the invoking user's ~/.cargo/bin is used automatically."
    exit 1
fi
missing_components=()
cargo fmt --version >/dev/null 2>&1 || missing_components+=(rustfmt)
cargo clippy --version >/dev/null 2>&1 || missing_components+=(clippy)
if [[ ${#missing_components[@]} -gt 0 ]]; then
    loud "Missing Rust components: ${missing_components[*]}" \
        "Install them with: rustup component add ${missing_components[*]}"
    exit 1
fi

# Files that a root run creates in the target dir (and in an adopted cargo home) are given
# back to the owner of the repository (or of an outside CARGO_TARGET_DIR), so that later
# builds as that user still work.
target_dir=${CARGO_TARGET_DIR:-$repo/target}
restore_owner=()
if $is_root; then
    reference=$repo
    if [[ -n ${CARGO_TARGET_DIR:-} ]]; then
        reference=$target_dir
        [[ -d $reference ]] || reference=$(dirname "$target_dir")
    fi
    owner=$(stat -c %u:%g "$reference" 2>/dev/null || echo 0:0)
    [[ $owner == 0:0 ]] || restore_owner+=("$owner" "$target_dir")
    if [[ -n $adopted_cargo_home ]]; then
        owner=$(stat -c %u:%g "$adopted_cargo_home")
        [[ $owner == 0:0 ]] || restore_owner+=("$owner" "$adopted_cargo_home")
    fi
fi

# --- Debian packages for the integration tests ------------------------------------------

# Files that package builds create in the repository (packaging/build/).
packaging_build=$repo/packaging/build
if $is_root; then
    owner=$(stat -c %u:%g "$repo" 2>/dev/null || echo 0:0)
    [[ $owner == 0:0 ]] || restore_owner+=("$owner" "$packaging_build")
    # And those the fuzz steps create (fuzz/target, fuzz/corpus, fuzz/artifacts, Cargo.lock).
    [[ $owner == 0:0 ]] || restore_owner+=("$owner" "$repo/fuzz")
fi

created_policy_rc_d=false
cleanup() {
    if $created_policy_rc_d; then
        rm -f /usr/sbin/policy-rc.d
    fi
    local i
    for ((i = 0; i < ${#restore_owner[@]}; i += 2)); do
        if [[ -d ${restore_owner[i + 1]} ]]; then
            chown -R "${restore_owner[i]}" "${restore_owner[i + 1]}" 2>/dev/null || true
        fi
    done
}
trap cleanup EXIT

# apt-get installs the given Debian packages without starting any service: there may be no
# init system (containers, CI), and the tests run their own processes. policy-rc.d exit 101
# = "action forbidden".
apt_install_quietly() {
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        created_policy_rc_d=true
    fi
    export DEBIAN_FRONTEND=noninteractive RUNLEVEL=1
    apt-get update
    apt-get install -y --no-install-recommends "$@"
    if $created_policy_rc_d; then
        rm -f /usr/sbin/policy-rc.d
        created_policy_rc_d=false
    fi
}

# Fails loudly unless every tool named after `--` is now present; before it, the packages
# that were installed for them.
require_installed() {
    local packages=() tool
    while [[ $1 != -- ]]; do
        packages+=("$1")
        shift
    done
    shift
    for tool in "$@"; do
        if ! have "$tool"; then
            loud "$tool is still missing after installing ${packages[*]}"
            exit 1
        fi
    done
}

# Installing a package that ships a service enables it for the next boot; a test run should
# not leave one behind. `disable_new_service HAD UNIT WHY`: unless HAD is true, disables UNIT.
disable_new_service() {
    local had=$1 unit=$2 why=$3
    if ! $had && [[ -d /run/systemd/system ]] && have systemctl; then
        if systemctl disable "$unit" >/dev/null 2>&1; then
            echo "note: disabled $unit ($why; never started)" >&2
        fi
    fi
}

section "Test dependencies (dig, dnsmasq, unbound, ip, nft, pgrep, python3, curl, prometheus-alertmanager, promtool, dockerd, docker, docker-init, docker-registry, busybox, chromium, nsd)"
# chromium and fonts-dejavu-core: tests/status_page.rs renders the status page headless (a
# font, so that its screenshot has legible text). nsd: the VPC-side resolver of
# tests/discovery.rs.
packages=(dnsutils dnsmasq-base unbound iproute2 nftables procps python3 curl prometheus-alertmanager prometheus docker.io docker-registry busybox-static chromium fonts-dejavu-core nsd)
# docker-registry: the binary of Debian's package (dpkg -L docker-registry) is /usr/bin/docker-registry.
test_tools=(dig dnsmasq unbound ip nft pgrep python3 curl prometheus-alertmanager promtool dockerd docker docker-init docker-registry busybox chromium nsd)
missing_tools=()
for tool in "${test_tools[@]}"; do
    have "$tool" || missing_tools+=("$tool")
done

if [[ ${#missing_tools[@]} -eq 0 ]]; then
    echo "all present: $(command -v "${test_tools[@]}" | tr '\n' ' ')" >&2
elif ! $is_root; then
    loud "MISSING TEST TOOLS: ${missing_tools[*]}" \
        "" \
        "Run this script as root, which installs them:   sudo tests/run.sh" \
        "or install them yourself:" \
        "  sudo apt-get install --no-install-recommends ${packages[*]}"
    exit 1
else
    echo "missing: ${missing_tools[*]}; installing from Debian: ${packages[*]}" >&2
    had_unbound=false
    have unbound && had_unbound=true
    had_alertmanager=false
    have prometheus-alertmanager && had_alertmanager=true
    had_prometheus=false
    have promtool && had_prometheus=true
    had_docker=false
    have dockerd && had_docker=true
    had_registry=false
    have docker-registry && had_registry=true
    had_nsd=false
    have nsd && had_nsd=true
    apt_install_quietly "${packages[@]}"
    # Not a new resolver on 127.0.0.1:53 left behind, nor an Alertmanager or a Prometheus.
    disable_new_service "$had_unbound" unbound.service "installed for the tests only"
    disable_new_service "$had_alertmanager" prometheus-alertmanager.service \
        "installed for the tests only"
    # The prometheus package is installed for promtool only (tests/control.rs).
    disable_new_service "$had_prometheus" prometheus.service "installed for promtool only"
    # tests/container_host.rs starts its own dockerd and registry inside its namespaces.
    disable_new_service "$had_docker" docker.service "installed for the tests only"
    disable_new_service "$had_docker" docker.socket "installed for the tests only"
    disable_new_service "$had_docker" containerd.service "installed for the tests only"
    disable_new_service "$had_registry" docker-registry.service "installed for the tests only"
    # tests/discovery.rs starts its own NSD inside a namespace.
    disable_new_service "$had_nsd" nsd.service "installed for the tests only"
    require_installed "${packages[@]}" -- "${missing_tools[@]}"
fi

# Tools of the package steps, which run as root only (without root they are skipped).
if $is_root; then
    section "Package step tools (lintian, rpm, cpio, debootstrap, systemd-nspawn)"
    package_step_packages=(lintian rpm cpio debootstrap systemd-container)
    package_step_tools=(lintian rpm rpm2cpio cpio debootstrap systemd-nspawn)
    missing_tools=()
    for tool in "${package_step_tools[@]}"; do
        have "$tool" || missing_tools+=("$tool")
    done
    if [[ ${#missing_tools[@]} -eq 0 ]]; then
        echo "all present: $(command -v "${package_step_tools[@]}" | tr '\n' ' ')" >&2
    else
        echo "missing: ${missing_tools[*]}; installing from Debian: ${package_step_packages[*]}" >&2
        apt_install_quietly "${package_step_packages[@]}"
        require_installed "${package_step_packages[@]}" -- "${missing_tools[@]}"
    fi
fi

if $is_root; then
    if ! unshare --net true 2>/dev/null; then
        loud "WARNING: running as root, but network namespaces cannot be created here" \
            "(a container without CAP_SYS_ADMIN?). Network-namespace tests cannot run."
    fi
else
    loud "WARNING: NOT RUNNING AS ROOT." \
        "Tests that build network namespaces (test hosts, routes and broken paths for" \
        "probes and failover) will be SKIPPED; loopback tests still run." \
        "For the whole suite run:   sudo tests/run.sh"
fi

# --- Package builders ---------------------------------------------------------------------

# Pinned, so that every run builds the packages with the same tools; installed only when
# missing or at another version (cargo keeps them in its home, so later runs skip this).
cargo_deb_version=3.8.0
cargo_rpm_version=0.21.1
section "Package builders (cargo-deb $cargo_deb_version, cargo-generate-rpm $cargo_rpm_version)"
to_install=()
[[ $(cargo deb --version 2>/dev/null) == "cargo-deb $cargo_deb_version" ]] ||
    to_install+=("cargo-deb@$cargo_deb_version")
[[ $(cargo generate-rpm --version 2>/dev/null) == "cargo-generate-rpm $cargo_rpm_version" ]] ||
    to_install+=("cargo-generate-rpm@$cargo_rpm_version")
if [[ ${#to_install[@]} -eq 0 ]]; then
    echo "present: $(cargo deb --version), $(cargo generate-rpm --version)" >&2
else
    start=$SECONDS
    if cargo install --locked "${to_install[@]}"; then
        echo "installed ${to_install[*]} in $((SECONDS - start)) s" >&2
    else
        loud "cargo install --locked ${to_install[*]} FAILED: the package steps will fail."
    fi
fi

# --- Supply-chain checker ----------------------------------------------------------------

section "Supply-chain checker (cargo-deny)"
if cargo deny --version >/dev/null 2>&1; then
    echo "present: $(cargo deny --version)" >&2
else
    start=$SECONDS
    if cargo install --locked cargo-deny; then
        echo "installed $(cargo deny --version) in $((SECONDS - start)) s" >&2
    else
        loud "cargo install --locked cargo-deny FAILED: the cargo deny steps will fail."
    fi
fi

# --- The suite --------------------------------------------------------------------------

section "Toolchain"
{
    cargo --version
    rustc --version
    cargo fmt --version
    cargo clippy --version
} >&2

export RUST_BACKTRACE=${RUST_BACKTRACE:-1}

failed=()
skipped=()
step() {
    local name=$1
    shift
    section "$name: $*"
    local start=$SECONDS
    if "$@"; then
        echo "--- $name: ok ($((SECONDS - start)) s)" >&2
    else
        echo "--- $name: FAILED (exit $?, $((SECONDS - start)) s)" >&2
        failed+=("$name")
    fi
}

step "format" cargo fmt --all -- --check
# The fuzz crate is a workspace of its own (cargo fmt --all does not reach it).
step "format (fuzz)" rustfmt --edition 2021 --check fuzz/src/lib.rs fuzz/fuzz_targets/*.rs
# The tested binary carries the fault-injection test hooks (Cargo.toml, [features]); the
# packages are built without them, and the second clippy run checks that build too.
step "clippy" cargo clippy --all-targets --all-features --locked -- -D warnings
step "clippy (release features)" cargo clippy --locked -- -D warnings
# Four test threads on two cores: most integration tests wait on sockets, timers and child
# processes, not the CPU, and the 3-minute mutation run holds one thread throughout; with
# the default (one per core) the rest queue behind it (230 s against 183 s measured).
step "tests" cargo test --all-targets --all-features --locked -- --test-threads=4
step "doc tests" cargo test --doc --all-features --locked

# Supply chain (deny.toml): duplicate versions (warnings), licenses, sources. Offline apart
# from the crates.io index. The fuzz crate's graph adds libFuzzer; its lock file follows
# pathdns's, so it is not --locked.
step "cargo deny" cargo deny --locked check bans licenses sources
step "cargo deny (fuzz)" cargo deny --manifest-path fuzz/Cargo.toml check bans licenses sources

# Advisories need the RustSec advisory database, which cargo-deny clones from GitHub. Where
# GitHub cannot be reached: a local copy from an earlier run is used (and called stale),
# else the check is SKIPPED, loudly. Never a silent pass.
advisories_result=ok
deny_advisories() {
    local out
    if out=$(cargo deny --locked check advisories 2>&1); then
        printf '%s\n' "$out" | tail -n 5 >&2
        return 0
    fi
    if ! grep -q "failed to fetch advisory database" <<<"$out"; then
        printf '%s\n' "$out" >&2
        return 1
    fi
    printf '%s\n' "$out" | grep -m1 "failed to fetch" >&2 || true
    local db
    for db in "${CARGO_HOME:-$HOME/.cargo}"/advisory-dbs/*/crates; do
        [[ -d $db ]] || continue
        loud "advisories: GitHub unreachable; checking against the local copy of the" \
            "RustSec database in $(dirname "$db")," \
            "last updated $(git -C "$(dirname "$db")" log -1 --format=%cs 2>/dev/null || echo '(unknown)'): STALE"
        advisories_result="ok against a STALE local database"
        skipped+=("cargo deny advisories against the latest database (GitHub unreachable; a stale local copy was used)")
        cargo deny --offline --locked check advisories
        return
    done
    loud "SKIPPED advisories: advisory database unreachable (GitHub)" \
        "cargo deny check advisories clones https://github.com/RustSec/advisory-db;" \
        "run it where GitHub is reachable (README, Hardening):" \
        "  cargo deny --locked check advisories"
    advisories_result="SKIPPED (advisory database unreachable)"
    skipped+=("cargo deny advisories (advisory database unreachable: GitHub)")
    return 0
}
section "cargo deny advisories: cargo deny --locked check advisories"
start=$SECONDS
if deny_advisories; then
    echo "--- cargo deny advisories: $advisories_result ($((SECONDS - start)) s)" >&2
else
    echo "--- cargo deny advisories: FAILED ($((SECONDS - start)) s)" >&2
    failed+=("cargo deny advisories")
fi

# libFuzzer needs a nightly toolchain and cargo-fuzz; the stable stand-in
# (tests/fuzz_smoke.rs) has already run the same target bodies above.
if fuzz_check=$(fuzz/run --check 2>&1); then
    step "fuzz smoke" fuzz/run --smoke
else
    loud "SKIPPED: fuzz smoke run needs rustup nightly + cargo-fuzz" \
        "(${fuzz_check#fuzz/run: })" \
        "Install: rustup toolchain install nightly && cargo install --locked cargo-fuzz"
    skipped+=("fuzz smoke run (needs rustup nightly + cargo-fuzz)")
fi

# The packages (packaging/README.md): build and check both (lintian, rpm -qlp, unit
# verify and security figure), then the .deb in a fresh Debian root: install, upgrade,
# remove, purge; then booted under systemd in systemd-nspawn.
if $is_root; then
    step "packages" packaging/check-packages
    step "install test" packaging/install-test
    step "boot test" packaging/boot-test
else
    loud "PACKAGE STEPS SKIPPED: NOT ROOT." \
        "Building and checking the .deb and .rpm, the install test in a Debian root and" \
        "the boot test in systemd-nspawn need root:   sudo tests/run.sh"
fi

section "Summary"
print_stage_times
for note in "${skipped[@]}"; do
    echo "SKIPPED: $note" >&2
done
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "FAILED: ${failed[*]}" >&2
    exit 1
fi
if $is_root; then
    echo "all passed" >&2
else
    echo "all passed (network-namespace tests and package steps SKIPPED: not root)" >&2
fi
