"""Shell completion: `mlproj completion SHELL` prints click's script, and the completion protocol
(bash: _MLPROJ_COMPLETE=bash_complete, COMP_WORDS, COMP_CWORD) offers the project's entry points
and `-P NAME=` candidates, in a real subprocess as the shell would call it."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from mlproj.cli import main

MLPROJECT = """name: demo
entry_points:
  main:
    parameters:
      alpha: {type: float, default: 0.1}
    command: "python -c pass"
  train:
    parameters:
      data_path: path
      alpha: float
      max_iter: {type: int, default: 10}
    command: "python train.py {data_path}"
"""


@pytest.fixture(scope='module')
def project(tmp_path_factory):
    d = tmp_path_factory.mktemp('completion')
    (d / 'MLproject').write_text(MLPROJECT)
    return d


def complete(words: str, cwd) -> list[str]:
    env = {**os.environ, '_MLPROJ_COMPLETE': 'bash_complete', 'COMP_WORDS': words,
           'COMP_CWORD': str(len(words.split(' ')) - 1)}
    proc = subprocess.run([sys.executable, '-m', 'mlproj'], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    return [line.split(',', 1)[1] for line in proc.stdout.splitlines() if ',' in line]


@pytest.mark.parametrize('shell, needle', [('bash', '_MLPROJ_COMPLETE=bash_complete'),
                                           ('zsh', '#compdef mlproj'), ('fish', 'complete --no-files --command mlproj')])
def test_completion_prints_the_script(shell, needle, capsys):
    assert main(['completion', shell]) == 0
    assert needle in capsys.readouterr().out


def test_entry_points_of_the_uri_argument(project, tmp_path):
    assert complete(f'mlproj run {project} -e ', tmp_path) == ['main', 'train']
    assert complete(f'mlproj show {project} -e t', tmp_path) == ['train']
    assert complete('mlproj run -e ', project) == ['main', 'train']  # URI . by default


def test_parameters_of_the_entry_point(project, tmp_path):
    assert complete(f'mlproj run {project} -e train -P ', tmp_path) == ['data_path=', 'alpha=', 'max_iter=']
    assert complete(f'mlproj run {project} -e train -P alpha=1 -P ', tmp_path) == ['data_path=', 'max_iter=']
    assert complete(f'mlproj run {project} -P ', tmp_path) == ['alpha=']  # main
    assert complete(f'mlproj sweep {project} -e train -P m', tmp_path) == ['max_iter=']
    assert complete(f'mlproj run {project} -P alpha=', tmp_path) == []


def test_commands_and_nothing_for_remote_or_broken_projects(tmp_path):
    assert 'completion' in complete('mlproj comp', tmp_path)
    assert complete('mlproj run https://example.invalid/o/r -e ', tmp_path) == []
    (tmp_path / 'MLproject').write_text('entry_points: [broken\n')
    assert complete('mlproj run . -e ', tmp_path) == []
