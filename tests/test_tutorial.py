"""The README's main job: the tutorial project with the default environment manager.

On a machine without conda, its conda.yaml is mapped onto PyPI and built with uv; the run is
tracked in MLflow's default store (./mlflow.db in the working directory).
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.helpers import REPO, mlproj_bin

pytestmark = pytest.mark.slow  # a cold uv environment with scikit-learn and pandas


def _same_mlflow_as_this_process(tmp_path: Path) -> dict[str, str]:
    """The project's environment gets the mlflow-skinny of the test process (through uv's
    ``UV_CONSTRAINT``, in an environment store of its own so an environment built with another
    release is not reused).  The tutorial asks for ``mlflow-skinny>=3.0``: on a user's machine that
    resolves to the release ``pip install mlproj[run]`` installed too, but CI pins its venv
    (.ci/constraints-dev.txt) while the index may have a newer release, and the newer MLflow of the
    project migrates ./mlflow.db to a schema the older client reading it below refuses."""
    from importlib.metadata import version

    pin = tmp_path / 'constraints.txt'
    pin.write_text(f"mlflow-skinny=={version('mlflow-skinny')}\n")
    return {'UV_CONSTRAINT': str(pin), 'MLPROJ_ENV_ROOT': str(tmp_path / 'envs')}


def test_tutorial_runs_in_default_store_with_default_env_manager(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != 'MLFLOW_TRACKING_URI'}
    env.update(_same_mlflow_as_this_process(tmp_path))
    r = subprocess.run([mlproj_bin(), 'run', str(REPO / 'examples' / 'tutorial'), '-e', 'train', '-P', 'alpha=0.8'],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'Model trained with R2 score' in r.stdout
    assert (tmp_path / 'mlflow.db').exists()

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f'sqlite:///{tmp_path}/mlflow.db')
    (run,) = client.search_runs(['0'])
    assert run.info.status == 'FINISHED'
    assert run.data.params == {'alpha': '0.8', 'max_iter': '100', 'data_path': 'data.csv'}
    assert run.data.metrics['r2_score'] > 0.9
    tags = run.data.tags
    assert tags['mlflow.project.entryPoint'] == 'train'
    assert tags['mlflow.project.env'] == 'uv' and tags['mlproj.env.hash']
    assert tags['mlflow.source.type'] == 'PROJECT'
    assert tags['mlflow.source.git.commit']  # the example lives in this Git repository
    artifacts = Path(run.info.artifact_uri.replace('file://', ''))
    logged = [a.path for a in client.list_artifacts(run.info.run_id)]
    models = client.search_logged_models(experiment_ids=['0']) if hasattr(client, 'search_logged_models') else []
    assert 'model' in logged or any(m.source_run_id == run.info.run_id for m in models), (logged, artifacts)
