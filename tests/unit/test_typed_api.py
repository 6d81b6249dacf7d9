"""The public API type-checks for a consumer under ``mypy --strict`` (mlproj ships ``py.typed``).

mypy runs as a real process on a small consumer module in a temporary directory, so it finds
mlproj the way a user's project does (the installed package, not this checkout's ``mlproj/`` as a
source root).  The snippet uses ``reveal_type`` to pin the types of what it touches; a second
snippet with deliberate type errors must make mypy fail, with those errors and no others.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import mlproj

pytest.importorskip('mypy', reason='mypy comes with the dev extra (pip install -e ".[dev]")')

CONSUMER = '''\
from __future__ import annotations

import mlproj
from mlproj import MlprojError, RunFailed, SubmittedRun


def train(alpha: float) -> str:
    run = mlproj.run('https://example.com/org/repo.git#sub', 'train', version='v1.2',
                     parameters={'alpha': alpha}, experiment_name='demo', synchronous=False,
                     backend_config={'cluster': 'x'}, env_manager='uv')
    reveal_type(run)
    reveal_type(run.run_id)
    reveal_type(run.wait())
    reveal_type(run.get_status())
    reveal_type(run.exit_code)
    run.cancel()
    return run.run_id


def entry_points(path: str) -> list[str]:
    project = mlproj.load_project(path)
    reveal_type(project)
    main = project.get_entry_point('main')
    reveal_type(main)
    return sorted(project.entry_points)


def submitted(run: SubmittedRun) -> bool:
    return run.wait()


def failure(error: MlprojError) -> int:
    if isinstance(error, RunFailed):
        return error.exit_code
    return 1


version: str = mlproj.__version__
'''

WRONG = '''\
from __future__ import annotations

import mlproj

run = mlproj.run('.', parameters={'alpha': 0.5}, synchronus=True)
status: int = run.get_status()
ok: str = run.wait()
project = mlproj.load_project(42)
mlproj.no_such_function()
'''


@pytest.fixture(scope='module')
def mypy_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # one cache for both runs: the first analyses mlproj and its typed dependencies, the second reuses it
    return tmp_path_factory.mktemp('mypy-cache')


def _mypy(tmp_path: Path, cache: Path, source: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / 'consumer.py').write_text(source)
    return subprocess.run(
        [sys.executable, '-m', 'mypy', '--strict', '--cache-dir', str(cache), '--hide-error-context',
         '--no-error-summary', '--python-version', f'{sys.version_info.major}.{sys.version_info.minor}',
         'consumer.py'],
        cwd=tmp_path, capture_output=True, text=True, timeout=600)


def _revealed(line: str) -> str:
    return line.split(': note: ', 1)[1].replace('builtins.', '')  # mypy < 2 spells builtins out


def _found_in_site(tmp_path: Path) -> None:
    # mypy must resolve mlproj through the interpreter's install (editable or wheel), with py.typed
    assert (Path(mlproj.__file__).parent / 'py.typed').is_file()
    assert not (tmp_path / 'mlproj').exists()


def test_consumer_type_checks_strictly(tmp_path, mypy_cache):
    _found_in_site(tmp_path)
    r = _mypy(tmp_path, mypy_cache, CONSUMER)
    notes = [_revealed(line) for line in r.stdout.splitlines() if ': note: Revealed type is ' in line]
    errors = [line for line in r.stdout.splitlines() if ': error: ' in line]
    assert errors == [], r.stdout + r.stderr
    assert notes == [
        'Revealed type is "mlproj.backends.SubmittedRun"',
        'Revealed type is "str"',
        'Revealed type is "bool"',
        'Revealed type is "str"',
        'Revealed type is "int | None"',
        'Revealed type is "mlproj.spec_model.Project"',
        'Revealed type is "mlproj.spec_model.EntryPoint"',
    ], r.stdout
    assert r.returncode == 0, r.stdout + r.stderr  # reveal_type notes are not errors


def test_type_errors_in_a_consumer_make_mypy_fail(tmp_path, mypy_cache):
    _found_in_site(tmp_path)
    r = _mypy(tmp_path, mypy_cache, WRONG)
    assert r.returncode == 1, r.stdout + r.stderr
    errors = sorted(int(line.split(':')[1]) for line in r.stdout.splitlines() if ': error: ' in line)
    # line 5: a misspelt keyword of run(); 6, 7: wrong result types; 8: not a path; 9: not in the API
    assert errors == [5, 6, 7, 8, 9], r.stdout
    assert 'Unexpected keyword argument "synchronus"' in r.stdout
    assert 'Module has no attribute "no_such_function"' in r.stdout


def test_snippets_are_what_the_tests_say(tmp_path):
    """The snippets run for real where they can: the consumer's load_project half against a project."""
    namespace: dict[str, object] = {'reveal_type': lambda value: value}
    exec(compile(textwrap.dedent(CONSUMER), 'consumer.py', 'exec'), namespace)
    (tmp_path / 'MLproject').write_text('name: x\nentry_points:\n  main:\n    command: "true"\n  b:\n    command: "true"\n')
    assert namespace['entry_points'](str(tmp_path)) == ['b', 'main']  # type: ignore[operator]
