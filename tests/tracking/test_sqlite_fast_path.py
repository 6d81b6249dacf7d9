"""The sqlite fast path (mlproj/tracking_sqlite.py) against MLflow itself.

* differential: the same operations through the fast path and through MlflowClient, on two copies
  of a store MLflow created, compared row by row and through MLflow's own reads, for the newest
  mlflow-skinny (its own venv), the dev venv's (the release the full mlflow package has) and the
  oldest supported one (pyproject's lower bound); .ci/setup pins all three;
* guards: an unknown revision, a revision that is not the installed MLflow's head, a missing
  column, workspaces, a missing store all go to MlflowClient; calls outside the verified bounds
  are answered by MLflow (its validation, its messages);
* end to end: a run made by the fast path is read, resumed (--run-id) and reproduced, and 8
  concurrent runs whose children log metrics into the same file all end FINISHED.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from mlproj import mlflow_schema, tracking_sqlite
from mlproj.errors import TrackingError
from mlproj.tracking_sqlite import SqliteTracker
from tests.helpers import REPO, run_mlproj, write_project
from tests.helpers.git import commit_all, git

OPS = Path(__file__).with_name('mlflow_ops.py')
OLDEST_VENV = Path(os.environ.get('MLPROJ_TEST_MLFLOW_OLDEST_VENV', '/tmp/mlproj-test-mlflow-oldest-venv'))
NEWEST_VENV = Path(os.environ.get('MLPROJ_TEST_MLFLOW_NEWEST_VENV', '/tmp/mlproj-test-mlflow-newest-venv'))


def _ops(python: str, *args: str, cwd: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONWARNINGS='ignore')
    r = subprocess.run([python, str(OPS), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]


def _mlflow_version(python: str) -> str:
    return subprocess.run([python, '-c', 'import importlib.metadata as m; print(m.version("mlflow-skinny"))'],
                          capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture(scope='session')
def base_store(tmp_path_factory) -> Path:
    """A store whose schema this venv's MLflow created (copied by the tests that need one)."""
    d = tmp_path_factory.mktemp('base-store')
    _ops(sys.executable, 'init', str(d / 'mlflow.db'), cwd=d)
    return d / 'mlflow.db'


def _copy(base: Path, d: Path, name: str = 'mlflow.db') -> Path:
    d.mkdir(parents=True, exist_ok=True)
    shutil.copy(base, d / name)
    return d / name


# --------------------------------------------------------------------------------------------
# differential


def _oldest_python() -> str:
    python = OLDEST_VENV / 'bin' / 'python'
    assert python.exists(), f'{python} missing: .ci/setup installs the oldest supported mlflow-skinny there'
    return str(python)


def _newest_python() -> str:
    python = NEWEST_VENV / 'bin' / 'python'
    assert python.exists(), f'{python} missing: .ci/setup installs the newest mlflow-skinny there'
    return str(python)


def _python(which: str) -> str:
    return {'newest': _newest_python(), 'dev': sys.executable, 'oldest': _oldest_python()}[which]


@pytest.mark.parametrize('which', ['newest', 'dev', 'oldest'])
@pytest.mark.slow
def test_fast_path_writes_what_mlflow_writes(which, tmp_path):
    python = _python(which)
    if which == 'oldest':
        lower = re.search(r'"mlflow-skinny>=([0-9.]+)"', (REPO / 'pyproject.toml').read_text()).group(1)
        assert _mlflow_version(python).startswith(lower + '.'), 'the oldest venv must hold the supported lower bound'
    # the same cwd for both: MLflow derives new experiments' artifact locations from it
    _ops(python, 'init', str(tmp_path / 'base.db'), cwd=tmp_path)
    revision = sqlite3.connect(tmp_path / 'base.db').execute('SELECT version_num FROM alembic_version').fetchone()[0]
    assert revision in mlflow_schema.VERIFIED_REVISIONS
    for mode in ('fast', 'client'):
        shutil.copy(tmp_path / 'base.db', tmp_path / f'{mode}.db')
    _ops(python, 'both', str(tmp_path / 'fast.db'), str(tmp_path / 'fast.json'), str(tmp_path / 'client.db'),
         str(tmp_path / 'client.json'), cwd=tmp_path)
    fast = json.loads((tmp_path / 'fast.json').read_text())
    slow = json.loads((tmp_path / 'client.json').read_text())
    assert fast.pop('imported_during_ops') == []  # neither mlflow nor sqlalchemy imported by the fast path
    slow.pop('imported_during_ops')
    for part in ('rows', 'reads', 'result'):
        for key in fast[part]:
            assert fast[part][key] == slow[part][key], f'{which} {part}.{key} differs'
    assert fast == slow
    # and the comparison is not vacuous
    rows = fast['rows']
    assert len(rows['runs']) == 3 and len(rows['params']) == 4 + 1 + 2 + 150 and rows['integrity'] == [['ok']]
    assert [r['status'] for r in rows['runs']] == ['FINISHED', 'FAILED', 'KILLED']
    assert [r['name'] for r in rows['runs']] == ['<generated>', 'named', '<generated>']
    assert [e['artifact_location'] for e in rows['experiments']][1:] == [f'{tmp_path}/mlruns/1', f'{tmp_path}/mlruns/2']
    assert fast['reads']['search']['param'] == ['<run0>'] and fast['reads']['search']['run_name'] == ['<run1>']
    assert [[r['run_id'] for r in found] for found in fast['result']['searches']] == \
        [['<run0>'], ['<run1>', '<run0>'], [], [], ['<run0>'], ['<run1>']]
    # the run cache's search reports when the found runs started and ended
    assert [(r['start_time'], r['end_time']) for found in fast['result']['searches'][4:] for r in found] == \
        [('<ms>', '<ms>')] * 2


def test_verified_revisions_are_the_tested_ones():
    """Every allow-listed revision is the head of a venv the differential test runs."""
    heads = set()
    for python in map(_python, ('newest', 'dev', 'oldest')):
        mlflow_dir = subprocess.run([python, '-c', 'import importlib.util as u; '
                                     'print(list(u.find_spec("mlflow").submodule_search_locations)[0])'],
                                    capture_output=True, text=True, check=True).stdout.strip()
        heads.add(mlflow_schema.installed_head_revision(Path(mlflow_dir)))
    assert heads == set(mlflow_schema.VERIFIED_REVISIONS)


# --------------------------------------------------------------------------------------------
# guards


def _set_revision(db: Path, revision: str) -> None:
    with sqlite3.connect(db) as c:
        c.execute('UPDATE alembic_version SET version_num = ?', (revision,))


def test_verified_store_takes_the_fast_path(base_store, tmp_path):
    t = SqliteTracker(f'sqlite:///{_copy(base_store, tmp_path)}')
    assert t.fast, t.fallback_reason
    run_id = t.create_run(t.resolve_experiment(None, None), {'mlflow.user': 'u'}, 'r')
    assert t.get_run(run_id).tags == {'mlflow.user': 'u', 'mlflow.runName': 'r'}
    assert t._fallback._client is None


@pytest.mark.parametrize('change, reason', [
    (lambda db: _set_revision(db, 'ffffffffffff'), 'schema revision ffffffffffff not verified'),
    (lambda db: _set_revision(db, 'acf3f17fdcc7'), 'not the installed MLflow head'),
    (lambda db: sqlite3.connect(db).execute('ALTER TABLE runs DROP COLUMN source_version'), 'runs lacks source_version'),
    (lambda db: sqlite3.connect(db).execute('DROP TABLE latest_metrics'), 'table latest_metrics missing'),
    (lambda db: sqlite3.connect(db).execute('DROP TABLE alembic_version'), 'no MLflow schema yet'),
])
def test_unverified_schema_goes_to_mlflow(base_store, tmp_path, change, reason):
    db = _copy(base_store, tmp_path)
    change(db)
    t = SqliteTracker(f'sqlite:///{db}', announce=lambda m: None)
    assert not t.fast and reason in t.fallback_reason
    t._fallback = Spy(t._fallback)
    try:
        t.resolve_experiment(None, None)
    except TrackingError:
        pass  # MLflow refusing a schema it does not know is MLflow's answer
    assert t._fallback.calls == ['resolve_experiment']  # the call went through MlflowClient


class Spy:
    """Records which methods of the real ClientTracker were called, and calls them."""

    def __init__(self, real):
        self.real, self.calls = real, []

    def __getattr__(self, name):
        self.calls.append(name)
        return getattr(self.real, name)


def test_unknown_revision_gets_mlflows_own_error(base_store, tmp_path):
    db = _copy(base_store, tmp_path)
    _set_revision(db, 'ffffffffffff')
    t = SqliteTracker(f'sqlite:///{db}')
    with pytest.raises(TrackingError, match='cannot open MLflow tracking store|failed'):
        t.create_run(t.resolve_experiment(None, None), {}, None)
    assert sqlite3.connect(db).execute('SELECT count(*) FROM runs').fetchone() == (0,)


def test_workspaces_and_server_artifact_root_go_to_mlflow(base_store, tmp_path, monkeypatch):
    db = _copy(base_store, tmp_path)
    monkeypatch.setenv('MLFLOW_ENABLE_WORKSPACES', 'true')
    assert 'workspaces' in SqliteTracker(f'sqlite:///{db}').fallback_reason
    monkeypatch.delenv('MLFLOW_ENABLE_WORKSPACES')
    monkeypatch.setenv('_MLFLOW_SERVER_ARTIFACT_ROOT', 's3://bucket')
    assert 'artifact root' in SqliteTracker(f'sqlite:///{db}').fallback_reason


@pytest.mark.parametrize('uri', ['sqlite:///{d}/x.db?timeout=3', 'sqlite:///:memory:'])
def test_uris_outside_the_fast_path(tmp_path, uri):
    assert tracking_sqlite.sqlite_path(uri.format(d=tmp_path)) is None


@pytest.mark.slow
def test_missing_store_is_created_by_mlflow_and_announced(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    said = []
    t = SqliteTracker(f'sqlite:///{tmp_path}/mlflow.db', announce=said.append)
    assert said == ['creating MLflow store ./mlflow.db'] and not t.fast
    run_id = t.create_run(t.resolve_experiment(None, None), {}, None)
    assert t.get_run(run_id).status == 'RUNNING'
    said.clear()
    again = SqliteTracker(f'sqlite:///{tmp_path}/mlflow.db', announce=said.append)
    assert again.fast and said == [] and again.get_run(run_id).run_id == run_id


def test_calls_outside_the_verified_bounds_are_answered_by_mlflow(base_store, tmp_path):
    t = SqliteTracker(f'sqlite:///{_copy(base_store, tmp_path)}')
    assert t.fast
    run_id = t.create_run('0', {'mlflow.user': 'u'}, None)
    t.log_params(run_id, {'a': '1'})
    assert t._fallback._client is None
    with pytest.raises(TrackingError, match='(?i)changing param values is not allowed'):
        t.log_params(run_id, {'a': '2'})           # MLflow's own validation and message
    assert t.get_run(run_id).params == {'a': '1'}
    t.set_tags(run_id, {'big': 'x' * 6000})         # beyond 2.10's limit; this MLflow (3.x) accepts it
    assert t.get_run(run_id).tags['big'] == 'x' * 6000
    with pytest.raises(TrackingError, match='not found|does not exist'):
        t.get_run('0' * 32)
    with pytest.raises(TrackingError, match='does not exist|No Experiment'):
        t.resolve_experiment(None, '424242')


def test_deleted_experiment_is_refused(base_store, tmp_path):
    db = _copy(base_store, tmp_path)
    t = SqliteTracker(f'sqlite:///{db}')
    t.resolve_experiment('gone', None)
    with sqlite3.connect(db) as c:
        c.execute("UPDATE experiments SET lifecycle_stage = 'deleted' WHERE name = 'gone'")
    with pytest.raises(TrackingError, match="experiment 'gone' is deleted"):
        t.resolve_experiment('gone', None)


# --------------------------------------------------------------------------------------------
# end to end


def _mlproj(args: list[str], cwd: Path, uri: str, timeout: float = 300) -> subprocess.CompletedProcess:
    # the project's `python` is this venv's (the child imports mlflow)
    env = {'MLFLOW_TRACKING_URI': uri, 'PATH': f'{Path(sys.executable).parent}:{os.environ["PATH"]}'}
    return run_mlproj(*args, cwd=cwd, env=env, timeout=timeout)


LOGGER = '''
import sys, mlflow
with mlflow.start_run():
    for step in range(10):
        mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
    mlflow.log_metric("worker", float(sys.argv[1]))
'''


@pytest.mark.slow  # drives mlproj in subprocesses
def test_concurrent_runs_with_children_logging_metrics(base_store, tmp_path):
    db = _copy(base_store, tmp_path / 'store')
    uri = f'sqlite:///{db}'
    proj = write_project(tmp_path / 'proj', 'entry_points:\n  main:\n    parameters:\n      i: int\n'
                         '    command: "python log.py {i}"\n', {'log.py': LOGGER})
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: _mlproj(['run', str(proj), '--env-manager', 'local', '-P', f'i={i}',
                                                   '--run-name', f'w{i}'], tmp_path, uri), range(8)))
    for r in results:
        assert r.returncode == 0, r.stderr[-2000:]
        assert 'creating MLflow store' not in r.stderr
    from mlflow.tracking import MlflowClient

    c = MlflowClient(tracking_uri=uri)
    runs = c.search_runs(['0'])
    assert sorted(r.info.run_name for r in runs) == [f'w{i}' for i in range(8)]
    for run in runs:
        i = run.info.run_name[1:]
        assert run.info.status == 'FINISHED' and run.info.end_time >= run.info.start_time
        assert run.data.params == {'i': i} and run.data.metrics['worker'] == float(i)
        assert len(c.get_metric_history(run.info.run_id, 'loss')) == 10


def _git_project(d: Path) -> Path:
    repo = write_project(d / 'repo' / 'sub', 'name: rp\nentry_points:\n  main:\n    parameters:\n'
                         '      alpha: {type: float, default: 0.1}\n    command: "python train.py {alpha}"\n',
                         {'train.py': 'import sys\nprint("alpha", sys.argv[1])\n'}).parent
    git('init', '-q', str(repo))
    commit_all(repo, 'c')
    return repo


@pytest.mark.slow
def test_fast_path_run_is_read_resumed_and_reproduced(base_store, tmp_path):
    db = _copy(base_store, tmp_path / 'store')
    uri = f'sqlite:///{db}'
    repo = _git_project(tmp_path)
    r = _mlproj(['run', f'{repo}#sub', '--env-manager', 'local', '-P', 'alpha=0.5', '--experiment-name', 'e2e'],
                tmp_path, uri)
    assert r.returncode == 0, r.stderr
    assert 'creating MLflow store' not in r.stderr
    run_id = re.search(r"run with ID '([0-9a-f]{32})'", r.stdout + r.stderr).group(1)

    from mlflow.tracking import MlflowClient

    c = MlflowClient(tracking_uri=uri)
    got = c.get_run(run_id)
    exp = c.get_experiment_by_name('e2e')
    assert got.info.status == 'FINISHED' and got.info.experiment_id == exp.experiment_id
    assert exp.artifact_location == f'{tmp_path}/mlruns/{exp.experiment_id}'
    assert got.info.artifact_uri == f'{exp.artifact_location}/{run_id}/artifacts'
    assert got.data.params == {'alpha': '0.5'} and got.data.tags['mlflow.source.git.commit']
    assert got.data.tags['mlflow.runName'] == got.info.run_name
    # what the UI's runs table asks for
    assert [x.info.run_id for x in c.search_runs([exp.experiment_id], "params.alpha = '0.5' and "
                                                 "tags.`mlflow.project.entryPoint` = 'main'",
                                                 order_by=['tags.`mlflow.runName` DESC', 'params.alpha'])] == [run_id]

    # resume: a RUNNING run created by the fast path, continued with --run-id
    pending = SqliteTracker(uri).create_run(exp.experiment_id, {'mlflow.user': 'u'}, 'pending')
    r = _mlproj(['run', f'{repo}#sub', '--env-manager', 'local', '-P', 'alpha=0.7', '--run-id', pending], tmp_path, uri)
    assert r.returncode == 0, r.stderr
    resumed = c.get_run(pending)
    assert resumed.info.status == 'FINISHED' and resumed.data.params == {'alpha': '0.7'}
    assert resumed.info.run_name == 'pending' and resumed.data.tags['mlflow.user'] == 'u'

    # reproduce: a new run, same commit and params, tagged with its origin
    r = _mlproj(['reproduce', run_id], tmp_path, uri)
    assert r.returncode == 0, r.stderr
    (again,) = c.search_runs([exp.experiment_id], f"tags.`mlproj.reproduced_from` = '{run_id}'")
    assert again.info.status == 'FINISHED' and again.data.params == {'alpha': '0.5'}
    assert again.data.tags['mlflow.source.git.commit'] == got.data.tags['mlflow.source.git.commit']


@pytest.mark.slow
def test_first_run_announces_the_store(tmp_path):
    proj = write_project(tmp_path / 'p', 'entry_points:\n  main:\n    command: "true"\n')
    r = _mlproj(['run', str(proj)], tmp_path, 'sqlite:///mlflow.db')
    assert r.returncode == 0, r.stderr
    assert 'mlproj: creating MLflow store ./mlflow.db' in r.stderr
    r = _mlproj(['run', str(proj)], tmp_path, 'sqlite:///mlflow.db')
    assert r.returncode == 0 and 'creating MLflow store' not in r.stderr


RUN_WITHOUT_MLFLOW = '''
import sys
from mlproj.cli import main
try:
    code = main(["run", sys.argv[1], "--env-manager", "local"])
except SystemExit as e:
    code = e.code
print("EXIT", code, "IMPORTED", sorted(m for m in ("mlflow", "sqlalchemy", "alembic") if m in sys.modules))
'''


def test_a_whole_run_on_a_verified_store_never_imports_mlflow(base_store, tmp_path):
    """The CLI's whole run path (experiment, run, params, tags, the stale-run check, the end status)
    is answered by the fast path: a regression here costs every user MLflow's 2-5 s import."""
    from mlproj import stale

    db = _copy(base_store, tmp_path)
    uri = f'sqlite:///{db}'
    t = SqliteTracker(uri)
    dead = subprocess.Popen([sys.executable, '-c', 'pass'])
    dead.wait()
    tags = {**stale.launcher_tags(), stale.PID: str(dead.pid)}  # a launcher that is gone
    stale_id = t.create_run('0', {'mlflow.user': 'u', **tags}, None)
    proj = write_project(tmp_path / 'p', 'entry_points:\n  main:\n    parameters: {a: {default: 1}}\n'
                                          '    command: "true {a}"\n')
    env = dict(os.environ, MLFLOW_TRACKING_URI=uri, PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, '-c', RUN_WITHOUT_MLFLOW, str(proj)], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert r.stdout.strip().splitlines()[-1] == 'EXIT 0 IMPORTED []', (r.stdout, r.stderr)
    assert f'ended stale run {stale_id} FAILED' in r.stderr
    from mlflow.tracking import MlflowClient

    (run,) = MlflowClient(uri).search_runs(['0'], "attributes.status = 'FINISHED'")
    assert run.data.params == {'a': '1'} and run.data.tags['mlflow.project.entryPoint'] == 'main'
    assert MlflowClient(uri).get_run(stale_id).info.status == 'FAILED'


def test_head_revision_record_follows_the_migrations_directory(tmp_path, monkeypatch):
    """The cached head is MLflow's (same as a fresh scan), and a changed migrations directory (an
    upgrade adds a revision) is rescanned rather than answered from the record."""
    monkeypatch.setenv('MLPROJ_CACHE_DIR', str(tmp_path / 'cache'))
    fake = tmp_path / 'mlflow'
    versions = fake / 'store' / 'db_migrations' / 'versions'
    versions.mkdir(parents=True)
    (versions / 'aaaaaaaaaaaa_first.py').write_text("revision = 'aaaaaaaaaaaa'\ndown_revision = None\n")
    assert mlflow_schema.installed_head_revision(fake) == 'aaaaaaaaaaaa'
    record = tmp_path / 'cache' / 'facts' / 'mlflow-sqlite-head'
    assert record.read_text().endswith('\0aaaaaaaaaaaa')
    (versions / 'bbbbbbbbbbbb_second.py').write_text("revision = 'bbbbbbbbbbbb'\ndown_revision = 'aaaaaaaaaaaa'\n")
    assert mlflow_schema.installed_head_revision(fake) == 'bbbbbbbbbbbb'
    record.write_text('garbage')                       # a damaged record is recomputed
    assert mlflow_schema.installed_head_revision(fake) == 'bbbbbbbbbbbb'
    real = mlflow_schema.mlflow_package_dir()
    assert mlflow_schema.installed_head_revision(real) == mlflow_schema._scan_head_revision(real)
    assert mlflow_schema.installed_head_revision(real) == mlflow_schema.installed_head_revision(real)
