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
mkdir -p .dev
if [[ -z "${IOT_PARTITIONS_START:-}" ]]; then
  if [[ ! -f .dev/dev.env ]] || ! grep -q '^IOT_PARTITIONS_START=' .dev/dev.env; then
    echo "IOT_PARTITIONS_START=$(date -u -d '2 days ago' +%Y-%m-%d)-00:00" >>.dev/dev.env
  fi
  set -a && source .dev/dev.env && set +a
fi
echo "partitions start: $IOT_PARTITIONS_START"
export IOT_RAW_SOURCE="${IOT_RAW_SOURCE:-kinesis}"
# The live producer sends each reading as it is made, so an hour is complete half a minute after
# it ends; the sensor looks every 15 s. An hour then reaches gold and the anomaly log (one
# hour_end_job run) within about 2 minutes of its end (docs/automation.md: Latency).
export IOT_ALLOWED_LATENESS_MINUTES="${IOT_ALLOWED_LATENESS_MINUTES:-0.5}"
export IOT_KINESIS_SENSOR_INTERVAL_SECONDS="${IOT_KINESIS_SENSOR_INTERVAL_SECONDS:-15}"
mkdir -p .dev
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

$BIN/iot-assets local-aws >.dev/local-aws.log 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  grep -q "local AWS\|already listens" .dev/local-aws.log 2>/dev/null && break
  kill -0 "${pids[0]}" 2>/dev/null || { cat .dev/local-aws.log; exit 1; }
  sleep 0.2
done
echo "local AWS: $(tail -n 1 .dev/local-aws.log)"

# One long-lived Spark for every run: Spark's own Connect server on 127.0.0.1, with the same
# configuration as a run's own session, reached through IOT_SPARK_REMOTE. A run then pays neither a
# JVM start nor the JIT warm-up of the code it runs, most of an hour's end at 50 devices
# (docs/automation.md: Latency). IOT_DEV_SPARK=local gives each run its own JVM instead, as a
# deployment without a Connect server runs.
if [[ "${IOT_DEV_SPARK:-connect}" == connect && -z "${IOT_SPARK_REMOTE:-}" ]]; then
  port="${IOT_DEV_CONNECT_PORT:-15002}"
  $BIN/iot-assets connect-server --port "$port" --log .dev/spark-connect.log >.dev/connect-server.log 2>&1 &
  pids+=($!)
  for _ in $(seq 1 300); do
    grep -q "^Spark Connect on" .dev/connect-server.log 2>/dev/null && break
    if ! kill -0 "${pids[-1]}" 2>/dev/null; then
      tail -n 5 .dev/connect-server.log
      echo "Spark Connect did not start (.dev/spark-connect.log); another port: IOT_DEV_CONNECT_PORT, or a JVM per run: IOT_DEV_SPARK=local"
      exit 1
    fi
    sleep 1
  done
  grep -q "^Spark Connect on" .dev/connect-server.log || { echo "Spark Connect did not start in 300 s; see .dev/spark-connect.log"; exit 1; }
  export IOT_SPARK_REMOTE="sc://127.0.0.1:$port"
  echo "Spark: a Connect server for every run, $IOT_SPARK_REMOTE (log: .dev/spark-connect.log; IOT_DEV_SPARK=local for a JVM per run)"
elif [[ -n "${IOT_SPARK_REMOTE:-}" ]]; then
  echo "Spark: the Spark Connect server in IOT_SPARK_REMOTE" # not the URL: it may carry a token
else
  echo "Spark: a JVM in each run (local[*])"
fi

if [[ "$IOT_RAW_SOURCE" == historian ]]; then
  # The SQL historian instead of the live producer: a local PostgreSQL (.dev/historian) holding this
  # month of the simulated fleet; historian_arrival_sensor backfills it as one run, then follows it.
  eval "$($BIN/iot-assets historian server start --dir .dev/historian --port 5433)"
  trap 'cleanup; $BIN/iot-assets historian server stop --dir "$ROOT/.dev/historian" || true' EXIT INT TERM
  $BIN/iot-assets historian seed --months 1 >.dev/historian-seed.log 2>&1 || { cat .dev/historian-seed.log; exit 1; }
  echo "historian: $IOT_HISTORIAN_JDBC_URL, this month seeded (.dev/historian-seed.log)"
elif [[ -n "${IOT_SENSOR_CATALOGUE:-}" ]]; then
  # Your own fleet: the simulated producer only speaks the shipped catalogue's channels.
  echo "sensor catalogue: $IOT_SENSOR_CATALOGUE (no simulated producer; use iot-assets import, or send your records to Kinesis)"
else
  $BIN/iot-assets simulate >.dev/simulate.log 2>&1 &
  pids+=($!)
  echo "live producer: .dev/simulate.log (raw source: $IOT_RAW_SOURCE, allowed lateness: $IOT_ALLOWED_LATENESS_MINUTES min)"
  # Its progress lines ([label] ...) show here; the run's own log goes to .dev/seed-history.log.
  $BIN/iot-assets seed-history --hours 26 2>&1 | tee .dev/seed-history.log | grep --line-buffered '^history:\|^\[' || true
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
"$BIN/dg" dev --host 127.0.0.1 --port "${DAGSTER_PORT:-3000}" -w "$workspace"
