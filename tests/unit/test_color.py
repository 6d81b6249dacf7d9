"""The one color policy: --color × NO_COLOR × FORCE_COLOR × tty (and the user file's `color`)."""
from __future__ import annotations

import io
import itertools

import pytest

from mlproj import color


class Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


def expected(flag, no_color, force_color, tty):
    if flag in ('always', 'never'):
        return flag == 'always'
    if no_color:
        return False
    if force_color:
        return True
    return tty


@pytest.mark.parametrize('flag, no_color, force_color, tty',
                         list(itertools.product((None, 'auto', 'always', 'never'), ('', '1'), ('', '1'),
                                                (False, True))))
def test_matrix(flag, no_color, force_color, tty, tmp_path):
    env = {'XDG_CONFIG_HOME': str(tmp_path)}
    if no_color:
        env['NO_COLOR'] = no_color
    if force_color:
        env['FORCE_COLOR'] = force_color
    assert color.enabled(Stream(tty), choice=flag, environ=env) is expected(flag, no_color, force_color, tty)


@pytest.mark.parametrize('configured, tty, want', [('always', False, True), ('never', True, False),
                                                   ('auto', True, True), ('auto', False, False)])
def test_user_file_below_the_environment(tmp_path, configured, tty, want):
    (tmp_path / 'mlproj').mkdir()
    (tmp_path / 'mlproj' / 'config.toml').write_text(f'color = "{configured}"\n')
    env = {'XDG_CONFIG_HOME': str(tmp_path)}
    assert color.enabled(Stream(tty), environ=env) is want
    assert color.enabled(Stream(tty), environ={**env, 'NO_COLOR': '1'}) is False
    assert color.enabled(Stream(tty), choice='always', environ={**env, 'NO_COLOR': '1'}) is True


def test_status_lines(monkeypatch):
    monkeypatch.setattr(color, '_choice', 'always')
    assert color.status("=== Run (ID 'r') succeeded ===") == "\x1b[1;32m=== Run (ID 'r') succeeded ===\x1b[0m"
    assert color.status('\n=== Run (ID r) interrupted, cancelling run ===').startswith('\n\x1b[1;31m===')
    assert color.status("=== Running command 'rm failed' ===", tone='plain').startswith('\x1b[1m')
    monkeypatch.setattr(color, '_choice', 'never')
    assert color.status('=== Run succeeded ===') == '=== Run succeeded ==='


@pytest.mark.parametrize('argv, painted', [(['--color', 'always'], True), (['--color', 'never'], False), ([], False)])
def test_lint_uses_the_group_flag(tmp_path, capsys, monkeypatch, argv, painted):
    from mlproj.cli import main

    monkeypatch.delenv('NO_COLOR', raising=False)
    monkeypatch.delenv('FORCE_COLOR', raising=False)
    monkeypatch.delenv('GITHUB_ACTIONS', raising=False)
    (tmp_path / 'MLproject').write_text('entry_points:\n  main:\n    command: "echo {nope}"\n')
    try:
        main([*argv, 'lint', '--no-config', str(tmp_path)])
    finally:
        color.set_choice(None)
    out = capsys.readouterr().out
    assert out.strip()
    assert ('\x1b[' in out) is painted
