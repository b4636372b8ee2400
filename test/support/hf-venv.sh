#!/usr/bin/env bash
# Prints the path of a Python venv holding huggingface_hub (the real Hugging Face client the Hub
# stand-in is tested with), creating it when missing. Used by .ci/run, so CI has it before the
# tests, and by test/support/hf-client.ts on a developer's machine.
#
# One venv per machine and client version (FERRY_HF_VENV overrides the place), shared by every
# checkout; a lock keeps two runs from building it at once. pip installs from the package index
# pip is configured with; with no internet, --retries 0 makes an unreachable index fail at once
# instead of after minutes of back-off, so a configured local index (extra-index-url) answers.
set -euo pipefail

version="${FERRY_HF_HUB_VERSION:-2.0.0}"
dir="${FERRY_HF_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/ferry/hf-venv-$version}"

ready() {
  [ -f "$dir/.ferry-ready" ] && [ -x "$dir/bin/python" ] &&
    "$dir/bin/python" -c "import sys, huggingface_hub as h; sys.exit(h.__version__ != '$version')" 2>/dev/null
}

if ! ready; then
  command -v python3 >/dev/null 2>&1 || { echo "python3 is not installed" >&2; exit 1; }
  python3 -c 'import venv, ensurepip' 2>/dev/null ||
    { echo "python3 cannot make a venv (on Debian: apt-get install -y python3-venv)" >&2; exit 1; }
  mkdir -p "$(dirname "$dir")"
  exec 9>"$dir.lock"
  flock 9
  if ! ready; then
    rm -rf "$dir"
    python3 -m venv "$dir" >&2
    "$dir/bin/pip" install --quiet --retries 0 --disable-pip-version-check "huggingface_hub==$version" >&2 ||
      { echo "pip could not install huggingface_hub==$version" >&2; exit 1; }
    touch "$dir/.ferry-ready"
  fi
fi
echo "$dir"
