#!/usr/bin/env bash
# Installs one Sloth role on this machine as a systemd service (the seeds'
# bootstrap, for this project). Running it again upgrades: the binaries and
# the unit are replaced, the environment file is kept, the service restarted.
#
#   scripts/install.sh [--prefix DIR] [--unit-dir DIR] [--no-start]
#                      [--from DIR|--build] [--user NAME] ROLE [FLAGS...]
#
# ROLE is agent, apiserver or controllers; FLAGS are that binary's own and
# go on the unit's ExecStart line. For an agent, `--incus HOST:PORT` stands
# for `--bind-address 0.0.0.0 --report-address HOST:PORT` (an agent in a
# container, reached through a forwarded port).
#
# Where things go (docs/operations.md, Installing):
#   binaries      PREFIX/bin (default PREFIX /usr/local)
#   unit          UNIT_DIR/sloth-ROLE.service (default /etc/systemd/system)
#   settings      /etc/sloth/ROLE.env, or PREFIX/etc/sloth with another PREFIX
#   state         /var/lib/sloth/ROLE, or PREFIX/var/lib/sloth with another PREFIX
# The servers run as the system user `sloth` (created when missing, as root
# with the default prefixes); the agent runs as root (its payloads manage the
# machine). --user NAME picks another user.
set -euo pipefail

usage() {
    sed -n '5,8p' "$0" | sed 's/^# \{0,1\}//' >&2
    echo "ROLE is agent, apiserver or controllers" >&2
    exit 2
}

fail() {
    echo "install.sh: $*" >&2
    exit 2
}

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$script_dir")

prefix=/usr/local
unit_dir=/etc/systemd/system
start=1
from=""
build=0
user=""
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) [ $# -ge 2 ] || fail "--prefix needs a directory"; prefix=$2; shift 2 ;;
        --unit-dir) [ $# -ge 2 ] || fail "--unit-dir needs a directory"; unit_dir=$2; shift 2 ;;
        --no-start) start=0; shift ;;
        --from) [ $# -ge 2 ] || fail "--from needs a directory"; from=$2; shift 2 ;;
        --build) build=1; shift ;;
        --user) [ $# -ge 2 ] || fail "--user needs a name"; user=$2; shift 2 ;;
        -h|--help) usage ;;
        -*) fail "unknown option $1 (options come before ROLE)" ;;
        *) break ;;
    esac
done
[ $# -ge 1 ] || usage
role=$1
shift
case "$role" in
    agent|apiserver|controllers) ;;
    *) fail "ROLE must be agent, apiserver or controllers, not '$role'" ;;
esac
[ -n "$from" ] && [ "$build" = 1 ] && fail "give --from DIR or --build, not both"
case "$prefix" in /*) ;; *) fail "--prefix must be an absolute path, not '$prefix'" ;; esac

binary=sloth-$role
unit=sloth-$role.service
template=$repo/manifests/systemd/$unit
[ -f "$template" ] || template=$script_dir/$unit
[ -f "$template" ] || fail "cannot find the unit template $unit (looked in manifests/systemd and beside the script)"

# With the system prefixes, settings and state live where the FHS puts them;
# with any other prefix everything stays under it (a test, a home install).
case "$prefix" in
    /usr|/usr/local) etc_dir=/etc/sloth; state_dir=/var/lib/sloth; system_prefix=1 ;;
    *) etc_dir=$prefix/etc/sloth; state_dir=$prefix/var/lib/sloth; system_prefix=0 ;;
esac
role_state=$state_dir/$role
env_file=$etc_dir/$role.env
if [ -z "$user" ]; then
    if [ "$role" = agent ]; then user=root; else user=sloth; fi
fi

# The binaries: --build builds them here, --from takes them from DIR,
# otherwise from this checkout's target/release or beside the script.
if [ "$build" = 1 ]; then
    echo "== building $binary (cargo build --release)"
    (cd "$repo" && cargo build --release --quiet -p "$binary" --bin "$binary")
    if [ "$role" = agent ]; then
        (cd "$repo" && cargo build --release --quiet -p sloth-supervisor --bin sloth-supervise)
    fi
    from=${CARGO_TARGET_DIR:-$repo/target}/release
elif [ -z "$from" ]; then
    for dir in "${CARGO_TARGET_DIR:-$repo/target}/release" "$script_dir"; do
        if [ -x "$dir/$binary" ]; then from=$dir; break; fi
    done
    [ -n "$from" ] || fail "no $binary found: give --from DIR or --build"
fi
[ -x "$from/$binary" ] || fail "$from/$binary is missing or not executable"

# The flags for the unit: the role's defaults unless given, --incus expanded.
flags=()
has_flag() {
    local wanted=$1 arg
    for arg in "${flags[@]}"; do
        case "$arg" in "$wanted"|"$wanted"=*) return 0 ;; esac
    done
    return 1
}
while [ $# -gt 0 ]; do
    if [ "$role" = agent ] && [ "$1" = --incus ]; then
        [ $# -ge 2 ] || fail "--incus needs HOST:PORT"
        case "$2" in *:[0-9]*) ;; *) fail "--incus needs HOST:PORT, not '$2'" ;; esac
        flags+=(--bind-address 0.0.0.0 --report-address "$2")
        shift 2
        continue
    fi
    flags+=("$1")
    shift
done
case "$role" in
    apiserver) has_flag --data-dir || flags+=(--data-dir "$role_state/data") ;;
    agent)
        has_flag --name || flags+=(--name "$(hostname -s 2>/dev/null || hostname)")
        has_flag --work-dir || flags+=(--work-dir "$role_state/work")
        ;;
esac

# One word of an ExecStart line: systemd splits on spaces and honours
# double quotes with backslash escapes; `%` and `$` are its specifiers.
systemd_word() {
    local word=$1
    word=${word//\\/\\\\}
    word=${word//\"/\\\"}
    word=${word//%/%%}
    word=${word//\$/\$\$}
    case "$word" in
        ''|*[[:space:]\'\;]*) printf '"%s"' "$word" ;;
        *) printf '%s' "$word" ;;
    esac
}
exec_start="$prefix/bin/$binary"
for arg in "${flags[@]}"; do
    exec_start+=" $(systemd_word "$arg")"
done

echo "== installing $binary into $prefix/bin"
mkdir -p "$prefix/bin" "$unit_dir" "$etc_dir" "$role_state"
# Copy then rename: a running binary is replaced, not written into.
install_binary() {
    local source=$1 target=$2
    cp "$source" "$target.new.$$"
    chmod 0755 "$target.new.$$"
    mv -f "$target.new.$$" "$target"
}
install_binary "$from/$binary" "$prefix/bin/$binary"
# The agent's per-run supervisor, found beside it (without it the agent
# supervises with its own, larger executable: docs/agents.md, Fencing).
if [ "$role" = agent ] && [ -x "$from/sloth-supervise" ]; then
    install_binary "$from/sloth-supervise" "$prefix/bin/sloth-supervise"
fi
if [ -x "$from/slothctl" ]; then
    install_binary "$from/slothctl" "$prefix/bin/slothctl"
fi

# The system user of the servers, only where it can be used: as root, with
# a system prefix. Elsewhere (tests, --prefix in a home) nothing is created.
if [ "$user" != root ]; then
    if id -u "$user" >/dev/null 2>&1; then
        :
    elif [ "$(id -u)" = 0 ] && [ "$system_prefix" = 1 ] && command -v useradd >/dev/null; then
        echo "== creating the system user $user"
        useradd --system --home-dir "$state_dir" --no-create-home \
            --shell /usr/sbin/nologin --user-group "$user"
    else
        echo "note: user $user does not exist and is not created here (prefix $prefix);" \
            "create it or give --user before starting the service" >&2
    fi
    if id -u "$user" >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        chown "$user:" "$role_state"
    fi
fi
chmod 0750 "$role_state"

if [ ! -e "$env_file" ]; then
    cat >"$env_file" <<EOF
# Settings of $unit, kept across upgrades by scripts/install.sh.
# Flags given to install.sh are on the unit's ExecStart line; variables here
# (SLOTH_SERVER=..., RUST_LOG=debug) are read by $binary at start.
EOF
    chmod 0640 "$env_file"
fi

echo "== writing $unit_dir/$unit"
tmp_unit=$(mktemp "$unit_dir/.$unit.XXXXXX")
awk -v exec_start="$exec_start" -v user="$user" -v env_file="$env_file" \
    -v state="$role_state" -v etc_dir="$etc_dir" '
    /^ExecStart=/ { print "ExecStart=" exec_start; next }
    /^User=/ { if (user != "root") print "User=" user; next }
    /^Group=/ { if (user != "root") print "Group=" user; next }
    /^EnvironmentFile=/ { print "EnvironmentFile=-" env_file; next }
    /^WorkingDirectory=/ { print "WorkingDirectory=" state; next }
    /^ReadWritePaths=/ { print "ReadWritePaths=" state; next }
    { print }
' "$template" >"$tmp_unit"
chmod 0644 "$tmp_unit"
mv -f "$tmp_unit" "$unit_dir/$unit"

if [ "$start" = 1 ]; then
    command -v systemctl >/dev/null || fail "systemctl not found: start $binary yourself, or use --no-start"
    echo "== (re)starting $unit"
    systemctl daemon-reload
    systemctl enable "$unit"
    systemctl restart "$unit"
    systemctl --no-pager --lines=0 status "$unit" || true
else
    echo "== not started (--no-start): systemctl daemon-reload && systemctl enable --now $unit"
fi
echo "installed $role: $prefix/bin/$binary, $unit_dir/$unit, settings $env_file"
