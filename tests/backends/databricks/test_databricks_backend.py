"""The databricks backend end to end: mlproj -> databricks-sdk -> strict fake workspace -> launcher
-> cluster-side ``mlproj run --run-id`` -> the real MLflow server."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from tests.helpers import free_port, mlproj_argv
from tests.helpers.backends import DATABRICKS_TOKEN as TOKEN

NEW_CLUSTER = {'spark_version': '15.4.x-scala2.12', 'num_workers': 1, 'node_type_id': 'Standard_DS3_v2'}
FAST = {'poll_max_seconds': 0.5, 'retry_timeout_seconds': 20}


def cli(args: list[str], capsys) -> tuple[int, str, str]:
    from mlproj.cli import main

    try:
        code = main(args)
    except SystemExit as e:  # `mlproj run` exits through sys.exit
        code = e.code if isinstance(e.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def run_args(repo: Path, config: dict, *extra: str) -> list[str]:
    return ['run', f'{repo}#proj', '-b', 'databricks', '-c', json.dumps(config), *extra]


def submitted_body(workspace) -> dict:
    calls = workspace.calls('/jobs/runs/submit', 'POST')
    assert calls, workspace.endpoints()
    return calls[-1].body


def only_run(mlflow_client, experiment_id: str | None = None):
    """The latest run of the test's experiment (MLFLOW_EXPERIMENT_NAME, set per test) or of ``experiment_id``."""
    if experiment_id is None:
        experiment_id = mlflow_client.get_experiment_by_name(os.environ['MLFLOW_EXPERIMENT_NAME']).experiment_id
    runs = mlflow_client.search_runs([experiment_id], order_by=['attributes.start_time DESC'], max_results=1)
    assert runs
    return runs[0]


def test_new_cluster_end_to_end(repo, workspace, dbx_env, mlflow_client, capsys, tmp_path):
    config = {**NEW_CLUSTER, **FAST}  # a plain cluster spec, as with `mlflow run -b databricks -c spec.json`
    exp = mlflow_client.create_experiment(os.environ['MLFLOW_EXPERIMENT_NAME'] + '-by-id')
    code, out, err = cli(run_args(repo, config, '-P', 'alpha=0.3', '-P', "word=it's a test", '--experiment-id', exp),
                         capsys)
    assert code == 0, err
    run = only_run(mlflow_client, exp)
    # the run ran on the "cluster" through the launcher and logged into the client-created run
    assert f'TRAIN alpha=0.3 word="it\'s a test" run={run.info.run_id}' in out
    assert 'TOKEN-IN-ENV=False' in out
    assert run.info.status == 'FINISHED'
    assert run.data.metrics['alpha_sq'] == pytest.approx(0.09)
    assert run.data.params == {'alpha': '0.3', 'word': "it's a test"}
    tags = run.data.tags
    db_run = next(iter(workspace.runs.values()))
    assert tags['mlflow.databricks.shellJobRunID'] == str(db_run.run_id)
    assert tags['mlflow.databricks.shellJobID'] == str(db_run.job_id)
    assert tags['mlflow.databricks.runURL'] == f'{workspace.url}/?o=1234567890123456#job/{db_run.job_id}/run/{db_run.run_id}'
    assert tags['mlflow.databricks.webappURL'] == workspace.url
    assert tags['mlflow.project.backend'] == 'databricks'
    assert tags['mlflow.source.git.commit']
    assert f"Check the run's status at {tags['mlflow.databricks.runURL']}" in err
    # the job: one spark_python_task on a new cluster with mlproj as a library, argv only
    body = submitted_body(workspace)
    assert body['idempotency_token'] == run.info.run_id
    (task,) = body['tasks']
    assert task['new_cluster'] == NEW_CLUSTER
    from mlproj import __version__

    assert task['libraries'] == [{'pypi': {'package': f'mlproj[run]=={__version__}'}}]
    spt = task['spark_python_task']
    archive = tags['mlproj.databricks.archive']
    assert archive.startswith('dbfs:/mlproj/projects/') and archive.endswith('.tar.gz')
    assert spt['python_file'].startswith('dbfs:/mlproj/launchers/')
    assert spt['parameters'] == [
        archive, '--env', f'MLFLOW_TRACKING_URI={dbx_env}', '--env', f'MLFLOW_EXPERIMENT_ID={exp}', '--',
        '-e', 'main', '--run-id', run.info.run_id, '--env-manager', 'local', '-P', 'alpha=0.3', '-P', "word=it's a test"]
    assert db_run.history[0] == 'PENDING' and db_run.history[-1] == 'TERMINATED SUCCESS'
    assert 'RUNNING' in db_run.history


SUCCESS_SCRIPT = [('PENDING', None, 0.2, 'Waiting for cluster'), ('RUNNING', None, 0.2, 'In run'),
                  ('TERMINATED', 'SUCCESS', 0, '')]


def assert_no_token(workspace, *texts: str, run=None) -> None:
    for text in texts:
        assert TOKEN not in text
    for r in workspace.requests:
        assert TOKEN not in json.dumps(r.body, default=repr)
        assert TOKEN not in json.dumps(r.headers)
    if run is not None:
        assert TOKEN not in json.dumps({**run.data.tags, **run.data.params})


def test_existing_cluster_on_workspace_files(repo, workspace, dbx_env, mlflow_client, capsys):
    """Runs for real from workspace files on an existing cluster, with extra libraries, name and timeout."""
    config = {'existing_cluster_id': '0101-120000-known', 'upload_dir': '/Workspace/Users/t@example.com/mlproj',
              'libraries': [{'pypi': {'package': 'scikit-learn==1.5.2'}}], 'run_name': 'nightly', 'timeout_seconds': 600,
              **FAST}
    code, out, err = cli(run_args(repo, config, '-e', 'quick'), capsys)
    assert code == 0, err
    assert 'quick run' in out
    (task,) = submitted_body(workspace)['tasks']
    body = submitted_body(workspace)
    assert body['run_name'] == 'nightly' and body['timeout_seconds'] == 600
    assert task['existing_cluster_id'] == '0101-120000-known' and 'new_cluster' not in task
    assert task['libraries'][0] == {'pypi': {'package': 'scikit-learn==1.5.2'}}
    assert task['libraries'][1]['pypi']['package'].startswith('mlproj[run]==')
    assert task['spark_python_task']['python_file'].startswith('/Workspace/Users/t@example.com/mlproj/launchers/')
    assert workspace.calls('/workspace/import', 'POST') and not workspace.calls('/dbfs/create')
    assert only_run(mlflow_client).info.status == 'FINISHED'
    assert_no_token(workspace, out, err)


def test_serverless_on_a_volume(repo, workspace, dbx_env, mlflow_client, capsys):
    config = {'serverless': True, 'upload_dir': '/Volumes/main/default/mlproj/runs',
              'libraries': [{'pypi': {'package': 'pandas>=2'}}], **FAST}
    code, out, err = cli(run_args(repo, config, '-e', 'quick'), capsys)
    assert code == 0, err
    assert 'quick run' in out
    body = submitted_body(workspace)
    (task,) = body['tasks']
    assert task['environment_key'] == 'mlproj' and 'libraries' not in task
    (env,) = body['environments']
    assert env['environment_key'] == 'mlproj'
    assert env['spec']['environment_version'] == '2'
    assert env['spec']['dependencies'][0] == 'pandas>=2'
    assert env['spec']['dependencies'][1].startswith('mlproj[run]==')
    assert task['spark_python_task']['parameters'][0].startswith('/Volumes/main/default/mlproj/runs/projects/')
    assert workspace.calls('/api/2.0/fs/directories/Volumes/main/default/mlproj/runs/projects', 'PUT')


def test_archive_holds_the_subfolder_only_and_is_uploaded_once(repo, workspace, dbx_env, capsys):
    config = {**NEW_CLUSTER, **FAST}
    workspace.script_next_run(SUCCESS_SCRIPT)
    assert cli(run_args(repo, config, '-e', 'quick'), capsys)[0] == 0
    archive = submitted_body(workspace)['tasks'][0]['spark_python_task']['parameters'][0]
    with tarfile.open(workspace.file(archive)) as tar:
        names = sorted(m.name for m in tar.getmembers() if m.isfile())
        secret_free = all(TOKEN.encode() not in tar.extractfile(m).read() for m in tar.getmembers() if m.isfile())
    assert names == ['project/MLproject', 'project/data.csv', 'project/fail.py', 'project/sleep.py',
                     'project/train.py', 'project/untracked.txt']
    assert secret_free
    creates = len(workspace.calls('/dbfs/create'))
    assert creates == 2  # the launcher and the project

    workspace.script_next_run(SUCCESS_SCRIPT)
    code, out, err = cli(run_args(repo, config, '-e', 'quick'), capsys)
    assert code == 0, err
    assert f'Project already uploaded at {archive}' in err
    assert len(workspace.calls('/dbfs/create')) == creates  # nothing uploaded again
    assert submitted_body(workspace)['tasks'][0]['spark_python_task']['parameters'][0] == archive

    (repo / 'proj' / 'data.csv').write_text('x,y\n3,4\n')
    workspace.script_next_run(SUCCESS_SCRIPT)
    assert cli(run_args(repo, config, '-e', 'quick'), capsys)[0] == 0
    assert submitted_body(workspace)['tasks'][0]['spark_python_task']['parameters'][0] != archive
    assert len(workspace.calls('/dbfs/create')) == creates + 1  # only the new project archive


def test_partial_upload_is_replaced(repo, workspace, dbx_env, capsys):
    """A file of the wrong size at the archive's path (an interrupted upload) is uploaded again."""
    config = {**NEW_CLUSTER, **FAST}
    workspace.script_next_run(SUCCESS_SCRIPT)
    assert cli(run_args(repo, config, '-e', 'quick'), capsys)[0] == 0
    archive = submitted_body(workspace)['tasks'][0]['spark_python_task']['parameters'][0]
    local = workspace.file(archive)
    good = local.read_bytes()
    local.write_bytes(good[:10])
    workspace.script_next_run(SUCCESS_SCRIPT)
    code, _, err = cli(run_args(repo, config, '-e', 'quick'), capsys)
    assert code == 0, err
    assert f'Uploaded project to {archive}' in err
    assert local.read_bytes() == good


def test_wheel_is_uploaded_and_installed_instead_of_pypi(repo, workspace, dbx_env, capsys, tmp_path):
    wheel = tmp_path / 'mlproj-0.1.0-py3-none-any.whl'
    wheel.write_bytes(b'PK\x03\x04 not really a wheel')
    workspace.script_next_run(SUCCESS_SCRIPT)
    code, _, err = cli(run_args(repo, {**NEW_CLUSTER, **FAST, 'mlproj_wheel': str(wheel)}, '-e', 'quick'), capsys)
    assert code == 0, err
    (task,) = submitted_body(workspace)['tasks']
    (lib,) = task['libraries']
    assert lib['whl'].startswith('dbfs:/mlproj/wheels/') and lib['whl'].endswith('/mlproj-0.1.0-py3-none-any.whl')
    assert workspace.file(lib['whl']).read_bytes() == wheel.read_bytes()


@pytest.mark.parametrize('script, status, code, message', [
    ([('PENDING', None, 0.1, ''), ('INTERNAL_ERROR', 'FAILED', 0, 'Cluster terminated. Reason: Cloud provider quota')],
     'FAILED', 1, 'Cloud provider quota'),
    ([('PENDING', None, 0.1, ''), ('SKIPPED', None, 0, 'Run skipped: cluster not ready')], 'FAILED', 1,
     'Run skipped'),
    ([('RUNNING', None, 0.2, ''), ('TERMINATED', 'CANCELED', 0, 'Run cancelled by a user')], 'KILLED', 143,
     'TERMINATED CANCELED'),
    ([('RUNNING', None, 0.2, ''), ('TERMINATED', 'TIMEDOUT', 0, 'Run timed out')], 'FAILED', 1, 'TIMEDOUT'),
])
def test_terminal_states_map_to_mlflow(repo, workspace, dbx_env, mlflow_client, capsys, script, status, code, message):
    workspace.script_next_run(script)
    got, out, err = cli(run_args(repo, {**NEW_CLUSTER, **FAST}, '-e', 'quick'), capsys)
    assert got == code, err
    assert message in err
    assert only_run(mlflow_client).info.status == status


def test_failed_job_prints_output_and_fails_the_run(repo, workspace, dbx_env, mlflow_client, capsys):
    code, out, err = cli(run_args(repo, {**NEW_CLUSTER, **FAST}, '-e', 'fail'), capsys)
    assert code == 1
    assert 'about to fail' in out
    assert 'Databricks error: Python process exited with code 3' in err
    run = only_run(mlflow_client)
    assert run.info.status == 'FAILED'


def test_quiet_shows_the_jobs_output_and_error_and_nothing_of_mlprojs(repo, workspace, dbx_env, mlflow_client,
                                                                      capsys):
    from mlproj import quiet

    real_stderr = sys.stderr
    try:
        code, out, err = cli(['-q', *run_args(repo, {**NEW_CLUSTER, **FAST}, '-e', 'fail')], capsys)
    finally:
        sys.stderr = real_stderr  # quiet mode swaps sys.stderr for its filter
    assert not quiet.active()
    assert code == 1
    assert 'about to fail' in out
    assert err.splitlines() == ['mlproj: Databricks error: Python process exited with code 3'], err
    assert workspace.calls('/jobs/runs/get-output')[0].query == {'run_id': [str(next(iter(workspace.runs.values())).task_run_id)]}


def test_timeout_ends_the_run_failed(repo, workspace, dbx_env, mlflow_client, capsys):
    code, out, err = cli(run_args(repo, {**NEW_CLUSTER, **FAST, 'timeout_seconds': 2}, '-e', 'sleep'), capsys)
    assert code == 1
    assert 'timed out after 2 s' in err
    assert 'woke up' not in out
    assert only_run(mlflow_client).info.status == 'FAILED'
    assert next(iter(workspace.runs.values())).history[-1] == 'TERMINATED TIMEDOUT'


def test_no_wait_returns_the_run_id_and_the_cluster_finishes_the_run(repo, workspace, dbx_env, mlflow_client, capsys):
    workspace.gate.clear()  # hold the job in PENDING until the client has returned
    code, out, err = cli(run_args(repo, {**NEW_CLUSTER, **FAST}, '-e', 'quick', '--no-wait'), capsys)
    assert code == 0, err
    run_id = out.strip()
    assert len(run_id) == 32
    assert mlflow_client.get_run(run_id).info.status == 'RUNNING'
    workspace.gate.set()
    # nobody watches: the cluster-side mlproj records the terminal status itself
    deadline = time.monotonic() + 60
    while mlflow_client.get_run(run_id).info.status == 'RUNNING' and time.monotonic() < deadline:
        time.sleep(0.2)
    assert mlflow_client.get_run(run_id).info.status == 'FINISHED'
    assert not workspace.calls('/jobs/runs/get-output')


def test_transient_errors_are_retried_and_submit_is_idempotent(repo, workspace, dbx_env, mlflow_client, capsys):
    workspace.fail('GET', '/dbfs/get-status', 429, headers={'Retry-After': '1'})
    workspace.fail('POST', '/jobs/runs/submit', 500, after=True)  # the run is created, the answer lost
    workspace.fail('GET', '/jobs/runs/get', 503, headers={'Retry-After': '1'})
    workspace.fail('GET', '/jobs/runs/get', 500, times=2)
    code, out, err = cli(run_args(repo, {**NEW_CLUSTER, **FAST}, '-e', 'quick'), capsys)
    assert code == 0, err
    assert len(workspace.calls('/jobs/runs/submit')) == 2
    assert len(workspace.runs) == 1  # the retried submit found the run by its idempotency token
    statuses = [r.status for r in workspace.requests]
    assert statuses.count(429) == 1 and statuses.count(503) == 1 and statuses.count(500) == 3
    assert only_run(mlflow_client).info.status == 'FINISHED'


def test_retries_are_bounded(repo, workspace, dbx_env, mlflow_client, capsys):
    workspace.fail('POST', '/jobs/runs/submit', 500, times=1000, message='backend exploded')
    code, out, err = cli(run_args(repo, {**NEW_CLUSTER, 'retry_timeout_seconds': 3}, '-e', 'quick'), capsys)
    assert code == 69
    # backoff 0.5 s, 1 s, 2 s: a 3 s budget allows at most 4 attempts
    assert 1 <= len(workspace.calls('/jobs/runs/submit')) <= 4
    assert err.count('retrying in') == len(workspace.calls('/jobs/runs/submit')) - 1
    last = err.strip().splitlines()[-1]
    assert last.startswith('mlproj: error: submitting the job run failed: INTERNAL_ERROR: backend exploded')
    assert not workspace.runs
    assert only_run(mlflow_client).info.status == 'FAILED'


@pytest.mark.parametrize('setup, expected', [
    ('bad-token', 'Databricks rejected the credentials (HTTP 401) while checking dbfs:/mlproj/launchers/'),
    ('forbidden-upload', 'Databricks denied permission (HTTP 403) while uploading dbfs:/mlproj/'),
    ('forbidden-submit', 'Databricks denied permission (HTTP 403) while submitting the job run'),
])
def test_auth_errors_are_one_line_with_exit_69(repo, workspace, dbx_env, mlflow_client, capsys, monkeypatch,
                                               setup, expected):
    if setup == 'bad-token':
        monkeypatch.setenv('DATABRICKS_TOKEN', TOKEN[:-6] + 'WRONG!')
    elif setup == 'forbidden-upload':
        workspace.fail('POST', '/dbfs/create', 403, message=f'User has no permission (token {TOKEN})')
    else:
        workspace.fail('POST', '/jobs/runs/submit', 403, times=5, message='Cannot use cluster policy')
    code, out, err = cli(run_args(repo, {**NEW_CLUSTER, **FAST}, '-e', 'quick'), capsys)
    assert code == 69
    errors = [line for line in err.splitlines() if line.startswith('mlproj: error:')]
    assert len(errors) == 1 and expected in errors[0], err
    assert 'Traceback' not in err
    assert_no_token(workspace, out, err, run=only_run(mlflow_client))
    assert TOKEN[:-6] not in err
    assert only_run(mlflow_client).info.status == 'FAILED'
    assert not workspace.runs


def test_validation_happens_before_any_api_call(repo, workspace, dbx_env, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv('MLFLOW_TRACKING_URI', (tmp_path / 'mlruns').as_uri())
    code, _, err = cli(run_args(repo, NEW_CLUSTER, '-e', 'quick'), capsys)
    assert code == 69
    assert "needs the MLflow tracking URI 'databricks'" in err
    monkeypatch.setenv('MLFLOW_TRACKING_URI', dbx_env)
    code, _, err = cli(run_args(repo, {**NEW_CLUSTER, 'spark_verison': 'x'}, '-e', 'quick'), capsys)
    assert code == 69 and "'spark_verison'" in err
    assert workspace.requests == []


def test_profile_from_a_databrickscfg(repo, workspace, dbx_env, mlflow_client, capsys, monkeypatch, tmp_path):
    cfg = tmp_path / 'databrickscfg'
    cfg.write_text(f'[DEFAULT]\nhost = http://127.0.0.1:9\ntoken = nope\n\n[dev]\nhost = {workspace.url}\n'
                   f'token = {TOKEN}\n')
    monkeypatch.setenv('DATABRICKS_CONFIG_FILE', str(cfg))
    monkeypatch.delenv('DATABRICKS_HOST')
    monkeypatch.delenv('DATABRICKS_TOKEN')
    workspace.script_next_run(SUCCESS_SCRIPT)
    code, out, err = cli(run_args(repo, {**NEW_CLUSTER, **FAST, 'profile': 'dev'}, '-e', 'quick'), capsys)
    assert code == 0, err
    assert 'mlproj/' in workspace.calls('/jobs/runs/submit')[0].headers['User-Agent']
    code, out, err = cli(run_args(repo, {**NEW_CLUSTER, **FAST, 'profile': 'missing'}, '-e', 'quick'), capsys)
    assert code == 69 and 'cannot configure Databricks authentication' in err and 'missing' in err
    assert TOKEN not in err


def test_python_api_wait_status_and_cancel(repo, workspace, dbx_env, mlflow_client):
    import mlproj

    config = {**NEW_CLUSTER, **FAST}
    workspace.script_next_run(SUCCESS_SCRIPT)
    workspace.gate.clear()  # hold the run in PENDING
    submitted = mlproj.run(f'{repo}#proj', 'quick', backend='databricks', backend_config=config, synchronous=False)
    assert submitted.get_status() == 'SCHEDULED'
    assert submitted.run_page_url and submitted.databricks_run_id in workspace.runs
    workspace.gate.set()
    assert submitted.wait() is True
    assert submitted.get_status() == 'FINISHED' and submitted.exit_code == 0
    assert mlflow_client.get_run(submitted.run_id).info.status == 'FINISHED'

    submitted = mlproj.run(f'{repo}#proj', 'sleep', backend='databricks', backend_config=config, synchronous=False)
    workspace.wait_for(lambda: any(r.life_cycle == 'RUNNING' for r in workspace.runs.values() if not r.done.is_set()))
    submitted.cancel()
    assert submitted.get_status() == 'KILLED' and submitted.exit_code == 143
    assert mlflow_client.get_run(submitted.run_id).info.status == 'KILLED'
    assert workspace.calls('/jobs/runs/cancel', 'POST')


@pytest.mark.parametrize('sig, code', [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_cancels_the_databricks_run(repo, workspace, dbx_env, mlflow_client, tmp_path, sig, code):
    config = {**NEW_CLUSTER, **FAST}
    proc = subprocess.Popen([*mlproj_argv(), 'run', f'{repo}#proj', '-e', 'sleep', '-b', 'databricks',
                             '-c', json.dumps(config)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        def started() -> bool:
            runs = list(workspace.runs.values())
            if not runs:
                return False
            log = workspace.cluster / f'run-{runs[0].run_id}' / 'driver.log'
            return log.exists() and 'sleeping' in log.read_text()

        workspace.wait_for(started, timeout=90)
        os.kill(proc.pid, sig)
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == code, err
    assert 'interrupted, cancelling run' in err
    (db_run,) = workspace.runs.values()
    assert db_run.history[-1] == 'TERMINATED CANCELED'
    assert workspace.calls('/jobs/runs/cancel', 'POST')[0].body == {'run_id': db_run.run_id}
    assert 'woke up' not in db_run.logs
    run = only_run(mlflow_client)
    assert run.info.status == 'KILLED'
    assert_no_token(workspace, out, err, run=run)


def test_unreachable_workspace_is_one_line_within_the_retry_bound(repo, workspace, dbx_env, mlflow_client, capsys,
                                                                   monkeypatch):
    monkeypatch.setenv('DATABRICKS_HOST', f'http://127.0.0.1:{free_port()}')
    code, out, err = cli(run_args(repo, {**NEW_CLUSTER, 'retry_timeout_seconds': 2}, '-e', 'quick'), capsys)
    assert code == 69
    errors = [line for line in err.splitlines() if line.startswith('mlproj: error:')]
    assert len(errors) == 1 and 'no answer after 2 s of retries' in errors[0], err
    assert 'Traceback' not in err and TOKEN not in err
    assert only_run(mlflow_client).info.status == 'FAILED'


def test_wrapped_new_cluster_with_libraries(repo, workspace, dbx_env, capsys):
    config = {'new_cluster': {**NEW_CLUSTER, 'spark_env_vars': {'MODE': 'ci'}},
              'libraries': [{'maven': {'coordinates': 'org.jsoup:jsoup:1.7.2'}}, {'pypi': {'package': 'mlproj>=0.1'}}],
              **FAST}
    workspace.script_next_run(SUCCESS_SCRIPT)
    code, _, err = cli(run_args(repo, config, '-e', 'quick', '--run-name', 'wine'), capsys)
    assert code == 0, err
    body = submitted_body(workspace)
    (task,) = body['tasks']
    assert task['new_cluster'] == {**NEW_CLUSTER, 'spark_env_vars': {'MODE': 'ci'}}
    # the user's own mlproj requirement is kept, not doubled
    assert task['libraries'] == config['libraries']
    assert body['run_name'] == 'wine' and 'timeout_seconds' not in body


def test_the_fake_is_strict(workspace):
    """The fake answers 400 to fields and endpoints outside the flow (and the fixture would fail the test)."""
    from databricks.sdk import WorkspaceClient
    from databricks.sdk.errors import BadRequest
    from databricks.sdk.service import compute, jobs

    w = WorkspaceClient(host=workspace.url, token=TOKEN, config_file='/nonexistent')
    task = jobs.SubmitTask(task_key='t', spark_python_task=jobs.SparkPythonTask(python_file='dbfs:/x.py'),
                           new_cluster=compute.ClusterSpec(spark_version='15.4.x-scala2.12'), max_retries=3)
    with pytest.raises(BadRequest, match='max_retries'):
        w.jobs.submit(run_name='x', tasks=[task])
    with pytest.raises(BadRequest, match='unknown endpoint'):
        list(w.clusters.list())
    with pytest.raises(BadRequest, match='exactly one compute'):
        w.jobs.submit(tasks=[jobs.SubmitTask(task_key='t', spark_python_task=jobs.SparkPythonTask(python_file='x'))])
    assert len(workspace.violations) == 2
    workspace.violations.clear()
    assert not workspace.runs
