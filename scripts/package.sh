#!/usr/bin/env bash
# Builds Debian packages of Sloth with dpkg-deb: sloth-apiserver,
# sloth-controllers and sloth-agent (each with its systemd unit from
# manifests/systemd; sloth-agent with sloth-supervise, the per-run
# supervisor it starts from beside itself) and slothctl.
#
#   scripts/package.sh [--from DIR|--build] [--out DIR] [--version V]
#                      [--compression xz|gzip|zstd|none]
#
# --build runs `cargo build --release` first; --from DIR takes the binaries
# from DIR (default: target/release). Packages land in --out (default
# target/debian) as NAME_VERSION_ARCH.deb. Install with
# `dpkg -i target/debian/sloth-apiserver_*.deb ...` (docs/operations.md).
#
# The maintainer scripts honour DPKG_ROOT, so that
# `dpkg --root DIR --force-script-chrootless -i` installs into DIR without
# touching this machine's users or services (tests/tests/install.rs does).
set -euo pipefail

fail() {
    echo "package.sh: $*" >&2
    exit 2
}

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$script_dir")
target=${CARGO_TARGET_DIR:-$repo/target}

from=""
build=0
out=$target/debian
version=""
compression=xz
while [ $# -gt 0 ]; do
    case "$1" in
        --from) [ $# -ge 2 ] || fail "--from needs a directory"; from=$2; shift 2 ;;
        --build) build=1; shift ;;
        --out) [ $# -ge 2 ] || fail "--out needs a directory"; out=$2; shift 2 ;;
        --version) [ $# -ge 2 ] || fail "--version needs a version"; version=$2; shift 2 ;;
        --compression) [ $# -ge 2 ] || fail "--compression needs a type"; compression=$2; shift 2 ;;
        -h|--help) sed -n '6,11p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
        *) fail "unknown argument $1" ;;
    esac
done
[ -n "$from" ] && [ "$build" = 1 ] && fail "give --from DIR or --build, not both"
command -v dpkg-deb >/dev/null || fail "dpkg-deb not found (apt-get install dpkg)"

if [ -z "$version" ]; then
    version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' "$repo/Cargo.toml")
fi
[ -n "$version" ] || fail "cannot read the version from Cargo.toml: give --version"
arch=$(dpkg --print-architecture)

if [ "$build" = 1 ]; then
    (cd "$repo" && cargo build --release --quiet --bins \
        -p sloth-apiserver -p sloth-controllers -p sloth-agent -p sloth-supervisor -p slothctl)
    from=$target/release
fi
from=${from:-$target/release}
for binary in sloth-apiserver sloth-controllers sloth-agent sloth-supervise slothctl; do
    [ -x "$from/$binary" ] || fail "$from/$binary is missing: build first (--build) or give --from DIR"
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"

# control NAME DESCRIPTION: the package's control file.
control() {
    local name=$1 description=$2 size
    size=$(du -k -s "$work/$name" | cut -f1)
    mkdir -p "$work/$name/DEBIAN"
    cat >"$work/$name/DEBIAN/control" <<EOF
Package: $name
Version: $version
Architecture: $arch
Maintainer: Sloth maintainers <sloth@localhost>
Installed-Size: $size
Section: admin
Priority: optional
Homepage: https://sloth.invalid/
Description: $description
 Sloth is a Kubernetes-style task-automation control plane: an apiserver,
 controllers, agents that run shell and Lua payloads, and slothctl.
EOF
}

# maintainer_scripts NAME ROLE USER: postinst, prerm and postrm of a service
# package. Under DPKG_ROOT (an install into another root) only files and
# directories are made; users and services are this machine's business.
maintainer_scripts() {
    local name=$1 role=$2 user=$3
    cat >"$work/$name/DEBIAN/postinst" <<EOF
#!/bin/sh
set -e
root="\${DPKG_ROOT:-}"
if [ "\$1" = configure ]; then
    mkdir -p "\$root/var/lib/sloth/$role"
    chmod 0750 "\$root/var/lib/sloth/$role"
    if [ -z "\$root" ] && [ "$user" != root ]; then
        if ! getent passwd $user >/dev/null; then
            useradd --system --home-dir /var/lib/sloth --no-create-home \\
                --shell /usr/sbin/nologin --user-group $user
        fi
        chown $user: /var/lib/sloth/$role
    fi
    if [ -z "\$root" ] && [ -d /run/systemd/system ]; then
        systemctl daemon-reload || true
        systemctl enable sloth-$role.service || true
        # An upgrade restarts a running service; a first install leaves it
        # to the operator (flags go in /etc/sloth/$role.env first).
        if [ -n "\$2" ]; then systemctl try-restart sloth-$role.service || true; fi
    fi
fi
exit 0
EOF
    cat >"$work/$name/DEBIAN/prerm" <<EOF
#!/bin/sh
set -e
if [ -z "\${DPKG_ROOT:-}" ] && [ "\$1" = remove ] && [ -d /run/systemd/system ]; then
    systemctl disable --now sloth-$role.service || true
fi
exit 0
EOF
    cat >"$work/$name/DEBIAN/postrm" <<EOF
#!/bin/sh
set -e
if [ -z "\${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
fi
if [ "\$1" = purge ]; then
    rm -rf "\${DPKG_ROOT:-}/var/lib/sloth/$role"
fi
exit 0
EOF
    chmod 0755 "$work/$name/DEBIAN/postinst" "$work/$name/DEBIAN/prerm" "$work/$name/DEBIAN/postrm"
    echo "/etc/sloth/$role.env" >"$work/$name/DEBIAN/conffiles"
}

# service_package ROLE USER DESCRIPTION
service_package() {
    local role=$1 user=$2 description=$3 name=sloth-$1
    local root=$work/$name
    mkdir -p "$root/usr/bin" "$root/lib/systemd/system" "$root/etc/sloth"
    install -m 0755 "$from/$name" "$root/usr/bin/$name"
    # The agent starts each payload under sloth-supervise, found beside it.
    if [ "$role" = agent ]; then
        install -m 0755 "$from/sloth-supervise" "$root/usr/bin/sloth-supervise"
    fi
    sed -e 's#/usr/local/bin/#/usr/bin/#' \
        "$repo/manifests/systemd/$name.service" >"$root/lib/systemd/system/$name.service"
    chmod 0644 "$root/lib/systemd/system/$name.service"
    cat >"$root/etc/sloth/$role.env" <<EOF
# Settings of $name.service: SLOTH_* variables (SLOTH_SERVER=...) and
# RUST_LOG, read at start. Flags go on ExecStart through a drop-in:
#   systemctl edit $name
EOF
    chmod 0644 "$root/etc/sloth/$role.env"
    control "$name" "$description"
    maintainer_scripts "$name" "$role" "$user"
    dpkg-deb --root-owner-group "-Z$compression" --build "$root" "$out/${name}_${version}_${arch}.deb" >/dev/null
    echo "$out/${name}_${version}_${arch}.deb"
}

service_package apiserver sloth "Sloth apiserver (API, embedded store, REST and metrics)"
service_package controllers sloth "Sloth controllers (scheduler, workflows, agent lifecycle, gc)"
service_package agent root "Sloth agent (runs the TaskRuns bound to this machine)"

mkdir -p "$work/slothctl/usr/bin"
install -m 0755 "$from/slothctl" "$work/slothctl/usr/bin/slothctl"
control slothctl "Sloth command-line client (kubectl-like)"
dpkg-deb --root-owner-group "-Z$compression" --build "$work/slothctl" "$out/slothctl_${version}_${arch}.deb" >/dev/null
echo "$out/slothctl_${version}_${arch}.deb"
