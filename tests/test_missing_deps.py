"""A command whose optional dependency is missing says in one line which extra to install (exit 69).

The module is made unimportable in a real `python -m mlproj` process (``sys.modules[name] = None``
makes ``import name`` raise ModuleNotFoundError, as an absent package does).
"""
from __future__ import annotations

import subprocess
import sys

import pytest

from mlproj.clicore import COMMANDS, OPTIONAL_MODULES
from tests.helpers.git import git


def _mlproj_without(module: str, args: list[str], cwd) -> subprocess.CompletedProcess:
    code = (f'import sys; sys.modules[{module!r}] = None\n'
            'from mlproj.cli import main; sys.exit(main(sys.argv[1:]))')
    return subprocess.run([sys.executable, '-c', code, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize('module,args', [
    ('pygit2', ['run', '.', '--dry-run']),
    ('pygit2', ['show', '.']),
    ('mlflow', ['reproduce', '0123456789abcdef0123456789abcdef']),
])
def test_missing_run_dependency_is_one_line_and_exit_69(tmp_path, module, args):
    (tmp_path / 'MLproject').write_text('name: x\nentry_points:\n  main:\n    command: "true"\n')
    git('init', '-q', cwd=tmp_path)  # a Git work tree: read with pygit2
    r = _mlproj_without(module, args, tmp_path)
    assert r.returncode == 69, r.stderr
    assert r.stderr == (f'mlproj: error: mlproj {args[0]} needs {module}, which is not installed: '
                        'pip install "mlproj[run]"\n')


def test_lint_needs_none_of_them(tmp_path):
    (tmp_path / 'MLproject').write_text('name: x\nentry_points:\n  main:\n    command: "true"\n')
    code = ('import sys\n'
            + ''.join(f'sys.modules[{m!r}] = None\n' for m in OPTIONAL_MODULES)
            + 'from mlproj.cli import main; sys.exit(main(sys.argv[1:]))')
    r = subprocess.run([sys.executable, '-c', code, 'lint', '.'], cwd=tmp_path, capture_output=True, text=True,
                       timeout=120)
    assert (r.returncode, r.stderr) == (0, 'mlproj lint: no problems (1 file checked)\n')


def test_an_unknown_missing_module_is_still_an_internal_error(tmp_path):
    from mlproj.clicore import missing_dependency

    assert missing_dependency(ModuleNotFoundError("No module named 'nope'", name='nope'), ['run']) is None
    assert missing_dependency(ModuleNotFoundError('x', name='sqlalchemy.orm'), ['run']) == \
        'mlproj run needs sqlalchemy, which is not installed: pip install "mlproj[run]"'
    from pathlib import Path

    import tomllib

    pyproject = tomllib.loads((Path(__file__).resolve().parent.parent / 'pyproject.toml').read_text())
    extras = pyproject['project']['optional-dependencies']
    assert set(OPTIONAL_MODULES.values()) <= set(extras)  # every named extra exists
    base = ' '.join(pyproject['project']['dependencies']).lower()
    assert not any(m in base for m in ('pygit2', 'mlflow', 'sqlalchemy', 'alembic', 'uv>'))  # the base stays light
    assert 'lint' in COMMANDS
