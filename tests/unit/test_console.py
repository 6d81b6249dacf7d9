"""The console script holds Python's cyclic collector off while the CLI starts (mlproj.console):
it is back on, with the start-up objects frozen, once a run's command started or any other command
began; library use never touches it."""
from __future__ import annotations

import gc
import subprocess
import sys

import pytest
from click.testing import CliRunner

from mlproj import console
from mlproj.cli import cli
from tests.helpers import write_project


@pytest.fixture
def held(monkeypatch):
    """The collector as ``console.main`` leaves it before the CLI runs; restored afterwards."""
    was = gc.isenabled()
    gc.disable()
    monkeypatch.setattr(console, '_held', True)
    yield
    gc.unfreeze()
    if was:
        gc.enable()


def test_main_disables_the_collector_before_the_cli_is_imported():
    code = ('import gc, sys; import mlproj.console as c; import mlproj.cli as m; '
            'm.main = lambda: print(gc.isenabled(), "mlproj.cli" in sys.modules) or 0; c.main()')
    # mlproj.cli is imported inside main(): patching it first shows what main() leaves for the CLI
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ['False', 'True']


def test_resume_freezes_and_enables_once(held):
    assert not gc.isenabled()
    console.resume()
    assert gc.isenabled() and gc.get_freeze_count() > 0
    gc.disable()
    console.resume()  # idempotent: a second call does not re-enable what someone else disabled
    assert not gc.isenabled()


def test_library_use_keeps_the_collector_as_it_is():
    gc.disable()
    try:
        console.resume()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_other_commands_resume_at_once(held, tmp_path):
    write_project(tmp_path, 'name: p\nentry_points:\n  main:\n    command: "true"\n')
    result = CliRunner().invoke(cli, ['lint', str(tmp_path / 'MLproject')])
    assert result.exit_code == 0, result.output
    assert gc.isenabled()


def test_run_resumes_once_its_command_started(held, tmp_path, monkeypatch):
    """`mlproj run` keeps the collector off through planning and resumes before it waits: the
    command sees it enabled already (it prints what a hook on the run's start observed)."""
    seen = []
    import mlproj.runner as runner

    real_submit = runner.submit
    monkeypatch.setattr(runner, 'submit', lambda request: (seen.append(gc.isenabled()), real_submit(request))[1])
    project = write_project(tmp_path / 'p', 'name: p\nentry_points:\n  main:\n    command: "true"\n')
    monkeypatch.setenv('MLFLOW_TRACKING_URI', f'sqlite:///{tmp_path}/mlflow.db')
    with pytest.raises(SystemExit) as exit_info:
        cli.main(['run', str(project), '--env-manager', 'local'], standalone_mode=False)
    assert exit_info.value.code == 0
    assert seen == [False] and gc.isenabled()
