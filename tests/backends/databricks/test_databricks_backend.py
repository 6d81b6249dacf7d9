"""The databricks backend end to end: mlproj -> databricks-sdk -> strict fake workspace -> launcher
-> cluster-side ``mlproj run --run-id`` -> the real MLflow server."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import tarfile
import time
from pathlib import Path

import pytest
from conftest import TOKEN, mlproj_subprocess_argv

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


def only_run(mlflow_client, experiment_id: str = '0'):
    runs = mlflow_client.search_runs([experiment_id], order_by=['attributes.start_time DESC'], max_results=1)
    assert runs
    return runs[0]


def test_new_cluster_end_to_end(repo, workspace, dbx_env, mlflow_client, capsys, tmp_path):
    config = {**NEW_CLUSTER, **FAST}  # a plain cluster spec, as with `mlflow run -b databricks -c spec.json`
    exp = mlflow_client.create_experiment(f'dbx-e2e-{tmp_path.name}')
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

    assert task['libraries'] == [{'pypi': {'package': f'mlproj=={__version__}'}}]
    spt = task['spark_python_task']
    archive = tags['mlproj.databricks.archive']
    assert archive.startswith('dbfs:/mlproj/projects/') and archive.endswith('.tar.gz')
    assert spt['python_file'].startswith('dbfs:/mlproj/launchers/')
    assert spt['parameters'] == [
        archive, '--env', f'MLFLOW_TRACKING_URI={dbx_env}', '--env', f'MLFLOW_EXPERIMENT_ID={exp}', '--',
        '-e', 'main', '--run-id', run.info.run_id, '--env-manager', 'local', '-P', 'alpha=0.3', '-P', "word=it's a test"]
    assert db_run.history[0] == 'PENDING' and db_run.history[-1] == 'TERMINATED SUCCESS'
    assert 'RUNNING' in db_run.history
