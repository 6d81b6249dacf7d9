from __future__ import annotations

import json

from mlproj.cli import main
from tests.helpers import write_project


def test_show_json_lists_entry_points_parameters_and_commands(tmp_path, capsys):
    write_project(tmp_path, 'name: demo\npython_env: python_env.yaml\nentry_points:\n  train:\n    parameters:\n'
                  '      alpha: {type: float, default: 0.5}\n      data: path\n'
                  '    command: "python train.py --alpha {alpha} {data}"\n',
                  {'python_env.yaml': 'python: "3.11"\ndependencies: []\n'})
    assert main(['show', str(tmp_path), '--json']) == 0
    info = json.loads(capsys.readouterr().out)
    assert info['name'] == 'demo'
    assert info['environment']['kind'] == 'python'
    train = info['entry_points']['train']
    assert train['parameters'] == {'alpha': {'type': 'float', 'default': '0.5', 'required': False},
                                   'data': {'type': 'path', 'default': None, 'required': True}}
    assert train['example'] == "python train.py --alpha 0.5 '<data>'"


def test_show_text_and_errors(tmp_path, capsys):
    write_project(tmp_path, 'entry_points:\n  main:\n    command: "echo hi"\n')
    assert main(['show', str(tmp_path)]) == 0
    assert 'entry point main:' in capsys.readouterr().out
    assert main(['show', str(tmp_path), '-e', 'nope']) == 65
    assert "unknown entry point 'nope'" in capsys.readouterr().err
    assert main(['show', str(tmp_path / 'missing')]) == 67


def test_version_and_help(capsys):
    assert main(['--version']) == 0
    assert 'mlproj' in capsys.readouterr().out
    assert main(['--help']) == 0
    out = capsys.readouterr().out
    for command in ('run', 'show', 'lint', 'reproduce', 'cache', 'env'):
        assert command in out
    assert main(['no-such-command']) == 2
