#!/usr/bin/env bash
# Make PostgreSQL's server binaries available (Debian's `postgresql` package) and print their directory.
# Used by the production-instance test and by deployments/production/README.md; no Docker needed.
set -euo pipefail

find_bindir() {
  if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
    dirname "$(readlink -f "$(command -v initdb)")"
    return 0
  fi
  # Debian installs the server outside PATH, under /usr/lib/postgresql/<major>/bin.
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
  [[ -n "$dir" && -x "$dir/initdb" && -x "$dir/pg_ctl" ]] && echo "$dir"
}

if ! find_bindir >/dev/null; then
  echo "ensure_postgres: installing Debian's postgresql package" >&2
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq >&2
  # --no-install-recommends: the server and client only; the package's default cluster is not used.
  $SUDO apt-get install -y -qq --no-install-recommends postgresql >&2
fi
find_bindir || { echo "ensure_postgres: initdb/pg_ctl not found after installing postgresql" >&2; exit 1; }
