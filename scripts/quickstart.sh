#!/usr/bin/env bash
# Quick start: builds Sloth, starts an apiserver on the embedded store with
# its controllers and two local agents with different labels, runs TaskRuns
# on them and shows placement and output. Everything keeps running
# afterwards; the script prints how to stop it.
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

# A previous quick start's processes would hold the ports: stop them first.
for pidfile in "$state"/*.pid; do
  [ -f "$pidfile" ] || continue
  old=$(cat "$pidfile")
  if kill -0 "$old" 2>/dev/null; then
    echo "== stopping $(basename "$pidfile" .pid) from a previous quick start (pid $old)"
    kill -TERM "$old"
    for _ in $(seq 1 100); do kill -0 "$old" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$pidfile"
done

# start NAME READY-PATTERN COMMAND...: runs COMMAND in the background with its
# output in $state/NAME.{out,log}, and waits (bounded) for READY-PATTERN.
start() {
  local name=$1 pattern=$2
  shift 2
  "$@" >"$state/$name.out" 2>"$state/$name.log" &
  echo $! >"$state/$name.pid"
  for _ in $(seq 1 150); do
    grep -q "$pattern" "$state/$name.out" 2>/dev/null && return 0
    if ! kill -0 "$(cat "$state/$name.pid")" 2>/dev/null; then
      echo "error: $name exited; its log:" >&2
      cat "$state/$name.log" >&2
      exit 1
    fi
    sleep 0.1
  done
  echo "error: $name did not start within 15s; its log: $state/$name.log" >&2
  exit 1
}

echo "== starting sloth-apiserver --controllers on $grpc_addr (HTTP $http_addr), data in $state/data"
start apiserver '^listening' "$bin/sloth-apiserver" --controllers \
  --listen "$grpc_addr" --http-listen "$http_addr" --data-dir "$state/data"
server=http://$grpc_addr
echo "== starting agents build-1 (role=build) and test-1 (role=test)"
start agent-build-1 'ready' "$bin/sloth-agent" --name build-1 --server "$server" \
  --labels role=build,zone=local --capacity 2 --bind-address 127.0.0.1 --port 0 \
  --work-dir "$state/agents/build-1"
start agent-test-1 'ready' "$bin/sloth-agent" --name test-1 --server "$server" \
  --labels role=test,zone=local --capacity 2 --bind-address 127.0.0.1 --port 0 \
  --work-dir "$state/agents/test-1"

export SLOTH_SERVER=http://$grpc_addr
slothctl() { "$bin/slothctl" "$@"; }

echo
echo "\$ slothctl get agents"
slothctl get agents
echo
echo "\$ slothctl run --agent build-1 -- sh -c 'echo hello from \$(hostname); exit 3'"
slothctl run --agent build-1 -- sh -c 'echo hello from $(hostname); exit 3' || echo "(exit code $?)"
echo
echo "\$ slothctl run -l role=test -- uname -sr     # the scheduler picks an agent labelled role=test"
slothctl run -l role=test -- uname -sr
echo
echo "\$ slothctl apply -f manifests/examples/"
slothctl apply -f manifests/examples/
echo
echo "\$ slothctl wait taskrun uptime-on-build --timeout 60s && slothctl wait taskrun disk-usage --timeout 60s"
slothctl wait taskrun uptime-on-build --timeout 60s
slothctl wait taskrun disk-usage --timeout 60s
echo
echo "\$ slothctl get taskruns -o wide"
slothctl get taskruns -o wide
echo
echo "\$ slothctl logs uptime-on-build"
slothctl logs uptime-on-build
echo
echo "\$ slothctl wait workflow hello-pipeline --timeout 120s && slothctl wait workflow ci-pipeline --timeout 120s"
slothctl wait workflow hello-pipeline --timeout 120s
slothctl wait workflow ci-pipeline --timeout 120s     # manifests/examples/ci-pipeline.lua
echo
echo "\$ slothctl get workflows"
slothctl get workflows
echo
echo "\$ slothctl get taskruns -l sloth.dev/workflow=hello-pipeline -o wide"
slothctl get taskruns -l sloth.dev/workflow=hello-pipeline -o wide
echo
echo "\$ slothctl describe workflow hello-pipeline"
slothctl describe workflow hello-pipeline
echo
echo "\$ slothctl logs hello-pipeline-package-1"
slothctl logs hello-pipeline-package-1
echo
echo "\$ slothctl logs ci-pipeline-build-1     # a Lua task: log.info and print go to its log"
slothctl logs ci-pipeline-build-1
echo
echo "\$ slothctl wait workflow web-server --timeout 120s     # manifests/examples/web-server.lua"
slothctl wait workflow web-server --timeout 120s || echo "(web-server did not succeed; see slothctl describe workflow web-server)"
echo
echo "\$ slothctl get taskruns -l sloth.dev/workflow=web-server -o wide && slothctl logs web-server-configure-1"
slothctl get taskruns -l sloth.dev/workflow=web-server -o wide
slothctl logs web-server-configure-1
echo

cat <<MSG

Sloth is running: an apiserver with controllers and two agents (logs and
pids in $state/). Use slothctl against it:

  export PATH=$bin:\$PATH SLOTH_SERVER=$SLOTH_SERVER
  slothctl get agents
  slothctl run -l role=test -- uname -a
  slothctl get taskruns -w

Stop everything with:  kill \$(cat $state/*.pid)
Workflows: docs/workflows.md.
MSG
