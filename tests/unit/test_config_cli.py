"""`mlproj config show` and config defaults reaching `mlproj run --dry-run` / `mlproj sweep`."""
from __future__ import annotations

import json

from mlproj.cli import main


def _project(tmp_path, mlproj_toml=''):
    d = tmp_path / 'proj'
    d.mkdir()
    (d / 'MLproject').write_text('name: p\nentry_points:\n  main:\n    parameters:\n      alpha: {type: float, '
                                 'default: 0.5}\n    command: "python -c pass {alpha}"\n')
    if mlproj_toml:
        (d / 'mlproj.toml').write_text(mlproj_toml)
    return d


def _user(tmp_path, monkeypatch, text):
    xdg = tmp_path / 'xdg'
    (xdg / 'mlproj').mkdir(parents=True)
    (xdg / 'mlproj' / 'config.toml').write_text(text)
    monkeypatch.setenv('XDG_CONFIG_HOME', str(xdg))
    return xdg / 'mlproj' / 'config.toml'


def test_config_show_json_names_each_source(tmp_path, monkeypatch, capsys):
    user = _user(tmp_path, monkeypatch, '[run]\ntracking-uri = "sqlite:///x.db"\n')
    d = _project(tmp_path, '[run]\nreuse = true\n')
    monkeypatch.setenv('MLPROJ_KILL_GRACE', '4')
    monkeypatch.setenv('MLPROJ_GIT_TOKEN', 'hunter2')
    monkeypatch.delenv('MLFLOW_TRACKING_URI', raising=False)
    assert main(['config', 'show', str(d), '--json']) == 0
    out = capsys.readouterr().out
    assert 'hunter2' not in out
    rows = {r['name']: r for r in json.loads(out)['settings']}
    assert (rows['run.reuse']['value'], rows['run.reuse']['source']) == (True, 'project')
    assert rows['run.reuse']['where'] == f'{d / "mlproj.toml"}:2'
    assert rows['run.tracking-uri']['source'] == 'user' and rows['run.tracking-uri']['where'] == f'{user}:2'
    assert (rows['MLPROJ_KILL_GRACE']['value'], rows['MLPROJ_KILL_GRACE']['source']) == (4.0, 'env')
    assert rows['MLPROJ_GIT_TOKEN']['value'] == '***'
    assert rows['sweep.max-parallel']['source'] == 'default'


def test_bad_config_file_is_one_line_exit_64(tmp_path, monkeypatch, capsys):
    user = _user(tmp_path, monkeypatch, '[run]\nreuse = maybe\n')
    assert main(['config', 'show']) == 64
    err = capsys.readouterr().err
    assert err.startswith('mlproj: error: invalid TOML') and f'{user}:2:' in err
    assert len(err.strip().splitlines()) == 1 and 'Traceback' not in err


def test_run_dry_run_uses_config_defaults(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv('MLFLOW_TRACKING_URI', raising=False)
    _user(tmp_path, monkeypatch, f'[run]\ntracking-uri = "sqlite:///{tmp_path}/u.db"\n')
    d = _project(tmp_path, '[run]\nenv-manager = "local"\nexperiment-name = "from-project"\n')
    assert main(['run', str(d), '--dry-run', '--json']) == 0
    info = json.loads(capsys.readouterr().out)
    assert info['env_manager'] == 'local'
    assert info['tracking_uri'] == f'sqlite:///{tmp_path}/u.db'
    assert info['experiment'] == {'name': 'from-project', 'id': None}
    # the command line wins
    assert main(['run', str(d), '--dry-run', '--json', '--experiment-id', '7', '--tracking-uri',
                 f'sqlite:///{tmp_path}/c.db']) == 0
    info = json.loads(capsys.readouterr().out)
    assert info['experiment'] == {'name': None, 'id': '7'}
    assert info['tracking_uri'] == f'sqlite:///{tmp_path}/c.db'


def test_forbidden_project_key_stops_run(tmp_path, capsys):
    d = _project(tmp_path, '[run]\nbackend = "databricks"\n')
    assert main(['run', str(d), '--dry-run']) == 64
    assert 'run.backend cannot be set in a project file' in capsys.readouterr().err


def test_show_names_the_manager_run_would_use(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv('PATH', '/usr/bin:/bin')  # no conda, mamba or micromamba: a conda_env runs with uv
    d = _project(tmp_path)
    (d / 'MLproject').write_text('name: p\nconda_env: conda.yaml\nentry_points:\n  main:\n    command: "true"\n')
    (d / 'conda.yaml').write_text('dependencies:\n  - python=3.11\n')
    assert main(['show', str(d), '--json']) == 0
    env = json.loads(capsys.readouterr().out)['environment']
    assert (env['kind'], env['env_manager']) == ('conda', 'uv')
    (d / 'mlproj.toml').write_text('[run]\nenv-manager = "local"\n')
    assert main(['show', str(d)]) == 0
    assert 'environment: conda (' in (out := capsys.readouterr().out) and 'env manager local' in out
