#!/usr/bin/env bash
# Installs PostgreSQL's server binaries with apt-get when initdb is missing; the tests start their own server.
set -euo pipefail

have_initdb() {
  command -v initdb >/dev/null 2>&1 && return 0
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null
}

if have_initdb; then
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-postgres: initdb not found and apt-get is unavailable; install PostgreSQL's server package" >&2
  exit 1
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi

echo "ensure-postgres: installing postgresql with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >/dev/null
$sudo apt-get install -y -qq --no-install-recommends postgresql >/dev/null

if ! have_initdb; then
  echo "ensure-postgres: postgresql installed but initdb is still missing" >&2
  exit 1
fi
