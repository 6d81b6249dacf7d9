"""A strict fake Databricks workspace on 127.0.0.1, driven only through databricks-sdk.

It serves exactly the endpoints that the databricks backend's flow calls, with the request and
response shapes of the public REST API:

* ``GET /.well-known/databricks-config`` (the SDK's host-metadata probe) -> 404;
* Jobs 2.2: ``runs/submit``, ``runs/get``, ``runs/get-output``, ``runs/cancel``;
* DBFS 2.0: ``get-status``, ``create``, ``add-block``, ``close``;
* Files API: ``HEAD``/``PUT /api/2.0/fs/files{path}``, ``PUT /api/2.0/fs/directories{path}``;
* Workspace: ``get-status``, ``mkdirs``, ``import`` (multipart).

Anything else -- an unknown endpoint, an unknown field, a missing field, a bad type -- is answered
400 and recorded in ``violations`` (the fixture fails the test on any).  Every request is recorded.

Uploaded files live in a directory tree laid out like a cluster's FUSE mounts (``<fuse>/dbfs/...``,
``<fuse>/Volumes/...``, ``<fuse>/Workspace/...``).  A submitted run really executes: after PENDING
it becomes RUNNING and the task's ``python_file`` is run with its ``parameters`` by this machine's
Python (the "driver"), its output becoming the run's logs; it ends TERMINATED with SUCCESS, FAILED,
CANCELED (``runs/cancel`` sends SIGTERM) or TIMEDOUT (``timeout_seconds``).  A test can instead
script a run's states (INTERNAL_ERROR, SKIPPED, ...), inject HTTP faults (401/403/429/500 with
headers) for N requests to an endpoint, and list the clusters that exist.
"""
from __future__ import annotations

import base64
import email.parser
import email.policy
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

CLUSTER_SPEC_FIELDS = frozenset({
    'apply_policy_default_values', 'autoscale', 'autotermination_minutes', 'aws_attributes', 'azure_attributes',
    'cluster_log_conf', 'cluster_name', 'custom_tags', 'data_security_mode', 'docker_image',
    'driver_instance_pool_id', 'driver_node_type_id', 'enable_elastic_disk', 'enable_local_disk_encryption',
    'gcp_attributes', 'init_scripts', 'instance_pool_id', 'is_single_node', 'kind', 'node_type_id', 'num_workers',
    'policy_id', 'runtime_engine', 'single_user_name', 'spark_conf', 'spark_env_vars', 'spark_version',
    'ssh_public_keys', 'use_ml_runtime', 'workload_type',
})
LIBRARY_FIELDS = {'pypi': {'package', 'repo'}, 'maven': {'coordinates', 'repo', 'exclusions'},
                  'cran': {'package', 'repo'}, 'whl': None, 'jar': None, 'egg': None, 'requirements': None}
SUBMIT_FIELDS = frozenset({'run_name', 'tasks', 'idempotency_token', 'timeout_seconds', 'environments'})
TASK_FIELDS = frozenset({'task_key', 'spark_python_task', 'new_cluster', 'existing_cluster_id', 'environment_key',
                         'libraries'})
MAX_DBFS_BLOCK = 1024 * 1024


class Reject(Exception):
    def __init__(self, status: int, error_code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.error_code, self.message, self.headers = status, error_code, message, headers or {}


@dataclass
class Fault:
    method: str
    suffix: str
    status: int
    times: int = 1
    error_code: str = ''
    message: str = 'injected fault'
    headers: dict[str, str] = field(default_factory=dict)
    after: bool = False  # process the request, then answer with the fault (a lost response)


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    headers: dict[str, str]
    status: int = 0


@dataclass
class FakeRun:
    run_id: int
    task_run_id: int
    job_id: int
    request: dict[str, Any]
    life_cycle: str = 'PENDING'
    result: str | None = None
    message: str = ''
    logs: str = ''
    error: str | None = None
    cancel_requested: bool = False
    pid: int | None = None
    started: float = field(default_factory=time.time)
    history: list[str] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)

    def set(self, life: str, result: str | None = None, message: str = '') -> None:
        self.life_cycle, self.result, self.message = life, result, message
        self.history.append(life + (f' {result}' if result else ''))
        if life in ('TERMINATED', 'SKIPPED', 'INTERNAL_ERROR'):
            self.done.set()

    def state(self) -> dict[str, Any]:
        out: dict[str, Any] = {'life_cycle_state': self.life_cycle, 'state_message': self.message,
                               'user_cancelled_or_timedout': self.result in ('CANCELED', 'TIMEDOUT')}
        if self.result:
            out['result_state'] = self.result
        return out


class FakeWorkspace:
    def __init__(self, root: Path, token: str, *, python: str = sys.executable) -> None:
        self.root = root
        self.fuse = root / 'fuse'
        self.cluster = root / 'cluster'
        for d in (self.fuse / 'dbfs', self.fuse / 'Volumes', self.fuse / 'Workspace', self.cluster):
            d.mkdir(parents=True, exist_ok=True)
        self.token = token
        self.python = python
        self.requests: list[Recorded] = []
        self.violations: list[str] = []
        self.faults: list[Fault] = []
        self.clusters: set[str] = {'0101-120000-known'}
        self.volumes: set[str] = {'/Volumes/main/default/mlproj'}
        self.runs: dict[int, FakeRun] = {}
        self.scripts: list[list[tuple[str, str | None, float, str]]] = []
        self.pending_seconds = 0.3
        self.gate = threading.Event()  # runs stay PENDING until it is set (tests clear it to hold them)
        self.gate.set()
        self.cancel_grace = 10.0
        self.cluster_env: dict[str, str] = {}
        self._tokens: dict[str, int] = {}
        self._handles: dict[int, dict[str, Any]] = {}
        self._ids = itertools.count(1001)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- control ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._server is not None
        return f'http://127.0.0.1:{self._server.server_address[1]}'

    def start(self) -> FakeWorkspace:
        fake = self

        class Handler(_Handler):
            workspace = fake

        self._server = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name='fake-databricks', daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        # like a cluster shutting down: SIGTERM to every driver (the launcher forwards it), then SIGKILL
        for run in list(self.runs.values()):
            run.cancel_requested = True
        for run in list(self.runs.values()):
            if not run.done.wait(self.cancel_grace + 5) and run.pid is not None:
                _kill_group(run.pid, signal.SIGKILL)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def fail(self, method: str, suffix: str, status: int, *, times: int = 1, error_code: str = '',
             message: str = 'injected fault', headers: dict[str, str] | None = None, after: bool = False) -> None:
        self.faults.append(Fault(method, suffix, status, times, error_code, message, headers or {}, after))

    def script_next_run(self, states: list[tuple[str, str | None, float, str]]) -> None:
        """The next submitted run goes through ``(life_cycle, result, seconds, message)`` without executing."""
        self.scripts.append(states)

    def calls(self, suffix: str, method: str | None = None) -> list[Recorded]:
        return [r for r in self.requests if r.path.endswith(suffix) and (method is None or r.method == method)]

    def endpoints(self) -> list[str]:
        return [f'{r.method} {r.path}' for r in self.requests]

    def file(self, api_path: str) -> Path:
        return self._local(api_path)

    def wait_for(self, predicate, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.05)
        raise AssertionError('condition not reached in time')

    # -- storage -----------------------------------------------------------------------------
    def _local(self, api_path: str) -> Path:
        """``dbfs:/x`` or DBFS ``/x`` (kind dbfs), ``/Volumes/...``, ``/Workspace/...`` -> the FUSE tree."""
        if api_path.startswith('dbfs:/'):
            return self.fuse / 'dbfs' / api_path[len('dbfs:/'):].lstrip('/')
        if api_path.startswith('/Volumes/') or api_path.startswith('/Workspace/'):
            return self.fuse / api_path.lstrip('/')
        raise Reject(400, 'INVALID_PARAMETER_VALUE', f'unsupported path {api_path}')

    def _dbfs(self, path: Any) -> Path:
        if not isinstance(path, str) or not path.startswith('/') or '..' in path.split('/'):
            raise Reject(400, 'INVALID_PARAMETER_VALUE', f'Path must be absolute: {path}')
        return self.fuse / 'dbfs' / path.lstrip('/')

    def _workspace(self, path: Any) -> Path:
        if not isinstance(path, str) or not path.startswith('/') or '..' in path.split('/'):
            raise Reject(400, 'INVALID_PARAMETER_VALUE', f'Path ({path}) must be absolute')
        if path.startswith('/Workspace/'):
            path = path[len('/Workspace'):]
        return self.fuse / 'Workspace' / path.lstrip('/')

    def _volume(self, path: str) -> Path:
        if '..' in path.split('/') or not any(path == v or path.startswith(v + '/') for v in self.volumes):
            raise Reject(404, 'NOT_FOUND', f'Volume for {path} does not exist')
        return self.fuse / path.lstrip('/')

    # -- runs --------------------------------------------------------------------------------
    def _submit(self, body: dict[str, Any]) -> dict[str, Any]:
        token = body.get('idempotency_token')
        with self._lock:
            if token is not None and token in self._tokens:
                return {'run_id': self._tokens[token]}
            run_id = next(self._ids)
            run = FakeRun(run_id, next(self._ids), next(self._ids), body)
            self.runs[run_id] = run
            if token is not None:
                self._tokens[token] = run_id
            script = self.scripts.pop(0) if self.scripts else None
        run.set('PENDING', None, 'Waiting for cluster')
        threading.Thread(target=self._lifecycle, args=(run, script), daemon=True).start()
        return {'run_id': run_id}

    def _lifecycle(self, run: FakeRun, script: list[tuple[str, str | None, float, str]] | None) -> None:
        try:
            while not self.gate.wait(0.05) and not run.cancel_requested:
                pass
            if script is not None:
                for life, result, seconds, message in script:
                    if run.cancel_requested:
                        break
                    run.set(life, result, message)
                    if run.done.is_set():
                        if life == 'INTERNAL_ERROR':
                            run.error = message
                        return
                    _sleep_unless(run, seconds)
                if not run.done.is_set():
                    run.set('TERMINATED', 'CANCELED', 'Run cancelled.')
                return
            _sleep_unless(run, self.pending_seconds)
            if run.cancel_requested:
                run.set('TERMINATED', 'CANCELED', 'Run cancelled.')
                return
            self._execute(run)
        except Exception as e:  # a bug in the fake must be visible, not a hang
            self.violations.append(f'fake run {run.run_id} crashed: {e!r}')
            run.set('INTERNAL_ERROR', 'FAILED', f'fake crashed: {e}')

    def _execute(self, run: FakeRun) -> None:
        task = run.request['tasks'][0]
        python_file = task['spark_python_task']['python_file']
        try:
            script = self._local(python_file)
        except Reject:
            script = None
        if script is None or not script.is_file():
            run.set('INTERNAL_ERROR', 'FAILED', f'Cannot read the python file {python_file}')
            run.error = f'Cannot read the python file {python_file}'
            return
        driver = self.cluster / f'run-{run.run_id}'
        driver.mkdir(parents=True)
        env = {
            'PATH': os.pathsep.join([str(Path(self.python).parent), '/usr/local/bin', '/usr/bin', '/bin']),
            'HOME': str(driver),
            'LANG': 'C.UTF-8',
            'MLPROJ_DATABRICKS_FUSE_ROOT': str(self.fuse),
            'MLPROJ_PROJECTS_DIR': str(self.cluster / 'projects'),
            'MLPROJ_CACHE_DIR': str(self.cluster / 'cache'),
            'MLPROJ_KILL_GRACE': '3',
            'PYTHONUNBUFFERED': '1',
            **self.cluster_env,
        }
        log_path = driver / 'driver.log'
        with open(log_path, 'wb') as log:
            proc = subprocess.Popen([self.python, str(script), *task['spark_python_task'].get('parameters', [])],
                                    cwd=driver, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        run.pid = proc.pid
        run.set('RUNNING', None, 'In run')
        timeout = run.request.get('timeout_seconds') or 0
        running_since = time.monotonic()
        ended = None
        while proc.poll() is None:
            if run.cancel_requested and ended is None:
                ended = 'CANCELED'
            elif timeout and ended is None and time.monotonic() - running_since > timeout:
                ended = 'TIMEDOUT'
            if ended is not None:
                run.set('TERMINATING', None, 'Terminating')
                _kill_group(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(self.cancel_grace)
                except subprocess.TimeoutExpired:
                    _kill_group(proc.pid, signal.SIGKILL)
                    proc.wait()
                break
            time.sleep(0.05)
        _kill_group(proc.pid, signal.SIGKILL)
        run.logs = log_path.read_text(errors='replace')
        code = proc.returncode
        if ended == 'CANCELED':
            run.set('TERMINATED', 'CANCELED', 'Run cancelled.')
        elif ended == 'TIMEDOUT':
            run.error = f'Run timed out after {timeout} seconds'
            run.set('TERMINATED', 'TIMEDOUT', f'Run timed out after {timeout} seconds')
        elif code == 0:
            run.set('TERMINATED', 'SUCCESS', '')
        else:
            run.error = f'Python process exited with code {code}'
            run.set('TERMINATED', 'FAILED', 'Workload failed, see run output for details')

    def run_json(self, run: FakeRun) -> dict[str, Any]:
        task = run.request['tasks'][0]
        task_json = {'run_id': run.task_run_id, 'task_key': task['task_key'], 'state': run.state(),
                     'attempt_number': 0, 'spark_python_task': task['spark_python_task'],
                     'start_time': int(run.started * 1000)}
        if 'existing_cluster_id' in task:
            task_json['existing_cluster_id'] = task['existing_cluster_id']
        return {
            'job_id': run.job_id, 'run_id': run.run_id, 'number_in_job': run.run_id,
            'original_attempt_run_id': run.run_id, 'creator_user_name': 'tester@example.com',
            'run_name': run.request.get('run_name', 'Untitled'), 'run_type': 'SUBMIT_RUN', 'format': 'MULTI_TASK',
            'state': run.state(), 'start_time': int(run.started * 1000), 'setup_duration': 0,
            'run_page_url': f'{self.url}/?o=1234567890123456#job/{run.job_id}/run/{run.run_id}',
            'tasks': [task_json],
        }


def _sleep_unless(run: FakeRun, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not run.cancel_requested:
        time.sleep(0.02)


def _kill_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


# --------------------------------------------------------------------------------------------
# validation helpers


def _only(obj: Any, allowed: set[str] | frozenset[str], where: str, required: tuple[str, ...] = ()) -> dict:
    if not isinstance(obj, dict):
        raise Reject(400, 'INVALID_PARAMETER_VALUE', f'{where} must be an object')
    unknown = sorted(set(obj) - set(allowed))
    if unknown:
        raise Reject(400, 'INVALID_PARAMETER_VALUE', f'Unknown field(s) {unknown} in {where}')
    missing = [k for k in required if k not in obj]
    if missing:
        raise Reject(400, 'INVALID_PARAMETER_VALUE', f'Missing required field(s) {missing} in {where}')
    return obj


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise Reject(400, 'INVALID_PARAMETER_VALUE', f'{where} must be a non-empty string')
    return value


def _check_library(lib: Any, where: str) -> None:
    if not isinstance(lib, dict) or len(lib) != 1:
        raise Reject(400, 'INVALID_PARAMETER_VALUE', f'{where} must name exactly one library kind')
    kind, value = next(iter(lib.items()))
    if kind not in LIBRARY_FIELDS:
        raise Reject(400, 'INVALID_PARAMETER_VALUE', f'Unknown library kind {kind!r} in {where}')
    nested = LIBRARY_FIELDS[kind]
    if nested is None:
        _string(value, f'{where}.{kind}')
    else:
        _only(value, nested, f'{where}.{kind}', ('coordinates',) if kind == 'maven' else ('package',))


class _Handler(BaseHTTPRequestHandler):
    workspace: FakeWorkspace
    protocol_version = 'HTTP/1.1'

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    # -- plumbing ----------------------------------------------------------------------------
    def _raw_body(self) -> bytes:
        if self.headers.get('Transfer-Encoding', '').lower() == 'chunked':
            chunks = []
            while True:
                size = int(self.rfile.readline().strip().split(b';')[0], 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b''.join(chunks)
        length = int(self.headers.get('Content-Length') or 0)
        return self.rfile.read(length) if length else b''

    def _send(self, status: int, payload: Any = None, headers: dict[str, str] | None = None,
              raw: bytes | None = None) -> None:
        body = raw if raw is not None else (json.dumps(payload).encode() if payload is not None else b'')
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if raw is None and payload is not None:
            self.send_header('Content-Type', 'application/json')
        if not (headers and 'Content-Length' in headers):
            self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        if self.command != 'HEAD':
            self.wfile.write(body)

    def _handle(self) -> None:
        ws = self.workspace
        parsed = urlparse(self.path)
        path = unquote(parsed.path)
        query = parse_qs(parsed.query, keep_blank_values=True)
        raw = self._raw_body()
        ctype = self.headers.get('Content-Type', '')
        body: Any = raw
        if raw and ctype.startswith('application/json'):
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw
        headers = {k: ('<redacted>' if k.lower() == 'authorization' else v) for k, v in self.headers.items()}
        rec = Recorded(self.command, path, query, body, headers)
        with ws._lock:
            ws.requests.append(rec)
        try:
            status, payload, extra, raw_out = self._dispatch(rec, raw, ctype)
        except Reject as e:
            status, payload, extra, raw_out = e.status, {'error_code': e.error_code, 'message': e.message}, e.headers, None
            if e.error_code.startswith('FAKE_') or 'Unknown field' in e.message or 'Missing required' in e.message:
                ws.violations.append(f'{self.command} {path}: {e.message}')
        rec.status = status
        self._send(status, payload, extra, raw_out)

    def _dispatch(self, rec: Recorded, raw: bytes, ctype: str) -> tuple[int, Any, dict[str, str], bytes | None]:
        ws = self.workspace
        method, path = rec.method, rec.path
        if path == '/.well-known/databricks-config' and method == 'GET':
            return 404, {'error_code': 'NOT_FOUND', 'message': 'Not Found'}, {}, None
        if not path.startswith('/api/'):
            raise Reject(400, 'FAKE_UNKNOWN_ENDPOINT', f'unknown endpoint {method} {path}')
        if self.headers.get('Authorization') != f'Bearer {ws.token}':
            return 401, {'error_code': 'UNAUTHENTICATED', 'message': 'Invalid access token.'}, {}, None
        for fault in ws.faults:
            if fault.times > 0 and fault.method == method and path.endswith(fault.suffix):
                fault.times -= 1
                code = fault.error_code or {401: 'UNAUTHENTICATED', 403: 'PERMISSION_DENIED', 429: 'REQUEST_LIMIT_EXCEEDED',
                                            500: 'INTERNAL_ERROR', 503: 'TEMPORARILY_UNAVAILABLE'}.get(fault.status, '')
                if fault.after:
                    self._serve(rec, raw, ctype)
                return fault.status, {'error_code': code, 'message': fault.message}, dict(fault.headers), None
        return self._serve(rec, raw, ctype)

    def _serve(self, rec: Recorded, raw: bytes, ctype: str) -> tuple[int, Any, dict[str, str], bytes | None]:
        ws = self.workspace
        method, path, query, body = rec.method, rec.path, rec.query, rec.body

        def q(name: str) -> str:
            allowed = {'path', 'run_id', 'overwrite'}
            extra = set(query) - allowed
            if extra:
                raise Reject(400, 'FAKE_UNKNOWN_FIELD', f'Unknown query parameter(s) {sorted(extra)}')
            if name not in query:
                raise Reject(400, 'INVALID_PARAMETER_VALUE', f'Missing required field: {name}')
            return query[name][0]

        def only_query(*names: str) -> None:
            extra = set(query) - set(names)
            if extra:
                raise Reject(400, 'FAKE_UNKNOWN_FIELD', f'Unknown query parameter(s) {sorted(extra)}')

        # ---- Jobs 2.2 ----
        if path == '/api/2.2/jobs/runs/submit' and method == 'POST':
            self._check_submit(body)
            return 200, ws._submit(body), {}, None
        if path == '/api/2.2/jobs/runs/get' and method == 'GET':
            only_query('run_id')
            run = ws.runs.get(int(q('run_id')))
            if run is None:
                raise Reject(400, 'INVALID_PARAMETER_VALUE', f'Run {q("run_id")} does not exist.')
            return 200, ws.run_json(run), {}, None
        if path == '/api/2.2/jobs/runs/get-output' and method == 'GET':
            only_query('run_id')
            rid = int(q('run_id'))
            if rid in ws.runs:
                raise Reject(400, 'INVALID_PARAMETER_VALUE', 'Retrieving the output of runs with multiple tasks is not '
                                                             'supported. Please retrieve the output of each individual task run instead.')
            run = next((r for r in ws.runs.values() if r.task_run_id == rid), None)
            if run is None:
                raise Reject(400, 'INVALID_PARAMETER_VALUE', f'Run {rid} does not exist.')
            out: dict[str, Any] = {'metadata': ws.run_json(run)['tasks'][0], 'logs': run.logs, 'logs_truncated': False}
            if run.error:
                out['error'] = run.error
            return 200, out, {}, None
        if path == '/api/2.2/jobs/runs/cancel' and method == 'POST':
            _only(body, {'run_id'}, 'runs/cancel', ('run_id',))
            run = ws.runs.get(body['run_id']) if isinstance(body['run_id'], int) else None
            if run is None:
                raise Reject(400, 'INVALID_PARAMETER_VALUE', f'Run {body["run_id"]} does not exist.')
            run.cancel_requested = True
            return 200, {}, {}, None

        # ---- DBFS 2.0 ----
        if path == '/api/2.0/dbfs/get-status' and method == 'GET':
            only_query('path')
            local = ws._dbfs(q('path'))
            if not local.exists():
                raise Reject(404, 'RESOURCE_DOES_NOT_EXIST', f'No file or directory exists on path {q("path")}.')
            return 200, {'path': q('path'), 'is_dir': local.is_dir(), 'file_size': 0 if local.is_dir() else local.stat().st_size,
                         'modification_time': int(local.stat().st_mtime * 1000)}, {}, None
        if path == '/api/2.0/dbfs/create' and method == 'POST':
            _only(body, {'path', 'overwrite'}, 'dbfs/create', ('path',))
            local = ws._dbfs(body['path'])
            if local.exists() and not body.get('overwrite'):
                raise Reject(400, 'RESOURCE_ALREADY_EXISTS', f'A file or directory already exists at the input path {body["path"]}.')
            with ws._lock:
                handle = next(ws._ids)
                ws._handles[handle] = {'path': local, 'data': bytearray()}
            return 200, {'handle': handle}, {}, None
        if path == '/api/2.0/dbfs/add-block' and method == 'POST':
            _only(body, {'handle', 'data'}, 'dbfs/add-block', ('handle', 'data'))
            h = ws._handles.get(body['handle'])
            if h is None:
                raise Reject(400, 'RESOURCE_DOES_NOT_EXIST', 'Invalid handle.')
            block = base64.b64decode(body['data'])
            if len(block) > MAX_DBFS_BLOCK:
                raise Reject(400, 'MAX_BLOCK_SIZE_EXCEEDED', 'Block size exceeded 1 MB.')
            h['data'] += block
            return 200, {}, {}, None
        if path == '/api/2.0/dbfs/close' and method == 'POST':
            _only(body, {'handle'}, 'dbfs/close', ('handle',))
            h = ws._handles.pop(body['handle'], None)
            if h is None:
                raise Reject(400, 'RESOURCE_DOES_NOT_EXIST', 'Invalid handle.')
            h['path'].parent.mkdir(parents=True, exist_ok=True)
            h['path'].write_bytes(bytes(h['data']))
            return 200, {}, {}, None

        # ---- Files API (volumes) ----
        if path.startswith('/api/2.0/fs/files/') and method in ('HEAD', 'PUT'):
            target = path[len('/api/2.0/fs/files'):]
            local = ws._volume(target)
            if method == 'HEAD':
                only_query()
                if not local.is_file():
                    return 404, None, {'Content-Length': '0'}, b''
                return 200, None, {'Content-Length': str(local.stat().st_size), 'Content-Type': 'application/octet-stream',
                                   'Last-Modified': 'Mon, 01 Jan 2024 00:00:00 GMT'}, b''
            only_query('overwrite')
            if local.exists() and query.get('overwrite', ['false'])[0] != 'true':
                raise Reject(409, 'ALREADY_EXISTS', f'The file being created already exists: {target}')
            if not local.parent.is_dir():
                raise Reject(404, 'NOT_FOUND', f'The parent directory of {target} does not exist')
            local.write_bytes(raw)
            return 204, None, {}, None
        if path.startswith('/api/2.0/fs/directories/') and method == 'PUT':
            only_query()
            ws._volume(path[len('/api/2.0/fs/directories'):]).mkdir(parents=True, exist_ok=True)
            return 204, None, {}, None

        # ---- Workspace ----
        if path == '/api/2.0/workspace/get-status' and method == 'GET':
            only_query('path')
            local = ws._workspace(q('path'))
            if not local.exists():
                raise Reject(404, 'RESOURCE_DOES_NOT_EXIST', f'Path ({q("path")}) doesn\'t exist.')
            info = {'path': q('path'), 'object_type': 'DIRECTORY' if local.is_dir() else 'FILE', 'object_id': 1}
            if local.is_file():
                info['size'] = local.stat().st_size
            return 200, info, {}, None
        if path == '/api/2.0/workspace/mkdirs' and method == 'POST':
            _only(body, {'path'}, 'workspace/mkdirs', ('path',))
            ws._workspace(body['path']).mkdir(parents=True, exist_ok=True)
            return 200, {}, {}, None
        if path == '/api/2.0/workspace/import' and method == 'POST':
            fields = _multipart(raw, ctype)
            _only(fields, {'path', 'format', 'overwrite', 'content', 'language'}, 'workspace/import', ('path', 'content'))
            rec.body = {k: (v if k != 'content' else f'<{len(v)} bytes>') for k, v in fields.items()}
            local = ws._workspace(fields['path'].decode())
            if not local.parent.is_dir():
                raise Reject(404, 'RESOURCE_DOES_NOT_EXIST', 'The parent folder does not exist')
            if local.exists() and fields.get('overwrite', b'false') != b'true':
                raise Reject(400, 'RESOURCE_ALREADY_EXISTS', f'{fields["path"].decode()} already exists.')
            local.write_bytes(fields['content'])
            return 200, {}, {}, None

        raise Reject(400, 'FAKE_UNKNOWN_ENDPOINT', f'unknown endpoint {method} {path}')

    def _check_submit(self, body: Any) -> None:
        ws = self.workspace
        _only(body, SUBMIT_FIELDS, 'runs/submit', ('tasks',))
        if 'timeout_seconds' in body and not isinstance(body['timeout_seconds'], int):
            raise Reject(400, 'INVALID_PARAMETER_VALUE', 'timeout_seconds must be an integer')
        if 'idempotency_token' in body and len(_string(body['idempotency_token'], 'idempotency_token')) > 64:
            raise Reject(400, 'INVALID_PARAMETER_VALUE', 'idempotency_token is longer than 64 characters')
        envs: dict[str, Any] = {}
        for i, env in enumerate(body.get('environments', [])):
            _only(env, {'environment_key', 'spec'}, f'environments[{i}]', ('environment_key', 'spec'))
            _only(env['spec'], {'client', 'environment_version', 'dependencies'}, f'environments[{i}].spec')
            envs[env['environment_key']] = env
        tasks = body['tasks']
        if not isinstance(tasks, list) or len(tasks) != 1:
            raise Reject(400, 'INVALID_PARAMETER_VALUE', 'the fake serves one-task runs only')
        for i, task in enumerate(tasks):
            _only(task, TASK_FIELDS, f'tasks[{i}]', ('task_key', 'spark_python_task'))
            spt = _only(task['spark_python_task'], {'python_file', 'parameters', 'source'},
                        f'tasks[{i}].spark_python_task', ('python_file',))
            params = spt.get('parameters', [])
            if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
                raise Reject(400, 'INVALID_PARAMETER_VALUE', 'spark_python_task.parameters must be strings')
            computes = [k for k in ('new_cluster', 'existing_cluster_id', 'environment_key') if k in task]
            if len(computes) != 1:
                raise Reject(400, 'INVALID_PARAMETER_VALUE', f'tasks[{i}] must name exactly one compute, got {computes}')
            if 'new_cluster' in task:
                spec = _only(task['new_cluster'], CLUSTER_SPEC_FIELDS, f'tasks[{i}].new_cluster')
                if 'spark_version' not in spec and 'policy_id' not in spec:
                    raise Reject(400, 'INVALID_PARAMETER_VALUE', 'The cluster spec needs spark_version')
            if 'existing_cluster_id' in task and task['existing_cluster_id'] not in ws.clusters:
                raise Reject(400, 'INVALID_PARAMETER_VALUE', f"Cluster {task['existing_cluster_id']} does not exist")
            if 'environment_key' in task:
                if task['environment_key'] not in envs:
                    raise Reject(400, 'INVALID_PARAMETER_VALUE', f"environment {task['environment_key']} is not defined")
                if 'libraries' in task:
                    raise Reject(400, 'INVALID_PARAMETER_VALUE', 'Libraries field is not supported for serverless task, '
                                                                 'please specify libraries in environment.')
            for j, lib in enumerate(task.get('libraries', [])):
                _check_library(lib, f'tasks[{i}].libraries[{j}]')


for _method in ('GET', 'POST', 'PUT', 'HEAD', 'DELETE', 'PATCH'):
    setattr(_Handler, f'do_{_method}', _Handler._handle)


def _multipart(raw: bytes, ctype: str) -> dict[str, bytes]:
    if not ctype.startswith('multipart/form-data'):
        raise Reject(400, 'INVALID_PARAMETER_VALUE', 'expected multipart/form-data')
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f'Content-Type: {ctype}\r\n\r\n'.encode() + raw)
    fields: dict[str, bytes] = {}
    for part in message.iter_parts():
        name = part.get_param('name', header='content-disposition')
        fields[str(name)] = part.get_payload(decode=True) or b''
    return fields
