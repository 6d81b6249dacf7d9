"""The Databricks guide's commands, verbatim (issue 13, case 9): ``-m databricks --cluster-spec <json>``
and ``-m databricks -c cluster-spec.json --experiment-id <id>``, with the guide's own cluster specs
(a bare new-cluster spec, and the one with ``spark_conf`` for old runtimes), against the strict fake
workspace and the real MLflow server."""
from __future__ import annotations

import json
import os

import pytest

from tests.backends.databricks.test_databricks_backend import SUCCESS_SCRIPT, cli, only_run, submitted_body

# the guide's two example specs, exactly
GUIDE_SPEC = {'spark_version': '5.2.x-scala2.11', 'num_workers': 1, 'node_type_id': 'Standard_DS3_v2'}
GUIDE_SPEC_OLD_RUNTIME = {'spark_version': '4.3.x-scala2.11', 'num_workers': 1, 'node_type_id': 'Standard_DS3_v2',
                          'spark_conf': {'spark.databricks.chauffeur.shellCommandTask.enabled': 'true'}}


def test_mode_and_inline_cluster_spec(repo, workspace, dbx_env, mlflow_client, capsys):
    workspace.script_next_run(SUCCESS_SCRIPT)
    code, _, err = cli(['run', f'{repo}#proj', '-e', 'quick', '-m', 'databricks', '--cluster-spec',
                        json.dumps(GUIDE_SPEC)], capsys)
    assert code == 0, err
    (task,) = submitted_body(workspace)['tasks']
    assert task['new_cluster'] == GUIDE_SPEC
    run = only_run(mlflow_client)
    assert run.info.status == 'FINISHED' and run.data.tags['mlflow.project.backend'] == 'databricks'


@pytest.mark.parametrize('flag', ['-c', '--cluster-spec', '--mode'])
def test_cluster_spec_file_with_spark_conf_and_experiment_id(repo, workspace, dbx_env, mlflow_client, capsys,
                                                            tmp_path, flag):
    spec_file = tmp_path / 'cluster-spec.json'
    spec_file.write_text(json.dumps(GUIDE_SPEC_OLD_RUNTIME, indent=2))
    exp = mlflow_client.create_experiment(os.environ['MLFLOW_EXPERIMENT_NAME'] + '-tutorial')
    workspace.script_next_run(SUCCESS_SCRIPT)
    backend = ['--mode', 'databricks', '-c'] if flag == '--mode' else ['-m', 'databricks', flag]
    code, _, err = cli(['run', f'{repo}#proj', '-e', 'quick', *backend, str(spec_file), '--experiment-id', exp],
                       capsys)
    assert code == 0, err
    (task,) = submitted_body(workspace)['tasks']
    assert task['new_cluster'] == GUIDE_SPEC_OLD_RUNTIME
    assert only_run(mlflow_client, exp).info.status == 'FINISHED'
