"""Every subcommand answers --help in-process (click's CliRunner), and flag parsing errors are
usage errors (exit 2) or bad-argument errors (exit 64), never tracebacks."""
from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from mlproj import cli as cli_module
from mlproj.cli import COMMANDS, cli


def _all_command_paths() -> list[tuple[str, ...]]:
    paths: list[tuple[str, ...]] = []
    ctx = click.Context(cli)
    for name in cli.list_commands(ctx):
        command = cli.get_command(ctx, name)
        assert command is not None, name
        paths.append((name,))
        if isinstance(command, click.Group):
            for sub in command.list_commands(ctx):
                paths.append((name, sub))
    return paths


COMMAND_PATHS = _all_command_paths()


def test_every_registered_command_is_listed():
    tops = {p[0] for p in COMMAND_PATHS}
    assert tops == set(COMMANDS)
    # the groups have their subcommands
    assert ('env', 'build') in COMMAND_PATHS and ('ci', 'run') in COMMAND_PATHS


@pytest.mark.parametrize('path', COMMAND_PATHS, ids=' '.join)
def test_help(path):
    result = CliRunner().invoke(cli, [*path, '--help'])
    assert result.exit_code == 0, result.output
    assert result.output.startswith('Usage: ')
    assert ' '.join(path) in result.output.splitlines()[0]


def test_top_level_help_lists_commands_with_their_summary():
    result = CliRunner().invoke(cli, ['--help'])
    assert result.exit_code == 0
    for name, (_module, _attr, summary) in COMMANDS.items():
        assert name in result.output
        assert summary[:30] in result.output


@pytest.mark.parametrize('argv, code, needle', [
    (['run', '--no-such-flag'], 2, 'No such option'),
    (['run', '.', '-P'], 2, "requires an argument"),
    (['nosuch'], 2, 'No such command'),
    (['run', '.', '-P', 'noequals'], 64, 'noequals'),
    (['run', '.', '--experiment-name', 'a', '--experiment-id', '1', '--dry-run'], 64, 'experiment'),
    (['run', '.', '-c', '{not json', '--dry-run'], 64, 'JSON'),
])
def test_flag_errors_are_one_line(argv, code, needle, capsys):
    rc = cli_module.main(argv)
    err = capsys.readouterr().err
    assert rc == code, err
    assert needle in err
    assert 'Traceback' not in err
