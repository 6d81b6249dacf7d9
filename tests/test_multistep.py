"""MLflow's multistep-workflow pattern under mlproj, from a real git daemon and a real mlflow server.

The project (written here, after the pattern of MLflow's ``examples/multistep_workflow``) has three
entry points: ``main`` runs ``prepare`` then ``train`` as nested ``mlflow.run(".", ...)`` calls,
each skipped when a FINISHED run of that entry point with the same parameters *and the same
``mlflow.source.git.commit``* exists.  Under ``mlflow run`` the second workflow run reuses every
step; that only works when the checkout is a Git working tree that MLflow can read the commit from.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import mlproj_bin
from tests.helpers.git import git
from tests.helpers.source import start_daemon, stop

pytestmark = pytest.mark.slow  # a git daemon, mlproj and MLflow subprocesses

MLPROJECT = """\
name: multistep
entry_points:
  prepare:
    parameters:
      rows: {type: int, default: 10}
    command: "python steps.py prepare {rows}"
  train:
    parameters:
      total: {type: string}
      rate: {type: float, default: 0.5}
    command: "python steps.py train {total} {rate}"
  main:
    parameters:
      rows: {type: int, default: 10}
    command: "python workflow.py {rows}"
"""

STEPS_PY = """\
import sys
import mlflow

step = sys.argv[1]
with mlflow.start_run() as run:
    if step == 'prepare':
        total = sum(range(int(sys.argv[2])))
        mlflow.set_tag('total', str(total))
    else:
        mlflow.log_metric('score', float(sys.argv[2]) * float(sys.argv[3]))
    print(f'step {step} ran as {run.info.run_id}')
"""

WORKFLOW_PY = """\
import os
import sys

import mlflow
from mlflow.tracking import MlflowClient


def finished_run(client, experiment_id, entry_point, params, commit):
    # a previous run of this step at this commit with these parameters, if it FINISHED
    query = f"tags.`mlflow.project.entryPoint` = '{entry_point}' and attributes.status = 'FINISHED'"
    for run in client.search_runs([experiment_id], filter_string=query):
        if run.data.tags.get('mlflow.source.git.commit') != commit:
            continue
        if all(run.data.params.get(k) == str(v) for k, v in params.items()):
            return run
    return None


def step(client, experiment_id, entry_point, params, commit):
    found = finished_run(client, experiment_id, entry_point, params, commit)
    if found is not None:
        print(f'reused {entry_point} {found.info.run_id}')
        return found
    # the parent's env manager, as mlproj hands it on (MLflow itself has no default to inherit)
    submitted = mlflow.run('.', entry_point, parameters=params,
                           env_manager=os.environ.get('MLPROJ_ENV_MANAGER') or 'local')
    print(f'ran {entry_point} {submitted.run_id}')
    return client.get_run(submitted.run_id)


with mlflow.start_run() as active:
    client = MlflowClient()
    commit = active.data.tags['mlflow.source.git.commit']
    experiment_id = active.info.experiment_id
    prepared = step(client, experiment_id, 'prepare', {'rows': sys.argv[1]}, commit)
    step(client, experiment_id, 'train', {'total': prepared.data.tags['total'], 'rate': '0.5'}, commit)
"""


@pytest.fixture(scope='module')
def served(tmp_path_factory):
    base = tmp_path_factory.mktemp('multistep')
    home = base / 'home'
    home.mkdir()
    w = base / 'w'
    git('init', '-q', str(w), home=home)
    proj = w / 'pipelines' / 'multistep'
    proj.mkdir(parents=True)
    (proj / 'MLproject').write_text(MLPROJECT)
    (proj / 'steps.py').write_text(STEPS_PY)
    (proj / 'workflow.py').write_text(WORKFLOW_PY)
    (w / 'other').mkdir()
    (w / 'other' / 'big.txt').write_text('not part of the project\n')
    git('add', '-A', cwd=w, home=home)
    git('commit', '-qm', 'workflow', cwd=w, home=home)
    srv = base / 'srv'
    srv.mkdir()
    git('clone', '-q', '--bare', str(w), str(srv / 'multistep.git'), home=home)
    proc, port = start_daemon(srv, home, base / 'daemon.log')
    try:
        yield f'git://127.0.0.1:{port}/multistep.git', git('rev-parse', 'HEAD', cwd=w, home=home)
    finally:
        stop(proc)


def _run(uri: str, tracking: str, tmp: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, 'MLFLOW_TRACKING_URI': tracking,
           'PATH': f'{Path(sys.executable).parent}{os.pathsep}{os.environ.get("PATH", "")}'}
    return subprocess.run([mlproj_bin(), 'run', uri, '--env-manager', 'local', '--experiment-name', 'multistep',
                           '-P', 'rows=4'], env=env, cwd=tmp, capture_output=True, text=True, timeout=700,
                          stdin=subprocess.DEVNULL)


@pytest.mark.timeout(1500)  # 2 workflow runs = 6 MLflow processes on sqlite: minutes on a loaded machine
def test_second_workflow_run_reuses_every_step(served, sqlite_store, tmp_path):
    from mlflow.tracking import MlflowClient

    repo, sha = served
    uri = f'{repo}#pipelines/multistep'
    first = _run(uri, sqlite_store, tmp_path)
    assert first.returncode == 0, first.stderr
    assert 'ran prepare' in first.stdout and 'ran train' in first.stdout, first.stdout
    second = _run(uri, sqlite_store, tmp_path)
    assert second.returncode == 0, second.stderr
    assert 'reused prepare' in second.stdout and 'reused train' in second.stdout, second.stdout
    assert 'ran ' not in second.stdout

    client = MlflowClient(sqlite_store)
    exp = client.get_experiment_by_name('multistep')
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get('mlflow.project.entryPoint') == 'main']
    nested = [r for r in runs if r.data.tags.get('mlflow.project.entryPoint') in ('prepare', 'train')]
    assert len(parents) == 2 and len(nested) == 2  # the second workflow ran no step again
    first_parent = next(p for p in parents if p.info.run_id in {n.data.tags['mlflow.parentRunId'] for n in nested})
    for run in nested:
        tags = run.data.tags
        assert run.info.status == 'FINISHED'
        assert tags['mlflow.parentRunId'] == first_parent.info.run_id
        assert tags['mlflow.source.git.commit'] == sha
        assert tags['mlflow.source.git.repoURL'] == repo
        # the parent's source URI, not the (deleted) temporary checkout
        assert tags['mlflow.source.name'] == uri == first_parent.data.tags['mlflow.source.name']
    for parent in parents:
        assert parent.data.tags['mlflow.source.git.commit'] == sha and parent.info.status == 'FINISHED'


def test_nested_mlproj_run_inherits_the_parents_env_manager(tmp_path):
    """Project code calling `mlproj run` (the child env has MLFLOW_RUN_ID + MLPROJ_ENV_MANAGER)."""
    import json

    (tmp_path / 'MLproject').write_text('name: x\npython_env: python_env.yaml\n'
                                        'entry_points:\n  main:\n    command: "python -V"\n')
    (tmp_path / 'python_env.yaml').write_text('python: "3.11"\ndependencies: []\n')

    def planned(extra: dict[str, str], *args: str) -> str:
        env = {k: v for k, v in os.environ.items() if k not in ('MLFLOW_RUN_ID', 'MLPROJ_ENV_MANAGER')}
        proc = subprocess.run([mlproj_bin(), 'run', str(tmp_path), '--dry-run', '--json', *args],
                              env={**env, **extra}, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)['env_manager']

    own = planned({})
    assert own != 'local'  # a python_env project gets a real environment on its own
    assert planned({'MLFLOW_RUN_ID': 'r1', 'MLPROJ_ENV_MANAGER': 'local'}) == 'local'
    assert planned({'MLPROJ_ENV_MANAGER': 'local'}) == own  # not inside a run: no inheritance
    assert planned({'MLFLOW_RUN_ID': 'r1', 'MLPROJ_ENV_MANAGER': 'local'}, '--env-manager', own) == own


@pytest.mark.parametrize('store', ['http', 'sqlite'])
def test_relabel_nested_runs_through_both_trackers(store, request, tmp_path):
    """The end-of-run rewrite of MLflow's temp-dir source name, via RestTracker and the sqlite tracker
    (whose fast path hands child-run searches to MlflowClient)."""
    from mlflow.tracking import MlflowClient

    from mlproj import tracking
    from mlproj.source.nested import relabel_nested_runs

    uri = request.getfixturevalue('mlflow_server') if store == 'http' else request.getfixturevalue('sqlite_store')
    tracker = tracking.get_tracker(uri)
    assert type(tracker).__name__ == ('RestTracker' if store == 'http' else 'SqliteTracker')
    client = MlflowClient(uri)
    exp = client.create_experiment(f'relabel-{store}-{tmp_path.name}')
    checkout = tmp_path / 'checkouts' / 'abc123-x'
    parent = client.create_run(exp, tags={'mlflow.source.name': 'git://h/r.git#sub'}).info.run_id
    child = client.create_run(exp, tags={'mlflow.parentRunId': parent,
                                         'mlflow.source.name': f'file://{checkout}#sub'}).info.run_id
    grandchild = client.create_run(exp, tags={'mlflow.parentRunId': child,
                                              'mlflow.source.name': f'file://{checkout}'}).info.run_id
    other = client.create_run(exp, tags={'mlflow.parentRunId': parent,
                                         'mlflow.source.name': 'https://elsewhere/x.git'}).info.run_id
    assert relabel_nested_runs(tracker, exp, parent, checkout, 'git://h/r.git') == 2
    names = {r: client.get_run(r).data.tags['mlflow.source.name'] for r in (child, grandchild, other)}
    assert names == {child: 'git://h/r.git#sub', grandchild: 'git://h/r.git', other: 'https://elsewhere/x.git'}
