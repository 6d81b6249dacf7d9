#!/usr/bin/env bash
# Install mlproj for the composite action into an isolated virtual environment.
#
# Usage: setup.sh          install (or reuse) mlproj's venv; outputs mlproj, state-dir
#        setup.sh plan     install nothing; output where the venv and uv's cache live and the
#                          actions/cache key for them (the step before actions/cache runs this)
#
# Environment (set by action.yml from the inputs, never interpolated into the script):
#   MLPROJ_VERSION   '' = the action's own checkout ($GITHUB_ACTION_PATH) when it holds mlproj's
#                    pyproject.toml, else (the standalone action: action.yml and this script
#                    only) release $MLPROJ_PINNED_VERSION (default: the pinned_version below);
#                    'installed' = the mlproj already on PATH; '1.2.3' / '>=1.2' = that release
#                    from the package index; a path, file:, git+ or https:// URL = requirement as given.
#   MLPROJ_PYTHON    interpreter for the venv (default python3; must be >= 3.10).
#   MLPROJ_BACKEND   'databricks' adds the databricks extra (the run and github extras are always in).
#   MLPROJ_EXTRA     whitespace-separated extra requirements (backend plugins), installed as given.
#   MLPROJ_ACTION_DIR  where venvs, uv's cache and state live (default $RUNNER_TEMP/mlproj-action,
#                    the same path in every job on GitHub-hosted runners; act's RUNNER_TEMP is not).
# uv's cache is $MLPROJ_ACTION_DIR/uv-cache (UV_CACHE_DIR), so actions/cache can save it.
# Plan outputs: cache (true/false), venv, uv-cache, key, restore-prefix.
# Install outputs: mlproj (the executable), state-dir (a fresh directory for this invocation's state).
set -euo pipefail

# The release the standalone action installs; equal to mlproj.__version__ (a test checks it).
pinned_version="0.1.0"

now() { if [ -n "${EPOCHREALTIME:-}" ]; then echo "${EPOCHREALTIME/,/.}"; else date +%s; fi; }
started="$(now)"
elapsed() { awk -v a="$started" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

mode="${1:-install}"
root="${MLPROJ_ACTION_DIR:-${RUNNER_TEMP:-${TMPDIR:-/tmp}}/mlproj-action}"
mkdir -p "$root"
python="${MLPROJ_PYTHON:-python3}"
version="${MLPROJ_VERSION:-}"
extras="run,github"
if [ "${MLPROJ_BACKEND:-}" = "databricks" ]; then
  extras="run,github,databricks"
fi

# uv must never download a Python (from GitHub) or read a uv.toml from the workspace.
export UV_PYTHON_DOWNLOADS=never
export UV_NO_CONFIG=1
export UV_CACHE_DIR="$root/uv-cache"

if [ "$version" = "installed" ]; then
  if [ "$mode" = "plan" ]; then
    echo "cache=false" >> "${GITHUB_OUTPUT:-/dev/null}"
    exit 0
  fi
  mlproj_bin="$(command -v mlproj || true)"
  if [ -z "$mlproj_bin" ]; then
    echo "::error title=mlproj::mlproj-version is 'installed' but no mlproj is on PATH"
    exit 1
  fi
else
  source_dir=""
  identity=""
  case "$version" in
    "")
      action_path="${GITHUB_ACTION_PATH:?GITHUB_ACTION_PATH is not set}"
      if [ -f "$action_path/pyproject.toml" ]; then
        source_dir="$action_path"
        spec="${action_path}[$extras]"
        identity="action-checkout[$extras]"  # its files, not its path, go into the key
      else
        spec="mlproj[$extras]==${MLPROJ_PINNED_VERSION:-$pinned_version}"
      fi
      ;;
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
  # One venv per install spec and Python major.minor: the path is the same in every job (RUNNER_TEMP
  # is), so a venv restored by actions/cache is found here.  The key adds what the spec does not
  # pin: the source files when installing from the action's own checkout.
  # (hashed with Python: macOS runners have no sha256sum)
  hashes="$(printf '%s\n' "${identity:-$spec}" "${extra[@]}" | "$python" -c '
import hashlib, os, sys
pyver = "%d.%d" % sys.version_info[:2]
what = sys.stdin.buffer.read() + pyver.encode()
tag = hashlib.sha256(what).hexdigest()[:12]
content = hashlib.sha256(what)
src = sys.argv[1]
if src:
    names = ["pyproject.toml"]
    for top, dirs, files in os.walk(os.path.join(src, "mlproj")):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        names += [os.path.relpath(os.path.join(top, f), src) for f in files if not f.endswith(".pyc")]
    for name in sorted(names):
        with open(os.path.join(src, name), "rb") as fh:
            content.update(name.encode() + b"\0" + hashlib.sha256(fh.read()).digest())
print(pyver, tag, content.hexdigest()[:24])
' "$source_dir")"
  read -r pyver tag key_hash <<< "$hashes"
  venv="$root/venv-$tag"
  mlproj_bin="$venv/bin/mlproj"
  prefix="mlproj-action-${RUNNER_OS:-$(uname -s)}-${RUNNER_ARCH:-$(uname -m)}-py$pyver-$tag-"
  key="$prefix$key_hash"
  if [ "$mode" = "plan" ]; then
    {
      echo "cache=true"
      echo "venv=$venv"
      echo "uv-cache=$UV_CACHE_DIR"
      echo "key=$key"
      echo "restore-prefix=$prefix"
    } >> "${GITHUB_OUTPUT:-/dev/null}"
    echo "mlproj: environment cache key $key"
    exit 0
  fi
  # Reuse only a venv built for this key whose interpreter still runs (a restored venv points at
  # the Python it was made with; a runner image update can move or remove it).
  stamp="$venv/.mlproj-action-key"
  if [ -x "$mlproj_bin" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$key" ] && "$venv/bin/python" -c pass 2>/dev/null; then
    echo "mlproj: reused $venv in $(elapsed) s"
  else
    rm -rf "$venv"
    if command -v uv >/dev/null 2>&1; then
      uv_bin="$(command -v uv)"
      "$uv_bin" venv --quiet --python "$python" "$venv"
    else
      "$python" -m venv "$venv"
      "$venv/bin/python" -m pip install --quiet --disable-pip-version-check uv
      uv_bin="$venv/bin/uv"
    fi
    "$uv_bin" pip install --quiet --python "$venv/bin/python" "$spec" "${extra[@]}"
    echo "$key" > "$stamp"
    echo "mlproj: installed $spec into $venv in $(elapsed) s"
  fi
fi

state_dir="$(mktemp -d "$root/state.XXXXXXXX")"
"$mlproj_bin" --version
{
  echo "mlproj=$mlproj_bin"
  echo "state-dir=$state_dir"
} >> "${GITHUB_OUTPUT:-/dev/null}"
