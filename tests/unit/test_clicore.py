"""mlproj.clicore: `mlproj run` parsed without click, held equal to click.

The option tables must be the click commands' own parameters, and wherever the fast parser accepts
an argument list, click must parse it to the same values and the same side effects; whatever click
refuses, the fast parser must leave to click.
"""
from __future__ import annotations

import os
import random
import subprocess
import sys

import click
import pytest

from mlproj import clicore
from mlproj.cli import cli
from mlproj.commands.run import run
from mlproj.request import ENV_MANAGERS

# run options the fast parser leaves to click on purpose (their output is click's)
LEFT_TO_CLICK = {'dry_run', 'as_json'}


def _options(command: click.Command) -> list[click.Option]:
    return [p for p in command.params if isinstance(p, click.Option)]


def test_the_run_tables_are_the_click_commands_options():
    values, multiple, flags, pairs = {}, {}, {}, {}
    defaults = run.make_context('run', []).params  # what the command gets when nothing is given
    for p in _options(run):
        dest = p.name
        if p.envvar:
            assert p.envvar in clicore.CLICK_ENV, p.envvar
        if dest in LEFT_TO_CLICK:
            assert not set(p.opts) & (set(clicore.RUN_FLAGS) | set(clicore.RUN_VALUES)), p.opts
            continue
        if p.secondary_opts:
            pairs.update({o: (dest, True) for o in p.opts})
            pairs.update({o: (dest, False) for o in p.secondary_opts})
        elif p.is_flag:
            flags.update({o: dest for o in p.opts})
        elif p.multiple:
            multiple.update({o: dest for o in p.opts})
        else:
            assert p.nargs == 1
            values.update({o: dest for o in p.opts})
        if isinstance(p.type, click.Choice):
            assert dest == 'env_manager' and tuple(p.type.choices) == tuple(ENV_MANAGERS)
    (argument,) = [p for p in run.params if isinstance(p, click.Argument)]
    assert (argument.name, argument.default, argument.nargs) == ('uri', '.', 1)
    assert values == clicore.RUN_VALUES
    assert multiple == clicore.RUN_MULTIPLE
    assert flags == clicore.RUN_FLAGS
    assert pairs == clicore.RUN_PAIRS
    assert defaults == clicore.RUN_DEFAULTS


def test_the_group_tables_are_the_click_groups_options():
    flags, values = {}, {}
    defaults = {k: v for k, v in cli.make_context('mlproj', ['run']).params.items()}
    for p in _options(cli):
        if p.name == 'version':  # eager, prints and exits: left to click
            assert set(p.opts) == {'--version'} and not set(p.opts) & set(clicore.GROUP_FLAGS)
            continue
        if p.envvar:
            assert p.envvar in clicore.CLICK_ENV
        if p.is_flag:
            flags.update({o: p.name for o in p.opts})
        else:
            values.update({o: p.name for o in p.opts})
            assert tuple(p.type.choices) == clicore.GROUP_CHOICES[p.name]
    assert flags == clicore.GROUP_FLAGS and values == clicore.GROUP_VALUES
    assert defaults == clicore.GROUP_DEFAULTS
    assert set(cli.context_settings['help_option_names']) == {'-h', '--help'}


class Recorder:
    """Stands in for what both paths call once parsing is done: the group options' effects, the
    run command's quiet/verbose callbacks and its body."""

    def __init__(self, monkeypatch):
        import mlproj.cli
        import mlproj.commands.run
        import mlproj.commands.run_body
        from mlproj import quiet, verbose

        self.events: list = []
        group = lambda **kw: self.events.append(('group', kw))  # noqa: E731
        monkeypatch.setattr(mlproj.cli, 'apply_global_options', group)
        monkeypatch.setattr(clicore, 'apply_global_options', group)
        monkeypatch.setattr(quiet, 'enable', lambda: self.events.append('quiet'))
        monkeypatch.setattr(verbose, 'enable', lambda: self.events.append('verbose'))
        body = lambda **kw: self.events.append(('run', kw))  # noqa: E731
        monkeypatch.setattr(mlproj.commands.run, 'invoke', body)
        monkeypatch.setattr(mlproj.commands.run_body, 'invoke', body)

    def by_click(self, argv: list[str]) -> tuple[int, list]:
        from mlproj.cli import main

        self.events = []
        return main(list(argv)), self.events

    def by_clicore(self, argv: list[str]) -> tuple[int | None, list]:
        self.events = []
        return clicore.main(list(argv)), self.events


@pytest.fixture
def recorder(monkeypatch, capsys):
    for name in clicore.CLICK_ENV:
        monkeypatch.delenv(name, raising=False)
    return Recorder(monkeypatch)


EVERYDAY = [
    ['run'],
    ['run', '.'],
    ['run', '.', '--env-manager', 'local'],
    ['run', '.', '-P', 'alpha=0.5', '-P', 'l1_ratio=0.1'],
    ['run', 'https://github.com/mlflow/mlflow-example.git', '-v', 'v1.0', '-P', 'alpha=0.4'],
    ['run', 'git@github.com:org/repo.git#sub/dir', '-e', 'train', '--experiment-name', 'exp'],
    ['run', '--param', 'alpha=1', '--env-manager=uv', 'proj', '--run-name', 'r1', '--tracking-uri', 'http://x'],
    ['run', '.', '-b', 'databricks', '-c', 'cluster.json', '--no-wait'],
    ['run', '.', '--experiment-id', '3', '--reuse', '--strict', '--pass-env', 'HF_TOKEN'],
    ['run', '.', '-Palpha=1', '-emain', '--storage-dir', '/tmp/x', '--keep-checkout', '--require-clean'],
    ['-q', 'run', '.', '--force'],
    ['--debug', '--color', 'never', 'run', '.', '--verbose'],
    ['--color=always', 'run', '.', '-A', 'gpus=all', '--build-image', '--git-username', 'u'],
    ['run', '.', '-q', '--run-id', 'abc', '-m', 'local'],
    ['run', '--', '-odd-dir'],
]


@pytest.mark.parametrize('argv', EVERYDAY, ids=' '.join)
def test_everyday_argument_lists_take_the_fast_path_and_match_click(recorder, argv):
    fast_code, fast = recorder.by_clicore(argv)
    assert fast_code == 0 and fast, 'the fast parser left an everyday list to click'
    click_code, slow = recorder.by_click(argv)
    assert (fast_code, fast) == (click_code, slow)


POOL_GROUP = ['--debug', '-q', '--quiet', '--verbose', '--color', 'always', '--color=never', '--color=bad',
              '--color', '--version', '-h', '--help', 'lint', '-x', '--debug=1', '-qd']
POOL_OPTIONS = sorted({*clicore.RUN_VALUES, *clicore.RUN_MULTIPLE, *clicore.RUN_FLAGS, *clicore.RUN_PAIRS,
                       '--dry-run', '--json', '--help', '-h', '--', '-', '--bogus', '-z', '--entry', '-qP'})
POOL_VALUES = ['x=1', 'a', '', '-x', '--foo', 'run', 'local', 'uv', 'virtualenv', 'bogus', '=a', '.', 'proj',
               'git+https://h/r#sub', '-P', '--', 'a b', 'ü']
POOL_ATTACHED = ['--entry-point=a', '--entry-point=', '-ea', '-e=a', '-Px=1', '-P=x', '--param=x=1',
                 '--strict=1', '--reuse=yes', '-qe', '--env-manager=local', '--env-manager=nope', '-vHEAD~2',
                 '--run-name=r', '-mlocal', '--pass-env=A', '--verbose=1']


def _generated(count: int) -> list[list[str]]:
    rng = random.Random(20261203)
    out = []
    for _ in range(count):
        group = [rng.choice(POOL_GROUP) for _ in range(rng.choice((0, 0, 0, 1, 1, 2)))]
        tail = []
        for _ in range(rng.randint(0, 7)):
            kind = rng.random()
            pool = POOL_OPTIONS if kind < 0.45 else POOL_VALUES if kind < 0.8 else POOL_ATTACHED
            tail.append(rng.choice(pool))
        out.append(group + (['run'] if rng.random() < 0.95 else []) + tail)
    return out


def test_generated_argument_lists_parse_the_same_way_or_go_to_click(recorder, capsys):
    accepted = 0
    for argv in _generated(2500):
        fast_code, fast = recorder.by_clicore(argv)
        click_code, slow = recorder.by_click(argv)
        capsys.readouterr()
        if fast_code is None:
            assert fast == [], argv  # nothing happened on the way to click
            continue
        accepted += 1
        assert (fast_code, fast) == (click_code, slow), argv
    assert accepted > 300  # the generator reaches the fast path often enough to mean something


def test_what_click_refuses_the_fast_parser_leaves_to_click(recorder, capsys):
    for argv in (['run', '--bogus'], ['run', '-e'], ['run', 'a', 'b'], ['run', '--strict=1'], ['run', '-qe', 'x'],
                 ['run', '--env-manager', 'nope'], ['--color', 'bad', 'run'], ['run', '--help'], ['--version', 'run'],
                 ['run', '--dry-run'], ['-q', 'run', '--verbose'], ['lint', '.'], []):
        assert clicore.parse(argv, {}) is None, argv


@pytest.mark.parametrize('name', clicore.CLICK_ENV)
def test_a_variable_click_reads_sends_the_list_to_click(name):
    assert clicore.parse(['run', '.'], {}) is not None
    assert clicore.parse(['run', '.'], {name: '1'}) is None


def test_a_fast_run_imports_no_click(tmp_path):
    """The console script's run never imports click; a --help still works (through click)."""
    project = tmp_path / 'p'
    project.mkdir()
    (project / 'MLproject').write_text('name: p\nentry_points:\n  main:\n    command: "exit 0"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith(('MLFLOW_', 'MLPROJ_'))}
    env['MLFLOW_TRACKING_URI'] = f'sqlite:///{tmp_path}/mlflow.db'
    code = ('import sys; from mlproj import console\n'
            'sys.argv = ["mlproj", *sys.argv[1:]]\n'
            'import atexit; atexit.register(lambda: print("CLICK", "click" in sys.modules))\n'
            'console.main()\n')
    for _ in range(2):  # the first creates the store through MLflow, which imports click itself
        r = subprocess.run([sys.executable, '-c', code, 'run', str(project), '--env-manager', 'local'],
                           capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
    assert 'CLICK False' in r.stdout
    r = subprocess.run([sys.executable, '-c', code, 'run', '--help'], capture_output=True, text=True, timeout=60,
                       env=env, cwd=tmp_path)
    assert r.returncode == 0 and 'Usage: mlproj run' in r.stdout and 'CLICK True' in r.stdout
