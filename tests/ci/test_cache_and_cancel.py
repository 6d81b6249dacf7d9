"""The environment-cache key (equal to mlproj's own environment name) and the cancel fallbacks."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mlproj.ci import state
from mlproj.ci.runstep import wait_with_signals
from tests.helpers import MLPROJ
from tests.helpers.ci import clean_environ, gha_env, read_outputs
from tests.helpers.git import git

PY = f'{sys.version_info[0]}.{sys.version_info[1]}'


def _env_project(base: Path, deps: str = '[]') -> tuple[Path, str]:
    repo = base / 'envrepo'
    repo.mkdir()
    (repo / 'MLproject').write_text('name: ek\npython_env: python_env.yaml\nentry_points:\n'
                                    '  main:\n    command: "python -c \'import sys; print(sys.prefix)\'"\n')
    (repo / 'python_env.yaml').write_text(f'python: "{PY}"\ndependencies: {deps}\n')
    git('init', '-q', '-b', 'main', cwd=repo)
    git('add', '-A', cwd=repo)
    git('commit', '-q', '-m', 'env project', cwd=repo)
    return repo, git('rev-parse', 'HEAD', cwd=repo)


def _env_key(repo: Path, env: dict[str, str], *args: str) -> dict[str, str]:
    got = subprocess.run([MLPROJ, 'ci', 'env-key', *args], cwd=repo, env=env, capture_output=True, text=True,
                         timeout=60)
    assert got.returncode == 0, got.stderr
    return dict(line.split('=', 1) for line in got.stdout.splitlines())


@pytest.mark.slow  # builds uv environments
def test_cache_key_is_mlprojs_environment_name(tmp_path):
    repo, sha = _env_project(tmp_path)
    env = {**clean_environ(), **gha_env(tmp_path / 'gha', repo, sha), 'MLPROJ_CACHE_DIR': str(tmp_path / 'cache')}
    key = _env_key(repo, env)
    assert key['cache'] == 'true' and key['path'] == str(tmp_path / 'cache' / 'envs')
    assert key['key'].startswith(key['restore-prefix']) and key['restore-prefix'].endswith('-uv-')
    assert read_outputs(tmp_path / 'gha' / 'output')['key'] == key['key']
    run = subprocess.run([MLPROJ, 'run', '.', '--tracking-uri', (tmp_path / 'mlruns').as_uri()], cwd=repo, env=env,
                         capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr
    built = [p.name for p in (tmp_path / 'cache' / 'envs').iterdir() if not p.name.startswith('.')]
    assert built and key['key'].endswith('-' + built[0])  # the key names the environment the run used
    # a dependency change is a new key; the same spec in another checkout is the same key
    (repo / 'python_env.yaml').write_text(f'python: "{PY}"\ndependencies: [six]\n')
    assert _env_key(repo, env)['key'] != key['key']


def test_no_cache_for_local_manager_or_untrusted_events(tmp_path):
    repo, sha = _env_project(tmp_path)
    env = {**clean_environ(), **gha_env(tmp_path / 'gha', repo, sha), 'MLPROJ_CACHE_DIR': str(tmp_path / 'cache')}
    local = _env_key(repo, env, '--env-manager', 'local')
    assert local['cache'] == 'false' and 'nothing to cache' in local['reason']
    target = _env_key(repo, {**env, 'GITHUB_EVENT_NAME': 'pull_request_target'})
    assert target['cache'] == 'false' and 'pull_request_target' in target['reason'] and target['key']



def test_cache_key_follows_the_entry_points_own_environment(tmp_path):
    repo, sha = _env_project(tmp_path)
    (repo / 'MLproject').write_text('name: ek\npython_env: python_env.yaml\nentry_points:\n'
                                    '  main:\n    command: "true"\n'
                                    '  step:\n    python_env: step.yaml\n    command: "true"\n')
    (repo / 'step.yaml').write_text(f'python: "{PY}"\ndependencies: [six]\n')
    env = {**clean_environ(), **gha_env(tmp_path / 'gha', repo, sha), 'MLPROJ_CACHE_DIR': str(tmp_path / 'cache')}
    project_key = _env_key(repo, env)['key']
    assert _env_key(repo, env, '--entry-point', 'main')['key'] == project_key
    step = _env_key(repo, env, '-e', 'step')
    assert step['cache'] == 'true' and step['key'] != project_key
    (repo / 'step.yaml').write_text(f'python: "{PY}"\ndependencies: []\n')  # now the same spec as the project's
    assert _env_key(repo, env, '-e', 'step')['key'] == project_key

class _FakeDatabricks(ThreadingHTTPServer):
    """Strict: only the SDK's host probe and jobs runs/cancel; everything else is recorded and 404."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.cancelled: list[int] = []
        self.unexpected: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # noqa: ANN002
                pass

            def _reply(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                if self.path.startswith('/.well-known/databricks-config'):
                    return self._reply(404, {'error_code': 'NOT_FOUND', 'message': 'no metadata'})
                server.unexpected.append(f'GET {self.path}')
                self._reply(404, {'error_code': 'ENDPOINT_NOT_FOUND', 'message': self.path})

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get('Content-Length') or 0)) or b'{}')
                if self.headers.get('Authorization') != f'Bearer {server.token}':
                    return self._reply(401, {'error_code': 'UNAUTHENTICATED', 'message': 'bad token'})
                if self.path.endswith('/jobs/runs/cancel') and set(body) == {'run_id'}:
                    server.cancelled.append(body['run_id'])
                    return self._reply(200, {})
                server.unexpected.append(f'POST {self.path} {sorted(body)}')
                self._reply(404, {'error_code': 'ENDPOINT_NOT_FOUND', 'message': self.path})

        super().__init__(('127.0.0.1', 0), Handler)


@pytest.fixture
def fake_databricks():
    server = _FakeDatabricks('dapi-test-token')
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.slow  # the fake workspace and a real run in subprocesses
def test_cancel_fallback_stops_the_databricks_run_and_ends_mlflow_run(tmp_path, fake_databricks):
    from mlproj.tracking import get_tracker

    uri = (tmp_path / 'mlruns').as_uri()
    tracker = get_tracker(uri)
    exp = tracker.resolve_experiment('ci-cancel', None)
    run_id = tracker.create_run(exp, {'mlflow.databricks.shellJobRunID': '777'}, 'left-behind')
    state_file = tmp_path / 'state.json'
    state.update(str(state_file), run_id=run_id, tracking_uri=uri, status='RUNNING')
    env = {**clean_environ(), 'DATABRICKS_HOST': f'http://127.0.0.1:{fake_databricks.server_address[1]}',
           'DATABRICKS_TOKEN': 'dapi-test-token', 'HOME': str(tmp_path)}
    got = subprocess.run([MLPROJ, 'ci', 'cancel', '--state-file', str(state_file)], env=env, capture_output=True,
                         text=True, timeout=60)
    assert got.returncode == 0, got.stderr
    assert 'cancelled Databricks job run 777' in got.stderr and f'marked MLflow run {run_id} KILLED' in got.stderr
    assert fake_databricks.cancelled == [777] and fake_databricks.unexpected == []
    assert tracker.get_run(run_id).status == 'KILLED'
    assert json.loads(state_file.read_text())['status'] == 'KILLED'
    from mlproj.ci.cancel import cancel_from_state

    assert cancel_from_state(str(state_file)) == f'run {run_id} already ended KILLED'
    assert fake_databricks.cancelled == [777]
    assert cancel_from_state(str(tmp_path / 'none.json')) == 'no run was started; nothing to cancel'


class _RemoteRun:
    """A SubmittedRun as a remote backend (databricks) implements it: cancel(sig) asks the service."""

    run_id = 'r1'

    def __init__(self) -> None:
        self.done = threading.Event()
        self.cancels: list[int] = []
        self.status = 'RUNNING'

    def wait(self) -> bool:
        self.done.wait(30)
        return self.status == 'FINISHED'

    def get_status(self) -> str:
        return self.status

    def cancel(self, sig: int = signal.SIGTERM) -> None:
        self.cancels.append(sig)
        self.status = 'KILLED'
        self.done.set()


def test_runner_signal_reaches_any_backends_cancel():
    run = _RemoteRun()
    # process-directed, as the runner's kill(2) is (raise_signal would target the timer thread)
    threading.Timer(0.2, os.kill, args=(os.getpid(), signal.SIGINT)).start()
    assert wait_with_signals(run) is False
    assert run.cancels == [signal.SIGINT] and run.status == 'KILLED'
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored


@pytest.mark.slow  # a real local run in a subprocess
def test_cancel_fallback_stops_a_live_local_launcher_which_ends_its_run_killed(tmp_path):
    from mlproj.tracking import get_tracker

    project = tmp_path / 'sleeper'
    project.mkdir()
    (project / 'MLproject').write_text('name: sleeper\nentry_points:\n  main:\n'
                                       '    command: "echo started; sleep 120; echo never"\n')
    uri = f'sqlite:///{tmp_path}/mlflow.db'
    env = {**clean_environ(), 'HOME': str(tmp_path), 'MLPROJ_KILL_GRACE': '2'}
    proc = subprocess.Popen([MLPROJ, 'run', str(project), '--env-manager', 'local', '--tracking-uri', uri],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == 'started'
        tracker = get_tracker(uri)
        [record] = tracker.search_running_with_tag(['0'], 'mlflow.project.backend', 'local')
        state_file = tmp_path / 'state.json'
        state.update(str(state_file), run_id=record.run_id, tracking_uri=uri, status='RUNNING', backend='local')
        got = subprocess.run([MLPROJ, 'ci', 'cancel', '--state-file', str(state_file)], env=env,
                             capture_output=True, text=True, timeout=60)
        assert got.returncode == 0, got.stderr
        assert f'stopped launcher pid {proc.pid} (its run ended KILLED); run {record.run_id} ended KILLED' \
            in got.stderr
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143, err
    assert 'never' not in out
    assert tracker.get_run(record.run_id).status == 'KILLED'
    assert json.loads(state_file.read_text())['status'] == 'KILLED'
