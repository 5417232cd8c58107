#!/usr/bin/env bash
# ensure_debian.sh COMMAND PACKAGE: install Debian's PACKAGE (apt-get) unless COMMAND is already on
# PATH, then print COMMAND's path. The tests use it for tools a fresh machine lacks.
set -euo pipefail
command_name=$1 package=$2
if ! command -v "$command_name" >/dev/null; then
  echo "ensure_debian: installing Debian's $package for $command_name" >&2
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq >&2
  $SUDO apt-get install -y -qq --no-install-recommends "$package" >&2
fi
command -v "$command_name"
