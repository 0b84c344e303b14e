#!/usr/bin/env bash
# Quick start: builds Sloth, starts an apiserver on the embedded store,
# applies the examples in manifests/examples/ and shows them with slothctl.
# The apiserver keeps running afterwards; the script prints how to stop it.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/deps.sh
ensure_build_deps

state=.sloth/quickstart
grpc_addr=${SLOTH_QUICKSTART_LISTEN:-127.0.0.1:50053}
http_addr=${SLOTH_QUICKSTART_HTTP:-127.0.0.1:8080}
mkdir -p "$state"

echo "== building (cargo build --release --bins)"
cargo build --release --bins --quiet
bin=$PWD/target/release

# A previous quick start's apiserver would hold the ports: stop it first.
if [ -f "$state/apiserver.pid" ]; then
  old=$(cat "$state/apiserver.pid")
  if kill -0 "$old" 2>/dev/null; then
    echo "== stopping the previous quick-start apiserver (pid $old)"
    kill -TERM "$old"
    for _ in $(seq 1 100); do kill -0 "$old" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$state/apiserver.pid"
fi

echo "== starting sloth-apiserver on $grpc_addr (HTTP $http_addr), data in $state/data"
"$bin/sloth-apiserver" --listen "$grpc_addr" --http-listen "$http_addr" \
  --data-dir "$state/data" >"$state/apiserver.out" 2>"$state/apiserver.log" &
echo $! >"$state/apiserver.pid"
for _ in $(seq 1 100); do
  grep -q '^listening' "$state/apiserver.out" 2>/dev/null && break
  if ! kill -0 "$(cat "$state/apiserver.pid")" 2>/dev/null; then
    echo "error: sloth-apiserver exited; its log:" >&2
    cat "$state/apiserver.log" >&2
    exit 1
  fi
  sleep 0.1
done
grep -q '^listening' "$state/apiserver.out" || { echo "error: apiserver did not start" >&2; exit 1; }

export SLOTH_SERVER=http://$grpc_addr
slothctl() { "$bin/slothctl" "$@"; }

echo
echo "\$ slothctl apply -f manifests/examples/"
slothctl apply -f manifests/examples/
echo
echo "\$ slothctl get workflows"
slothctl get workflows
echo
echo "\$ slothctl get taskruns -l app=hello -o wide"
slothctl get taskruns -l app=hello -o wide
echo
echo "\$ slothctl describe workflow hello-pipeline"
slothctl describe workflow hello-pipeline
echo
echo "\$ curl -s http://$http_addr/readyz"
curl -fsS "http://$http_addr/readyz" 2>/dev/null || true
echo

cat <<MSG

Sloth's apiserver is running (pid $(cat "$state/apiserver.pid"), log $state/apiserver.log).
Use slothctl against it:

  export PATH=$bin:\$PATH SLOTH_SERVER=$SLOTH_SERVER
  slothctl get taskruns
  slothctl get workflows -o yaml

Stop it with:  kill \$(cat $state/apiserver.pid)
Agents and controllers that run these objects arrive in the next releases;
today Sloth stores, validates and watches them.
MSG
