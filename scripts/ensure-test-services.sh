#!/usr/bin/env bash
# Installs the system services the test suite uses (PostgreSQL, Chromium) when they are missing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ -x "$here/ensure-postgres.sh" ]; then
  bash "$here/ensure-postgres.sh"
fi
if [ -x "$here/ensure-chromium.sh" ]; then
  bash "$here/ensure-chromium.sh"
fi
