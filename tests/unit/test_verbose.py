"""--verbose against --quiet: a one-line usage error, whichever comes first and wherever it is given."""
from __future__ import annotations

import sys

import pytest
from click.testing import CliRunner

from mlproj import verbose
from mlproj.cli import cli, main
from mlproj.errors import EXIT_BAD_ARGUMENT, BadArgumentError


@pytest.fixture(autouse=True)
def _off():
    yield
    verbose.disable()


@pytest.mark.parametrize('args', [['run', '--quiet', '--verbose', '.'], ['run', '--verbose', '-q', '.'],
                                  ['-q', 'run', '--verbose', '.'], ['--verbose', '-q', 'run', '.'],
                                  ['--verbose', 'run', '--quiet', '.']])
def test_quiet_and_verbose_together_are_refused_by_the_cli(args, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, args)
    assert isinstance(result.exception, BadArgumentError)
    assert str(result.exception).startswith('--quiet and --verbose cannot be combined')


def test_the_refusal_is_one_line_and_exit_64(tmp_path, monkeypatch, capfd):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, 'stderr', sys.stderr)   # quiet mode replaces it: put it back afterwards
    monkeypatch.setenv('MLPROJ_VERBOSE', '1')
    assert main(['run', '-q', '.']) == EXIT_BAD_ARGUMENT == 64
    err = capfd.readouterr().err
    assert err.startswith('mlproj: error: --quiet and --verbose cannot be combined') and err.count('\n') == 1


def test_verbose_has_no_short_form_because_v_is_the_git_revision():
    from mlproj.commands.run import run

    owner = {o: p.name for p in run.params for o in p.opts}
    assert '--verbose' in owner and owner['-v'] == 'version'   # -v is --version, as in mlflow run
