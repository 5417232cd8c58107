#!/usr/bin/env bash
# make dev: the local AWS endpoint in the background, then the Dagster UI in the foreground.
# Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
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
echo "Dagster UI: http://127.0.0.1:${DAGSTER_PORT:-3000}  (Ctrl-C stops everything)"
$BIN/dagster dev -w workspace.yaml -h 127.0.0.1 -p "${DAGSTER_PORT:-3000}"
