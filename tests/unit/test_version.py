"""`mlproj --version`: mlproj's version and those of MLflow, pygit2 and libgit2 (a bug report's first lines).

Checked in-process (click's CliRunner), as a real ``python -m mlproj`` process, with pygit2 made
unimportable, and in a real base install (``pip install .`` without extras: a wheel built by the
project's own build backend), where MLflow and pygit2 are absent.
"""
from __future__ import annotations

import platform
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pygit2
import pytest
from click.testing import CliRunner

import mlproj
from mlproj.cli import cli

ROOT = Path(__file__).resolve().parents[2]
MISSING = 'not installed (pip install "mlproj[run]")'


def _mlflow_row() -> str:
    for dist in ('mlflow', 'mlflow-skinny'):
        try:
            return f'{version(dist)} ({dist})'
        except PackageNotFoundError:
            continue
    raise AssertionError('the dev install has mlflow-skinny')


def _rows(text: str) -> dict[str, str]:
    return dict(line.split(None, 1) for line in text.splitlines())


def expected() -> dict[str, str]:
    return {
        'mlproj': mlproj.__version__,
        'Python': f'{platform.python_version()} ({platform.python_implementation()})',
        'MLflow': _mlflow_row(),
        'pygit2': pygit2.__version__,
        'libgit2': pygit2.LIBGIT2_VERSION,
    }


def test_version_is_single_sourced():
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    project = tomllib.loads((ROOT / 'pyproject.toml').read_text())['project']
    assert 'version' not in project and 'version' in project['dynamic']
    assert version('mlproj') == mlproj.__version__  # the installed metadata comes from __init__.py


def test_version_in_process():
    result = CliRunner().invoke(cli, ['--version'])
    assert result.exit_code == 0, result.output
    assert list(_rows(result.output)) == ['mlproj', 'Python', 'MLflow', 'pygit2', 'libgit2']
    assert _rows(result.output) == expected()


def test_version_as_a_process():
    r = subprocess.run([sys.executable, '-m', 'mlproj', '--version'], capture_output=True, text=True, timeout=60)
    assert (r.returncode, r.stderr) == (0, '')
    assert _rows(r.stdout) == expected()


def test_version_without_pygit2():
    code = "import sys; sys.modules['pygit2'] = None\nfrom mlproj.cli import main; sys.exit(main(['--version']))"
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=60)
    assert (r.returncode, r.stderr) == (0, '')
    rows = _rows(r.stdout)
    assert rows['pygit2'] == rows['libgit2'] == MISSING
    assert rows['MLflow'] == _mlflow_row()


def test_help_does_not_import_what_version_needs():
    code = ("import sys\nfrom mlproj.cli import main\nmain(['--help'])\n"
            "print(sorted(m for m in ('pygit2', 'mlflow', 'importlib.metadata') if m in sys.modules))")
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == '[]'


@pytest.mark.slow
def test_version_in_a_base_install(tmp_path):
    """A real `pip install .` (no extras) in a fresh venv: the wheel's metadata, py.typed, LICENSE."""
    uv = [sys.executable, '-m', 'uv']
    venv = tmp_path / 'venv'
    subprocess.run([*uv, 'venv', '-q', str(venv), '--python', sys.executable], check=True, timeout=120)
    python = venv / 'bin' / 'python'
    subprocess.run([*uv, 'pip', 'install', '-q', '--python', str(python), str(ROOT)], check=True, timeout=300)
    r = subprocess.run([str(venv / 'bin' / 'mlproj'), '--version'], capture_output=True, text=True, timeout=60)
    assert (r.returncode, r.stderr) == (0, '')
    assert _rows(r.stdout) == {**expected(), 'MLflow': MISSING, 'pygit2': MISSING, 'libgit2': MISSING}
    probe = ("import sys; from importlib.metadata import metadata, files\n"
             "m = metadata('mlproj'); names = {str(f) for f in files('mlproj')}\n"
             "print(m['Version'], m['License-Expression'], 'mlproj/py.typed' in names,\n"
             "      any(n.endswith('licenses/LICENSE') for n in names), len(m.get_all('Project-URL')),\n"
             "      'Programming Language :: Python :: 3.13' in m.get_all('Classifier'))")
    r = subprocess.run([str(python), '-c', probe], capture_output=True, text=True, timeout=60)
    assert r.stdout.split() == [mlproj.__version__, 'Apache-2.0', 'True', 'True', '4', 'True'], r.stderr
