"""Backends installed by other packages: entry-point groups ``mlproj.backends`` and ``mlflow.project_backend``."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time


def only_run(mlflow_client):
    runs = mlflow_client.search_runs(['0'])
    assert len(runs) == 1, [r.info.run_id for r in runs]
    return runs[0]


def test_both_groups_are_listed(run_mlproj, project):
    res = run_mlproj('run', str(project), '-b', 'nosuch')
    assert res.returncode == 69
    listed = res.stderr.split('available: ')[1].strip().split(', ')
    for name in ('recording', 'broken', 'mlflow-local', 'native', 'local', 'ray', 'slurm', 'kubernetes'):
        assert name in listed


def test_native_plugin_runs(run_mlproj, project, mlflow_client):
    res = run_mlproj('run', str(project), '-b', 'native', '-P', 'x=5')
    assert res.returncode == 0, res.stderr
    run = only_run(mlflow_client)
    assert f'main x=5 run={run.info.run_id}' in res.stdout
    assert run.data.tags['testplugin.native'] == 'yes'
    assert run.data.tags['mlflow.project.backend'] == 'native'
    assert run.info.status == 'FINISHED'


def test_mlflow_plugin_gets_mlflows_arguments_and_the_existing_run(run_mlproj, project, mlflow_client, tmp_path,
                                                                    tracking_uri):
    config = {'command': 'echo plugin ran with $MLFLOW_RUN_ID', 'cluster': 'c1'}
    res = run_mlproj('run', str(project), '-b', 'recording', '-c', json.dumps(config), '-P', 'x=7')
    assert res.returncode == 0, res.stderr
    run = only_run(mlflow_client)                     # the plugin reused the run: no second run
    assert f'plugin ran with {run.info.run_id}' in res.stdout
    rec = json.loads((tmp_path / 'record.json').read_text())
    assert rec['project_uri'] == str(project)
    assert rec['entry_point'] == 'main' and rec['params'] == {'x': '7'} and rec['version'] is None
    assert rec['tracking_uri'] == tracking_uri and rec['fluent_tracking_uri'] == tracking_uri
    assert rec['experiment_id'] == '0'
    cfg = rec['backend_config']
    assert cfg['_mlflow_local_backend_run_id'] == run.info.run_id
    assert cfg['cluster'] == 'c1' and cfg['ENV_MANAGER'] == 'local' and cfg['SYNCHRONOUS'] is True
    assert {'DOCKER_ARGS', 'STORAGE_DIR', 'build_image', 'docker_auth'} <= set(cfg)
    assert run.info.status == 'FINISHED'
    assert run.data.tags['mlflow.project.backend'] == 'recording'


def test_mlflow_plugin_is_told_it_does_not_see_an_entry_points_env(run_mlproj, project, mlflow_client):
    (project / 'own.yaml').write_text('dependencies: []\n')
    (project / 'MLproject').write_text('name: plug\nentry_points:\n  main:\n    python_env: own.yaml\n'
                                       '    command: "echo main"\n')
    res = run_mlproj('run', str(project), '-b', 'recording', '--env-manager', 'local',
                     '-c', json.dumps({'command': 'true'}))
    assert res.returncode == 0, res.stderr
    assert "entry point 'main' declares its own environment, which MLflow backend plugin 'recording' does " \
           'not see' in res.stderr


def test_mlflow_plugin_failure_keeps_the_exit_code(run_mlproj, project, mlflow_client):
    res = run_mlproj('run', str(project), '-b', 'recording', '-c', json.dumps({'command': 'echo no; exit 4'}))
    assert res.returncode == 4, res.stderr
    assert only_run(mlflow_client).info.status == 'FAILED'


def test_mlflow_plugin_cancel_records_killed(mlproj_env, project, mlflow_client, tmp_path):
    config = json.dumps({'command': 'echo started; sleep 60; echo never'})
    proc = subprocess.Popen([sys.executable, '-m', 'mlproj', 'run', str(project), '-b', 'recording', '-c', config],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=mlproj_env)
    try:
        deadline = time.monotonic() + 60
        line = ''
        while 'started' not in line and time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line or proc.poll() is None, proc.stderr.read()
        time.sleep(1.0)  # the plugin's child can print before the CLI installs its signal handlers
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    assert 'never' not in out
    assert (tmp_path / 'record.json.cancel').read_text() == 'cancelled'   # the plugin's cancel() ran
    assert only_run(mlflow_client).info.status == 'KILLED'


def test_mlflow_plugin_error_is_one_line(run_mlproj, project, mlflow_client):
    res = run_mlproj('run', str(project), '-b', 'broken')
    assert res.returncode == 69
    assert res.stderr.strip().splitlines()[-1] == ("mlproj: error: backend plugin 'broken' failed: cannot reach the "
                                                   "scheduler at sched.example:1234 second line of detail")
    assert 'Traceback' not in res.stderr
    assert only_run(mlflow_client).info.status == 'FAILED'


def test_unloadable_plugin_is_one_line_and_creates_no_run(run_mlproj, project, mlflow_client):
    res = run_mlproj('run', str(project), '-b', 'unloadable')
    assert res.returncode == 69
    assert "backend plugin 'unloadable' failed to load" in res.stderr and 'Traceback' not in res.stderr
    assert mlflow_client.search_runs(['0']) == []


def test_mlflows_own_local_backend_works_as_a_plugin(run_mlproj, project, mlflow_client):
    """MLflow's LocalBackend, loaded through the plugin group: a real third-party AbstractBackend."""
    res = run_mlproj('run', str(project), '-b', 'mlflow-local', '-P', 'x=3')
    assert res.returncode == 0, res.stderr
    run = only_run(mlflow_client)
    assert f'main x=3 run={run.info.run_id}' in res.stdout
    assert run.info.status == 'FINISHED'
    assert run.data.tags['mlflow.project.backend'] == 'mlflow-local'
