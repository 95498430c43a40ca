#!/usr/bin/env bash
# Installs Debian's Chromium with apt-get when no Chromium is on PATH; the web studio's browser tests drive it.
set -euo pipefail

have_chromium() {
  if [ -n "${IMAGINEER_CHROMIUM:-}" ] && [ -x "${IMAGINEER_CHROMIUM}" ]; then
    return 0
  fi
  for name in chromium chromium-browser google-chrome google-chrome-stable; do
    command -v "$name" >/dev/null 2>&1 && return 0
  done
  return 1
}

if have_chromium; then
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-chromium: no chromium found and apt-get is unavailable; install Chromium (or set IMAGINEER_CHROMIUM to its path)" >&2
  exit 1
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "ensure-chromium: no chromium found and not root (no sudo); install the chromium package" >&2
    exit 1
  fi
  sudo="sudo"
fi

# Playwright drives this binary directly: its own browser download is never used.
echo "ensure-chromium: installing chromium with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >/dev/null
$sudo apt-get install -y -qq chromium >/dev/null

if ! have_chromium; then
  echo "ensure-chromium: chromium installed but still not on PATH" >&2
  exit 1
fi
