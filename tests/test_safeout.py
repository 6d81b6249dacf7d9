"""Output that cannot be turned into commands (mlproj.safeout): github mode, the Action, text, JSON, SARIF.

Real directories with hostile names (a newline followed by a workflow command, an ESC sequence,
a byte that is not UTF-8) are linted and run; the output is checked line by line.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mlproj.ci import gha
from mlproj.safeout import actions_line, json_text, printable
from tests.helpers import mlproj_bin

INJECTED = 'evil\n::error title=INJECTED::pwned'
BAD = 'entry_points:\n  main:\n    command: "echo {nope}"\nunknown: 1\n'
# mlproj's own annotations: properties escape ',' and ':', the title is always a rule id and name
OURS = re.compile(r'^::(error|warning) file=[^,:\n]+(,line=\d+(,col=\d+)?)?,title=MLP\d{3} [a-z-]+::')


def mlproj(args: list, cwd: Path, env: dict | None = None, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k not in ('GITHUB_ACTIONS', 'NO_COLOR')}
    full.update(env or {})
    return subprocess.run([mlproj_bin(), *args], cwd=cwd, env=full, capture_output=True, timeout=120, input=stdin)


def test_printable_and_actions_line():
    assert printable('a\nb\rc\td\x1b[31me\x7f\x85\u2028\u202e\udcff') == \
        'a\\nb\\rc\\td\\x1b[31me\\x7f\\x85\\u2028\\u202e\\udcff'
    assert printable('plain/path ünïcode ✓') == 'plain/path ünïcode ✓'
    assert actions_line('::error::x') == '%3A:error::x'
    assert actions_line('  \t::set-output name=a::b').lstrip(' ').startswith('\\t')  # the tab is escaped too
    assert actions_line('   ::warning::x') == '   %3A:warning::x'
    assert actions_line('##[error]x') == '%23#[error]x'
    assert actions_line(INJECTED) == 'evil\\n::error title=INJECTED::pwned'
    assert json_text('bad\udcffname') == 'bad\\udcffname' and json_text('ok') == 'ok'


def _no_injected_command(text: str) -> None:
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith('::') or stripped.startswith('##['):
            assert OURS.match(line), line  # only mlproj's own annotations, whatever the path holds


@pytest.mark.slow
def test_injected_workflow_command_is_impossible_in_github_mode(tmp_path):
    (tmp_path / INJECTED).mkdir()
    (tmp_path / INJECTED / 'MLproject').write_text(BAD)
    for env in ({}, {'GITHUB_ACTIONS': 'true'}):  # --format github, and the Action's default
        args = ['lint', '--format', 'github', '.'] if not env else ['lint', '.']
        r = mlproj(args, tmp_path, env)
        out = r.stdout.decode() + r.stderr.decode()
        assert r.returncode == 1, out
        assert 'INJECTED' in out  # the finding is there...
        _no_injected_command(out)  # ...but never as a command
        assert 'evil%0A%3A%3Aerror title=INJECTED%3A%3Apwned/MLproject' in out or \
            'evil\\n%3A%3Aerror title=INJECTED%3A%3Apwned/MLproject' in out
        assert 'evil\\n::error title=INJECTED::pwned/MLproject:3:' in out  # the plain copy, escaped


@pytest.mark.slow
def test_errors_and_warnings_stay_on_one_line(tmp_path):
    (tmp_path / INJECTED).mkdir()
    (tmp_path / INJECTED / 'MLproject').write_text('entry_points:\n  main: {command: "true"}\nunknown: 1\n')
    r = mlproj(['run', '--dry-run', '.'], tmp_path / INJECTED)  # the warning names the MLproject path
    err = r.stderr.decode()
    assert r.returncode == 0, err
    assert err.count('\n') == 1 and err.startswith('mlproj: warning: ') and 'evil\\n::error' in err
    r = mlproj(['run', '--dry-run', INJECTED], tmp_path)  # refused URI: the error names it, escaped
    err = r.stderr.decode()
    assert r.returncode == 67 and err.count('\n') == 1, err
    _no_injected_command(err)
    r = mlproj(['show', '.'], tmp_path / INJECTED)
    out = r.stdout.decode()
    assert r.returncode == 0 and 'evil\\n::error' in out, out
    _no_injected_command(out)


@pytest.mark.slow
def test_text_output_escapes_terminal_control_sequences(tmp_path):
    name = 'x\x1b[2J\x1b]0;owned\x07\r'
    (tmp_path / name).mkdir()
    (tmp_path / name / 'MLproject').write_text(BAD)
    r = mlproj(['lint', '.'], tmp_path)
    out = r.stdout.decode()
    assert r.returncode == 1
    assert '\x1b' not in out and '\r' not in out and '\x07' not in out
    assert 'x\\x1b[2J\\x1b]0;owned\\x07\\r/MLproject:3:' in out


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == 'darwin', reason='macOS file systems refuse names that are not UTF-8')
def test_json_and_sarif_keep_undecodable_names(tmp_path):
    raw = os.fsencode(str(tmp_path)) + b'/bad\xffname'
    os.mkdir(raw)
    with open(raw + b'/MLproject', 'w') as f:
        f.write(BAD)
    r = mlproj(['lint', '--format', 'json', '.'], tmp_path)
    text = r.stdout.decode('utf-8')  # strict: the document is valid UTF-8
    doc = json.loads(text)
    paths = {f['path'] for f in doc['findings']}
    assert paths == {'bad\\udcffname/MLproject'}, paths
    r = mlproj(['lint', '--format', 'sarif', '.'], tmp_path)
    doc = json.loads(r.stdout.decode('utf-8'))
    uris = {res['locations'][0]['physicalLocation']['artifactLocation']['uri'] for res in doc['runs'][0]['results']}
    assert uris == {'bad%FFname/MLproject'}, uris
    r = mlproj(['lint', '.'], tmp_path)
    assert 'bad\\udcffname/MLproject:3:' in r.stdout.decode('utf-8')


def test_action_commands_are_neutralised():
    line = gha.command('warning', 'first\nsecond \x1b[31m', title='t\n::error::x', file='a\rb')
    assert '\n' not in line and '\r' not in line and '\x1b' not in line
    assert line.startswith('::warning title=t\\n%3A%3Aerror%3A%3Ax,file=a\\rb::first%0Asecond \\x1b[31m')


def test_action_log_lines(capsys):
    gha.log_line('mlproj: error: x (evil\n::error::y)', environ={'GITHUB_ACTIONS': 'true'})
    gha.log_line(INJECTED, environ={'GITHUB_ACTIONS': 'true'})
    gha.log_line('::error::z', environ={'GITHUB_ACTIONS': 'true'})
    err = capsys.readouterr().err
    assert err.splitlines() == ['mlproj: error: x (evil\\n::error::y)', 'evil\\n::error title=INJECTED::pwned',
                                '%3A:error::z']
