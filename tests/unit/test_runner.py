"""The run pipeline in-process, with a recording tracker and backend: what is checked before a
run exists, what the run is created with, and that a failure after creation ends it FAILED."""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import pytest

from mlproj import backends, runner, tracking
from mlproj.errors import BackendError, EnvError, ParamError, SpecError
from mlproj.request import RunRequest
from mlproj.tracking import RunRecord
from tests.helpers import write_project

MLPROJECT = """\
name: demo
entry_points:
  main:
    parameters:
      alpha: {type: float, default: 0.5}
      n: {type: int}
      data: {type: path, default: data.csv}
    command: "python train.py --alpha {alpha} --n {n} --data {data}"
"""


@dataclass
class RecordingTracker:
    uri: str = 'sqlite:////nowhere/mlflow.db'
    calls: list = field(default_factory=list)
    runs: dict = field(default_factory=dict)
    _ids = itertools.count(1)

    def resolve_experiment(self, name, experiment_id):
        self.calls.append(('resolve_experiment', name, experiment_id))
        return experiment_id or '7'

    def create_run(self, experiment_id, tags, run_name):
        run_id = f'run{next(self._ids)}'
        self.runs[run_id] = RunRecord(run_id, experiment_id, 'RUNNING', dict(tags))
        self.calls.append(('create_run', experiment_id, run_name))
        return run_id

    def log_params(self, run_id, params):
        self.runs[run_id].params.update(params)

    def set_tags(self, run_id, tags):
        self.runs[run_id].tags.update(tags)

    def get_run(self, run_id):
        return self.runs[run_id]

    def set_status(self, run_id, status):
        self.runs[run_id].status = status
        self.calls.append(('set_status', run_id, status))


class RecordingBackend:
    def __init__(self, fail: BaseException | None = None):
        self.launches: list[backends.Launch] = []
        self.fail = fail

    def validate(self, request, tracking_uri, project):  # noqa: ARG002
        return None

    def cancel_recorded(self, tags):  # noqa: ARG002
        return None

    def submit(self, launch):
        self.launches.append(launch)
        if self.fail is not None:
            raise self.fail
        run = backends.SubmittedRun(launch.run_id)
        run.exit_code = 0
        return run


@pytest.fixture
def project(tmp_path):
    d = write_project(tmp_path / 'proj', MLPROJECT, {'train.py': 'pass\n', 'data.csv': 'x\n1\n'})
    return d


@pytest.fixture
def fakes(monkeypatch):
    tracker = RecordingTracker()
    backend = RecordingBackend()
    monkeypatch.setattr(tracking, 'get_tracker', lambda uri: tracker)
    real_get = backends.get_backend
    monkeypatch.setattr(backends, 'get_backend', lambda name: backend if name == 'local' else real_get(name))
    return tracker, backend


def _request(project, tmp_path, **kw):
    base = dict(uri=str(project), parameters={'n': '3'}, env_manager='local',
                tracking_uri=f'sqlite:///{tmp_path}/mlflow.db', cwd=str(tmp_path))
    base.update(kw)
    return RunRequest(**base)


def test_plan_resolves_everything_without_creating_a_run(project, tmp_path, fakes):
    tracker, backend = fakes
    p = runner.plan(_request(project, tmp_path))
    try:
        assert p.env_manager == 'local'
        assert p.params.logged == {'alpha': '0.5', 'n': '3', 'data': str(project / 'data.csv')}
        assert p.command.startswith('python train.py --alpha 0.5 --n 3 --data ')
        assert p.tags['mlflow.project.entryPoint'] == 'main'
        assert p.tags['mlflow.project.backend'] == 'local'
        assert p.tags['mlflow.source.type'] == 'PROJECT'
        assert p.tracking_uri == f'sqlite:///{tmp_path}/mlflow.db'
        assert p.as_dict()['entry_point'] == 'main'
    finally:
        p.source.cleanup()
    assert tracker.calls == [] and backend.launches == []


@pytest.mark.parametrize('changes, error', [
    ({'parameters': {}}, ParamError),                       # n is required
    ({'parameters': {'n': 'abc'}}, ParamError),
    ({'entry_point': 'nosuch'}, SpecError),
    ({'env_manager': 'pip'}, EnvError),
    ({'backend': 'nosuch-backend'}, BackendError),
])
def test_bad_requests_fail_before_any_run_exists(project, tmp_path, fakes, changes, error):
    tracker, backend = fakes
    with pytest.raises(error):
        runner.submit(_request(project, tmp_path, **changes))
    assert tracker.runs == {} and backend.launches == []


def test_submit_creates_the_run_then_launches(project, tmp_path, fakes):
    tracker, backend = fakes
    run = runner.submit(_request(project, tmp_path, run_name='r1', experiment_id='3'))
    (launch,) = backend.launches
    record = tracker.runs[run.run_id]
    assert ('create_run', '3', 'r1') in tracker.calls
    assert record.tags['mlflow.runName'] == 'r1'
    assert record.params['n'] == '3'
    assert launch.run_env['MLFLOW_RUN_ID'] == run.run_id
    assert launch.run_env['MLFLOW_EXPERIMENT_ID'] == '3'
    assert launch.run_env['MLFLOW_TRACKING_URI'] == f'sqlite:///{tmp_path}/mlflow.db'
    assert launch.run_env['MLPROJ_ENV_MANAGER'] == 'local'
    launch.source.cleanup()


@pytest.mark.parametrize('exc, status', [(RuntimeError('boom'), 'FAILED'), (KeyboardInterrupt(), 'KILLED')])
def test_a_failed_submission_ends_the_run(project, tmp_path, fakes, exc, status):
    tracker, backend = fakes
    backend.fail = exc
    with pytest.raises(type(exc)):
        runner.submit(_request(project, tmp_path))
    (record,) = tracker.runs.values()
    assert record.status == status


def test_resume_adds_missing_tags_and_params_only(project, tmp_path, fakes):
    tracker, backend = fakes
    run_id = tracker.create_run('5', {'mlflow.user': 'submitter'}, None)
    tracker.log_params(run_id, {'n': '3'})
    run = runner.submit(_request(project, tmp_path, run_id=run_id))
    record = tracker.runs[run.run_id]
    assert run.run_id == run_id
    assert record.tags['mlflow.user'] == 'submitter'          # not overwritten
    assert record.tags['mlflow.project.entryPoint'] == 'main'  # added
    assert record.params == {'n': '3', 'alpha': '0.5', 'data': str(project / 'data.csv')}
    backend.launches[0].source.cleanup()


def test_resume_refuses_a_finished_run(project, tmp_path, fakes):
    tracker, _ = fakes
    run_id = tracker.create_run('5', {}, None)
    tracker.set_status(run_id, 'FINISHED')
    with pytest.raises(Exception, match='FINISHED'):
        runner.submit(_request(project, tmp_path, run_id=run_id))


class ServerTracker(RecordingTracker):
    """A tracking server's tracker: ``create_run`` calls ``sent`` between request and answer."""

    def create_run(self, experiment_id, tags, run_name, sent=None):
        self.calls.append(('request sent',))
        if sent is not None:
            sent()
        return super().create_run(experiment_id, tags, run_name)


class Prestarted:
    def __init__(self, calls):
        self.calls = calls
        calls.append(('prestart',))

    def abort(self):
        self.calls.append(('abort',))


@pytest.mark.parametrize('uri, order', [
    # a server creates the run while the backend module loads and its supervisor starts
    ('http://127.0.0.1:9/', ['get_tracker', 'resolve_experiment', 'request sent', 'get_backend', 'prestart',
                             'create_run']),
    # a local store: the supervisor starts first, its interpreter's start beside the store's work
    ('sqlite:////nowhere/mlflow.db', ['get_backend', 'prestart', 'get_tracker', 'resolve_experiment',
                                      'create_run']),
])
def test_the_backend_and_its_supervisor_come_beside_a_servers_runs_create(project, tmp_path, monkeypatch, uri,
                                                                          order):
    tracker = ServerTracker(uri=uri) if uri.startswith('http') else RecordingTracker(uri=uri)
    backend = RecordingBackend()
    backend.prestart = lambda: Prestarted(tracker.calls)

    def get_tracker(u):
        tracker.calls.append(('get_tracker',))
        return tracker

    def get_backend(name):
        tracker.calls.append(('get_backend',))
        return backend

    monkeypatch.setattr(tracking, 'get_tracker', get_tracker)
    monkeypatch.setattr(backends, 'get_backend', get_backend)
    p = runner.plan(_request(project, tmp_path, tracking_uri=uri))
    assert tracker.calls == []  # the local backend has nothing to validate: not even imported
    run = runner.launch(p)
    assert [c[0] for c in tracker.calls] == order
    (launch,) = backend.launches
    assert isinstance(launch.prestarted, Prestarted) and launch.run_id == run.run_id
    launch.source.cleanup()


def test_a_backend_failing_beside_runs_create_ends_the_created_run_failed(project, tmp_path, monkeypatch):
    tracker = ServerTracker(uri='http://127.0.0.1:9/')
    attempts = []

    def broken(name):
        attempts.append(name)
        raise BackendError('the backend module is broken')

    monkeypatch.setattr(tracking, 'get_tracker', lambda uri: tracker)
    p = runner.plan(_request(project, tmp_path, tracking_uri='http://127.0.0.1:9/'))
    monkeypatch.setattr(backends, 'get_backend', broken)
    with pytest.raises(BackendError, match='broken'):
        runner.launch(p)
    assert attempts == ['local', 'local']  # beside the server's work (quietly), then for real
    (record,) = tracker.runs.values()
    assert record.status == 'FAILED'


def test_the_backends_validate_skips_are_backends_with_nothing_to_validate():
    from mlproj.backends.lifecycle import checked_at_submit

    assert backends.NOTHING_TO_VALIDATE <= set(backends.BACKENDS)
    for name in backends.NOTHING_TO_VALIDATE:
        assert backends.get_backend(name).validate is checked_at_submit
