#!/usr/bin/env bash
# make dev: the local AWS endpoint and the live producer in the background, then the Dagster UI in
# the foreground. Ctrl-C stops all three.
#
# The product runs itself here: the producer sends the simulated fleet to Kinesis, and the raw
# source is Kinesis, so `kinesis_arrival_sensor` starts a run for each hour once it has ended
# (plus a short allowed lateness). So that models and anomalies are real from the start, the first
# start lands the previous 26 hours of the fleet through gold as one run (`iot-assets
# seed-history`, skipped while the lake holds silver) before the UI starts: every device then has
# a day of history, so it is past learning, and the automation sensor runs the models and the
# anomaly log for the latest hour.
# With IOT_RAW_SOURCE=historian, a local SQL historian replaces the producer (docs/sources.md: SQL historian source).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
BIN="$ROOT/.venv/bin"
# The partitions start where the data starts: on the first start, two days back, kept in
# .dev/dev.env for later starts (not a .env in the checkout, which every Dagster process started
# there, the tests' webserver too, would load). Production sets IOT_PARTITIONS_START itself.
# IOT_DEV_DIR moves .dev (its logs and state) elsewhere.
DEV="${IOT_DEV_DIR:-$ROOT/.dev}"
mkdir -p "$DEV"
if [[ -z "${IOT_PARTITIONS_START:-}" ]]; then
  if [[ ! -f "$DEV/dev.env" ]] || ! grep -q '^IOT_PARTITIONS_START=' "$DEV/dev.env"; then
    echo "IOT_PARTITIONS_START=$(date -u -d '2 days ago' +%Y-%m-%d)-00:00" >>"$DEV/dev.env"
  fi
  set -a && source "$DEV/dev.env" && set +a
fi
echo "partitions start: $IOT_PARTITIONS_START"
export IOT_RAW_SOURCE="${IOT_RAW_SOURCE:-kinesis}"
# The live producer sends each reading as it is made, so an hour is complete half a minute after
# it ends; the sensor looks every 15 s. An hour then reaches gold and the anomaly log (one
# hour_end_job run) within about 2 minutes of its end (docs/automation.md: Latency).
export IOT_ALLOWED_LATENESS_MINUTES="${IOT_ALLOWED_LATENESS_MINUTES:-0.5}"
export IOT_KINESIS_SENSOR_INTERVAL_SECONDS="${IOT_KINESIS_SENSOR_INTERVAL_SECONDS:-15}"
pids=()
# Ctrl-C, or a SIGTERM to this script alone (a supervisor, `timeout`, `kill`), stops everything:
# Dagster first, so that its runs and sensors stop before the endpoint they use, then the rest.
# Dagster (the history run, then dg dev) runs in its own session, started through `dagster_cmd`:
# - bash runs a trap only once the foreground command has ended, so Dagster runs in the background;
# - a script's background command starts with SIGINT ignored, and Dagster gives SIGTERM SIGINT's
#   handler, so it would ignore both: SIGINT's default is restored before it starts;
# - its processes (code server, run workers) are a process group of their own (a new session, or
#   the group a shell with job control gave it), stopped as one, and a Ctrl-C reaches them through
#   this script's trap alone.
# A step with a retry policy takes an interrupt as a reason to retry, so a run may not end on one:
# what still runs 30 s after the SIGTERM is killed, and the next start ends its run (`make dev` runs
# `iot-assets instance init` first).
dagster_cmd=("$BIN/python" -c 'import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.getpgrp() == os.getpid() or os.setsid(); os.execv(sys.argv[1], sys.argv[1:])')
dagster="" # the Dagster process running now; its pid is its process group's
wait_for() { # wait_for TENTHS_OF_A_SECOND KILL-ARGS...: until `kill -0 ARGS` fails, at most that long
  local n=$1
  shift
  while ((n-- > 0)) && kill -0 "$@" 2>/dev/null; do sleep 0.1; done
}
stop_dagster() {
  [[ -n "$dagster" ]] || return 0
  if kill -0 "$dagster" 2>/dev/null; then
    kill -TERM "$dagster" 2>/dev/null || true
    wait_for 300 "$dagster"
  fi
  if kill -0 -- "-$dagster" 2>/dev/null; then # what is left of its process group
    kill -TERM -- "-$dagster" 2>/dev/null || true
    wait_for 50 -- "-$dagster"
    if kill -0 -- "-$dagster" 2>/dev/null; then
      echo "Dagster (process group $dagster) did not stop on SIGTERM: killed; the next start ends its runs"
      kill -KILL -- "-$dagster" 2>/dev/null || true
    fi
  fi
  wait "$dagster" 2>/dev/null || true
  dagster=""
}
cleanup() {
  stop_dagster
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM

$BIN/iot-assets local-aws >"$DEV/local-aws.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  grep -q "local AWS\|already listens" "$DEV/local-aws.log" 2>/dev/null && break
  kill -0 "${pids[0]}" 2>/dev/null || { cat "$DEV/local-aws.log"; exit 1; }
  sleep 0.2
done
echo "local AWS: $(tail -n 1 "$DEV/local-aws.log")"

# One long-lived Spark for every run: Spark's own Connect server on 127.0.0.1, with the same
# configuration as a run's own session, reached through IOT_SPARK_REMOTE. A run then pays neither a
# JVM start nor the JIT warm-up of the code it runs, most of an hour's end at 50 devices
# (docs/automation.md: Latency). IOT_DEV_SPARK=local gives each run its own JVM instead, as a
# deployment without a Connect server runs.
if [[ "${IOT_DEV_SPARK:-connect}" == connect && -z "${IOT_SPARK_REMOTE:-}" ]]; then
  port="${IOT_DEV_CONNECT_PORT:-15002}"
  $BIN/iot-assets connect-server --port "$port" --log "$DEV/spark-connect.log" >"$DEV/connect-server.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 300); do
    grep -q "^Spark Connect on" "$DEV/connect-server.log" 2>/dev/null && break
    if ! kill -0 "${pids[-1]}" 2>/dev/null; then
      tail -n 5 "$DEV/connect-server.log"
      echo "Spark Connect did not start ($DEV/spark-connect.log); another port: IOT_DEV_CONNECT_PORT, or a JVM per run: IOT_DEV_SPARK=local"
      exit 1
    fi
    sleep 1
  done
  grep -q "^Spark Connect on" "$DEV/connect-server.log" || { echo "Spark Connect did not start in 300 s; see $DEV/spark-connect.log"; exit 1; }
  export IOT_SPARK_REMOTE="sc://127.0.0.1:$port"
  echo "Spark: a Connect server for every run, $IOT_SPARK_REMOTE (log: $DEV/spark-connect.log; IOT_DEV_SPARK=local for a JVM per run)"
elif [[ -n "${IOT_SPARK_REMOTE:-}" ]]; then
  echo "Spark: the Spark Connect server in IOT_SPARK_REMOTE" # not the URL: it may carry a token
else
  echo "Spark: a JVM in each run (local[*])"
fi

if [[ "$IOT_RAW_SOURCE" == historian ]]; then
  # The SQL historian instead of the live producer: a local PostgreSQL (.dev/historian) holding this
  # month of the simulated fleet; historian_arrival_sensor backfills it as one run, then follows it.
  eval "$($BIN/iot-assets historian server start --dir "$DEV/historian" --port 5433)"
  historian_up=1
  stop_historian() { # once: a signal's trap runs it, then the EXIT trap
    [[ -n "$historian_up" ]] || return 0
    historian_up=""
    $BIN/iot-assets historian server stop --dir "$DEV/historian" || true
  }
  trap 'cleanup; stop_historian' EXIT
  trap 'cleanup; stop_historian; exit 130' INT
  trap 'cleanup; stop_historian; exit 143' TERM
  # In the background, so that a signal stops it: bash runs a trap only once a foreground command has ended.
  $BIN/iot-assets historian seed --months 1 >"$DEV/historian-seed.log" 2>&1 &
  pids+=($!)
  wait "${pids[-1]}" || { cat "$DEV/historian-seed.log"; exit 1; }
  unset 'pids[-1]' # done: its pid is no longer ours to signal
  echo "historian: $IOT_HISTORIAN_JDBC_URL, this month seeded ($DEV/historian-seed.log)"
elif [[ -n "${IOT_SENSOR_CATALOGUE:-}" ]]; then
  # Your own fleet: the simulated producer only speaks the shipped catalogue's channels.
  echo "sensor catalogue: $IOT_SENSOR_CATALOGUE (no simulated producer; use iot-assets import, or send your records to Kinesis)"
else
  $BIN/iot-assets simulate >"$DEV/simulate.log" 2>&1 &
  pids+=($!)
  echo "live producer: $DEV/simulate.log (raw source: $IOT_RAW_SOURCE, allowed lateness: $IOT_ALLOWED_LATENESS_MINUTES min)"
  # Its progress lines ([label] ...) show here; the run's own log goes to .dev/seed-history.log.
  # In the background as Dagster below, so that a signal stops it; a failure does not stop make dev.
  : >"$DEV/seed-history.log" # emptied first: the tail below may open it before the seeder does
  "${dagster_cmd[@]}" "$BIN/iot-assets" seed-history --hours 26 >>"$DEV/seed-history.log" 2>&1 &
  dagster=$!
  tail -n +1 -f --pid="$dagster" "$DEV/seed-history.log" | grep --line-buffered '^history:\|^\[' &
  wait "$dagster" || true
  wait $! || true
  stop_dagster # what is left of its process group
fi
echo "Dagster UI: http://127.0.0.1:${DAGSTER_PORT:-3000}  (Ctrl-C stops everything)"
# The project is a `dg` project ([tool.dg] in pyproject.toml): its code location is iot_assets.definitions.
# dg runs the project in the active environment; its own scaffolding registry warns about a preview class.
export VIRTUAL_ENV="$PWD/.venv" PATH="$PWD/.venv/bin:$PATH"
export PYTHONWARNINGS="${PYTHONWARNINGS:-ignore::Warning:dagster.components.scaffold.scaffold}"
# It starts from $DAGSTER_HOME, naming the workspace file: run from the checkout, Dagster warns that
# the checkout's dagster.yaml (the template `make instance` copies into $DAGSTER_HOME) is not used.
workspace="$ROOT/workspace.yaml"
cd "${DAGSTER_HOME:?make dev sets DAGSTER_HOME}"
"${dagster_cmd[@]}" "$BIN/dg" dev --host 127.0.0.1 --port "${DAGSTER_PORT:-3000}" -w "$workspace" &
dagster=$!
status=0
wait "$dagster" || status=$?
exit "$status" # the EXIT trap stops what is left of its process group
