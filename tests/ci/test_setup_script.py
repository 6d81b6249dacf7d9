"""The action's install step (mlproj/ci/action/setup.sh) outside act: its modes and its errors.

The full install from the action's own checkout is exercised by every act test.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.helpers import MLPROJ
from tests.helpers.ci import BIN, REPO, clean_environ, read_outputs

SETUP = REPO / 'mlproj' / 'ci' / 'action' / 'setup.sh'
PY = f'{sys.version_info[0]}.{sys.version_info[1]}'


def _setup(tmp_path: Path, *args: str, **env: str) -> tuple[subprocess.CompletedProcess, dict[str, str]]:
    out = tmp_path / 'output'
    out.write_text('')
    full = {**clean_environ(), 'RUNNER_TEMP': str(tmp_path / 'runner-temp'), 'GITHUB_OUTPUT': str(out),
            'GITHUB_ACTION_PATH': str(REPO), **env}
    (tmp_path / 'runner-temp').mkdir(exist_ok=True)
    got = subprocess.run(['bash', '--noprofile', '--norc', '-eo', 'pipefail', str(SETUP), *args], env=full,
                         capture_output=True, text=True, timeout=300)
    return got, read_outputs(out)


def test_installed_mode_uses_the_mlproj_on_path(tmp_path):
    got, out = _setup(tmp_path, MLPROJ_VERSION='installed')
    assert got.returncode == 0, got.stderr
    assert out['mlproj'] == MLPROJ
    state_dir = Path(out['state-dir'])
    assert state_dir.is_dir() and state_dir.parent == tmp_path / 'runner-temp' / 'mlproj-action'
    second = _setup(tmp_path, MLPROJ_VERSION='installed')[1]
    assert second['state-dir'] != out['state-dir']  # a fresh state directory per invocation


def test_installed_mode_without_mlproj_is_an_error(tmp_path):
    got, out = _setup(tmp_path, MLPROJ_VERSION='installed', PATH='/usr/bin:/bin')
    assert got.returncode == 1
    assert "::error title=mlproj::mlproj-version is 'installed' but no mlproj is on PATH" in got.stdout
    assert 'mlproj' not in out


def test_python_too_old_or_missing_is_an_error(tmp_path):
    fake = tmp_path / 'bin'
    fake.mkdir()
    old = fake / 'python3.8'
    old.write_text('#!/bin/sh\nexit 1\n')  # answers the version check like a Python < 3.10
    old.chmod(0o755)
    got, _ = _setup(tmp_path, MLPROJ_PYTHON=str(old), PATH=f'{fake}{os.pathsep}{BIN}{os.pathsep}/usr/bin:/bin')
    assert got.returncode == 1 and 'missing or older than 3.10' in got.stdout


def _action_copy(dest: Path) -> Path:
    """The files of the action's own checkout that setup.sh hashes (pyproject.toml + mlproj/)."""
    dest.mkdir()
    shutil.copy(REPO / 'pyproject.toml', dest / 'pyproject.toml')
    shutil.copytree(REPO / 'mlproj', dest / 'mlproj', ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
    return dest


def test_plan_names_the_venv_and_a_key_that_follows_the_sources(tmp_path):
    action = _action_copy(tmp_path / 'action')
    got, out = _setup(tmp_path, 'plan', GITHUB_ACTION_PATH=str(action), RUNNER_OS='Linux', RUNNER_ARCH='X64')
    assert got.returncode == 0, got.stderr
    root = tmp_path / 'runner-temp' / 'mlproj-action'
    venv = Path(out['venv'])
    assert out['cache'] == 'true' and venv.parent == root and venv.name.startswith('venv-')
    assert out['uv-cache'] == str(root / 'uv-cache')
    assert out['restore-prefix'] == f'mlproj-action-Linux-X64-py{PY}-{venv.name[5:]}-'
    assert out['key'].startswith(out['restore-prefix']) and len(out['key']) == len(out['restore-prefix']) + 24
    assert not venv.exists() and 'state-dir' not in out  # plan installs nothing
    # same sources -> same key; an edited source file -> same venv path, another key
    assert _setup(tmp_path, 'plan', GITHUB_ACTION_PATH=str(action), RUNNER_OS='Linux', RUNNER_ARCH='X64')[1] == out
    (action / 'mlproj' / 'cli.py').write_text((action / 'mlproj' / 'cli.py').read_text() + '\n')
    edited = _setup(tmp_path, 'plan', GITHUB_ACTION_PATH=str(action), RUNNER_OS='Linux', RUNNER_ARCH='X64')[1]
    assert edited['venv'] == out['venv'] and edited['key'] != out['key']
    assert edited['restore-prefix'] == out['restore-prefix']
    # another install spec -> another venv
    other = _setup(tmp_path, 'plan', MLPROJ_VERSION='0.1.0')[1]
    assert other['venv'] != out['venv']


def test_plan_with_installed_mlproj_caches_nothing(tmp_path):
    got, out = _setup(tmp_path, 'plan', MLPROJ_VERSION='installed')
    assert got.returncode == 0 and out == {'cache': 'false'}


def _seconds(stdout: str, verb: str) -> float:
    m = re.search(rf'^mlproj: {verb} .* in ([0-9.]+) s$', stdout, re.M)
    assert m, stdout
    return float(m.group(1))


def test_install_reuse_and_rebuild(tmp_path):
    """From the action's checkout (pyproject.toml beside action.yml); a venv is reused only when its stamp matches the key and its interpreter still runs."""
    got, out = _setup(tmp_path)
    assert got.returncode == 0, got.stdout + got.stderr
    _seconds(got.stdout, 'installed')
    assert f'mlproj: installed {REPO}[run,github] into ' in got.stdout  # the action's own checkout
    venv = Path(out['mlproj']).parent.parent
    assert (venv / '.mlproj-action-key').read_text().strip() == _setup(tmp_path, 'plan')[1]['key']
    again, out2 = _setup(tmp_path)
    assert again.returncode == 0 and out2['mlproj'] == out['mlproj']
    assert _seconds(again.stdout, 'reused') < 5
    # a restored venv whose base interpreter is gone (e.g. another toolcache path): rebuilt
    python = venv / 'bin' / 'python'
    python.unlink()
    python.symlink_to(tmp_path / 'no-such-python')
    broken, _ = _setup(tmp_path)
    assert broken.returncode == 0, broken.stdout + broken.stderr
    _seconds(broken.stdout, 'installed')
    # a venv built for another key (the sources moved on, restored through restore-keys): rebuilt
    (venv / '.mlproj-action-key').write_text('mlproj-action-old\n')
    stale, _ = _setup(tmp_path)
    assert stale.returncode == 0 and 'mlproj: installed ' in stale.stdout


# What the standalone action (a repository holding only the action, `uses: org/mlproj-action@v1`)
# consists of; README.md, "The standalone action", lists the same files.
STANDALONE_FILES = ('action.yml', 'mlproj/ci/action/setup.sh')


def test_pinned_version_is_mlprojs_version():
    import mlproj

    m = re.search(r'^pinned_version="([^"]+)"$', SETUP.read_text(), re.M)
    assert m and m.group(1) == mlproj.__version__


def test_standalone_action_installs_the_pinned_release(tmp_path):
    """Only action.yml and setup.sh beside it: no pyproject.toml, so setup.sh installs mlproj==<pinned>.

    The release comes from a wheel built here from this checkout (version rewritten to a local
    one no index has, given through MLPROJ_PINNED_VERSION) found through UV_FIND_LINKS;
    mlproj's dependencies come from the package index as in the other install tests.
    """
    action = tmp_path / 'standalone'
    for name in STANDALONE_FILES:
        (action / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, action / name)
    src = _action_copy(tmp_path / 'src')
    for name in ('README.md', 'LICENSE'):
        shutil.copy(REPO / name, src / name)
    init = src / 'mlproj' / '__init__.py'
    version = '0.0.0.dev4242'
    init.write_text(re.sub(r"^__version__ = '[^']+'$", f"__version__ = '{version}'", init.read_text(), flags=re.M))
    wheels = tmp_path / 'wheels'
    built = subprocess.run([str(BIN / 'uv'), 'build', '--wheel', '--out-dir', str(wheels), str(src)],
                           env=clean_environ(), capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    env = {'GITHUB_ACTION_PATH': str(action), 'MLPROJ_PINNED_VERSION': version, 'UV_FIND_LINKS': str(wheels)}
    plan = _setup(tmp_path, 'plan', **env)[1]
    got, out = _setup(tmp_path, **env)
    assert got.returncode == 0, got.stdout + got.stderr
    assert f'mlproj: installed mlproj[run,github]=={version} into {plan["venv"]}' in got.stdout
    assert Path(out['mlproj']) == Path(plan['venv']) / 'bin' / 'mlproj'
    assert re.search(rf'^mlproj\s+{re.escape(version)}$', got.stdout, re.M)  # `mlproj --version`
    # the default, without the override, is the pinned release
    default = _setup(tmp_path, 'plan', GITHUB_ACTION_PATH=str(action))[1]
    assert default['venv'] != plan['venv']

