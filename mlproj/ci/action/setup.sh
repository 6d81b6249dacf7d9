#!/usr/bin/env bash
# Install mlproj for the composite action into an isolated virtual environment.
#
# Environment (set by action.yml from the inputs, never interpolated into the script):
#   MLPROJ_VERSION   '' = the action's own checkout ($GITHUB_ACTION_PATH); 'installed' = the mlproj
#                    already on PATH; '1.2.3' / '>=1.2' = that release from the package index;
#                    a path, file:, git+ or https:// URL = pip/uv requirement as given.
#   MLPROJ_PYTHON    interpreter for the venv (default python3; must be >= 3.10).
#   MLPROJ_BACKEND   'databricks' adds the databricks extra (the run and github extras are always in).
#   MLPROJ_EXTRA     whitespace-separated extra requirements (backend plugins), installed as given.
# Outputs: mlproj (the executable), state-dir (a fresh directory for this invocation's state).
set -euo pipefail

root="${RUNNER_TEMP:-${TMPDIR:-/tmp}}/mlproj-action"
mkdir -p "$root"
state_dir="$(mktemp -d "$root/state.XXXXXXXX")"
python="${MLPROJ_PYTHON:-python3}"
version="${MLPROJ_VERSION:-}"
extras="run,github"
if [ "${MLPROJ_BACKEND:-}" = "databricks" ]; then
  extras="run,github,databricks"
fi

# uv must never download a Python (from GitHub) or read a uv.toml from the workspace.
export UV_PYTHON_DOWNLOADS=never
export UV_NO_CONFIG=1

if [ "$version" = "installed" ]; then
  mlproj_bin="$(command -v mlproj || true)"
  if [ -z "$mlproj_bin" ]; then
    echo "::error title=mlproj::mlproj-version is 'installed' but no mlproj is on PATH"
    exit 1
  fi
else
  case "$version" in
    "") spec="${GITHUB_ACTION_PATH:?GITHUB_ACTION_PATH is not set}[$extras]" ;;
    /* | ./* | file:* | git+* | http://* | https://*) spec="$version" ;;
    [0-9]*) spec="mlproj[$extras]==$version" ;;
    *) spec="mlproj[$extras]$version" ;;
  esac
  if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
    echo "::error title=mlproj::$python is missing or older than 3.10 (set the python input or use actions/setup-python)"
    exit 1
  fi
  extra=()
  if [ -n "${MLPROJ_EXTRA:-}" ]; then
    read -r -a extra <<< "$MLPROJ_EXTRA"
  fi
  # One venv per install spec, reused when the action runs twice in a job.
  # (hashed with Python: macOS runners have no sha256sum)
  tag="$(printf '%s\n' "$spec" "${extra[@]}" | "$python" -c \
    'import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read() + sys.version.encode()).hexdigest()[:12])')"
  venv="$root/venv-$tag"
  mlproj_bin="$venv/bin/mlproj"
  if [ ! -x "$mlproj_bin" ]; then
    started=$SECONDS
    if command -v uv >/dev/null 2>&1; then
      uv_bin="$(command -v uv)"
      "$uv_bin" venv --quiet --python "$python" "$venv"
    else
      "$python" -m venv "$venv"
      "$venv/bin/python" -m pip install --quiet --disable-pip-version-check uv
      uv_bin="$venv/bin/uv"
    fi
    "$uv_bin" pip install --quiet --python "$venv/bin/python" "$spec" "${extra[@]}"
    echo "mlproj: installed $spec into $venv in $((SECONDS - started)) s"
  fi
fi

"$mlproj_bin" --version
{
  echo "mlproj=$mlproj_bin"
  echo "state-dir=$state_dir"
} >> "${GITHUB_OUTPUT:-/dev/null}"
