# Installs what building Sloth needs, only when missing. Sourced by scripts.

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_install() {
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "error: $* missing and apt-get is not available; install it by hand" >&2
    return 1
  fi
  if [ -z "${SLOTH_APT_UPDATED:-}" ]; then
    as_root apt-get update -qq
    SLOTH_APT_UPDATED=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_build_deps() {
  if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo is not installed; install Rust from https://rustup.rs first" >&2
    return 1
  fi
  if ! command -v protoc >/dev/null 2>&1; then
    echo "installing protobuf-compiler (protoc)..." >&2
    apt_install protobuf-compiler
  fi
}

# etcd for the tests that run the etcd store backend (Debian's etcd-server)
# and HAProxy for the load-balancer test.
ensure_test_deps() {
  if ! command -v etcd >/dev/null 2>&1; then
    echo "installing etcd-server (etcd)..." >&2
    apt_install etcd-server
  fi
  if ! command -v haproxy >/dev/null 2>&1; then
    echo "installing haproxy (the load balancer of the HA tests)..." >&2
    apt_install haproxy
  fi
  # Debian's chromium and chromedriver for the dashboard's browser tests.
  if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    echo "installing chromium chromium-driver (the dashboard's browser tests)..." >&2
    apt_install chromium chromium-driver
  fi
}
