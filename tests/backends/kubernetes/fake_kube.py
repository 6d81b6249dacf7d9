"""A strict fake Kubernetes API server: just the batch/v1 Job and core/v1 Pod endpoints.

No real API server can run on these machines (no kube-apiserver, kind or k3s images offline), so
the tests drive the official ``kubernetes`` client against this server on 127.0.0.1:

* It serves only ``POST/GET/DELETE /apis/batch/v1/namespaces/{ns}/jobs[/{name}[/status]]``,
  ``GET /api/v1/namespaces/{ns}/pods?labelSelector=`` and ``GET .../pods/{name}/log``; anything else
  is a 404 and is recorded in ``unknown`` (the tests assert it stays empty).
* Request bodies are decoded strictly against the client's own generated models (the OpenAPI
  shapes: ``V1Job.openapi_types`` / ``attribute_map``, recursively): an unknown field, a wrong type
  or a missing required field is a 400 ``Status`` as the real server's strict decoding gives.
  Query parameters are checked against what each endpoint accepts.
* It requires the bearer token of the kubeconfig (401 otherwise).
* A fake kubelet "runs" the Job's pod: the first container's ``command`` is executed as a local
  process (no image: in the directory given as the image's working dir) with the container's
  ``env``; its output is the pod log (``follow=true`` streams it), its exit code the container's
  ``terminated.exitCode``; the Job gets ``startTime``, ``active``/``succeeded``/``failed`` and a
  ``Complete`` or ``Failed`` condition.  Deleting the Job kills the process group.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import kubernetes.client as kc

REQUIRED = {'V1Job': ['metadata', 'spec'], 'V1JobSpec': ['template'], 'V1PodTemplateSpec': ['spec'],
            'V1PodSpec': ['containers'], 'V1Container': ['name'], 'V1EnvVar': ['name'],
            'V1ObjectMeta': []}
QUERY = {
    ('POST', 'jobs'): {'pretty', 'dryRun', 'fieldManager', 'fieldValidation'},
    ('GET', 'job'): {'pretty'},
    ('DELETE', 'job'): {'pretty', 'dryRun', 'gracePeriodSeconds', 'propagationPolicy', 'orphanDependents'},
    ('GET', 'pods'): {'labelSelector', 'fieldSelector', 'limit', 'continue', 'pretty', 'resourceVersion',
                      'timeoutSeconds', 'watch', 'allowWatchBookmarks', 'resourceVersionMatch',
                      'sendInitialEvents'},
    ('GET', 'log'): {'container', 'follow', 'previous', 'sinceSeconds', 'tailLines', 'timestamps', 'limitBytes',
                     'pretty', 'insecureSkipTLSVerifyBackend', 'sinceTime', 'stream'},
}


class Invalid(Exception):
    pass


def check_model(value, type_name: str, path: str) -> None:
    """Validate JSON ``value`` against a client model type string, as strict decoding would."""
    m = re.fullmatch(r'(?:list|List)\[(.+)\]', type_name)
    if m:
        if not isinstance(value, list):
            raise Invalid(f'{path}: expected array')
        for i, item in enumerate(value):
            check_model(item, m[1], f'{path}[{i}]')
        return
    m = re.fullmatch(r'(?:dict\(str, (.+)\)|Dict\[str, (.+)\])', type_name)
    if m:
        if not isinstance(value, dict):
            raise Invalid(f'{path}: expected object')
        for k, v in value.items():
            check_model(v, m[1] or m[2], f'{path}.{k}')
        return
    if type_name in ('str', 'datetime', 'date'):
        if not isinstance(value, str):
            raise Invalid(f'{path}: expected string, got {type(value).__name__}')
        return
    if type_name == 'int':
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid(f'{path}: expected integer')
        return
    if type_name == 'bool':
        if not isinstance(value, bool):
            raise Invalid(f'{path}: expected boolean')
        return
    if type_name in ('float', 'object'):
        return
    model = getattr(kc, type_name)
    if not isinstance(value, dict):
        raise Invalid(f'{path}: expected object for {type_name}')
    by_json = {j: a for a, j in model.attribute_map.items()}
    for key, item in value.items():
        if key not in by_json:
            raise Invalid(f'strict decoding error: unknown field "{path}.{key}"')
        if item is not None:
            check_model(item, model.openapi_types[by_json[key]], f'{path}.{key}')
    for key in REQUIRED.get(type_name, []):
        if value.get(key) in (None, '', []):
            raise Invalid(f'{path}.{key}: Required value')


def now() -> str:
    return datetime.now(timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


class FakePod:
    def __init__(self, server: FakeKube, job: dict, ns: str) -> None:
        self.server = server
        self.ns = ns
        self.name = f"{job['metadata']['name']}-{uuid.uuid4().hex[:5]}"
        self.job = job
        template = job['spec']['template']
        self.labels = {**(template.get('metadata', {}).get('labels') or {}),
                       'job-name': job['metadata']['name'], 'batch.kubernetes.io/job-name': job['metadata']['name']}
        self.container = template['spec']['containers'][0]
        self.created = now()
        self.phase = 'Pending'
        self.exit_code: int | None = None
        self.log = server.dir / f'{self.name}.log'
        self.log.write_bytes(b'')
        self.proc: subprocess.Popen | None = None
        self.done = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        time.sleep(self.server.start_delay)  # ContainerCreating
        if self.job.get('_deleted'):
            self.done.set()
            return
        argv = list(self.container.get('command') or []) + list(self.container.get('args') or [])
        env = {'PATH': os.environ.get('PATH', '/usr/bin:/bin'), 'HOME': str(self.server.dir)}
        for e in self.container.get('env') or []:
            env[e['name']] = e.get('value', '')
        with open(self.log, 'ab') as out:
            self.proc = subprocess.Popen(argv, cwd=self.server.workdir, env=env, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        self.phase = 'Running'
        self.server.job_started(self)
        code = self.proc.wait()
        self.exit_code = code if code >= 0 else 128 - code
        self.phase = 'Succeeded' if code == 0 else 'Failed'
        self.server.job_finished(self)
        self.done.set()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def as_json(self) -> dict:
        status: dict = {'phase': self.phase}
        if self.phase != 'Pending':
            state = ({'running': {'startedAt': self.created}} if self.phase == 'Running'
                     else {'terminated': {'exitCode': self.exit_code, 'reason': 'Completed' if self.exit_code == 0
                                          else 'Error', 'startedAt': self.created, 'finishedAt': now()}})
            status['containerStatuses'] = [{'name': self.container['name'], 'image': self.container.get('image', ''),
                                            'imageID': '', 'ready': self.phase == 'Running', 'restartCount': 0,
                                            'state': state}]
        return {'apiVersion': 'v1', 'kind': 'Pod',
                'metadata': {'name': self.name, 'namespace': self.ns, 'labels': self.labels,
                             'creationTimestamp': self.created, 'uid': str(uuid.uuid4())},
                'spec': {'containers': [{'name': self.container['name'], 'image': self.container.get('image', '')}],
                         'restartPolicy': 'Never'},
                'status': status}


class FakeKube:
    def __init__(self, workdir: Path, scratch: Path, token: str = 'fake-token', start_delay: float = 0.3) -> None:
        self.workdir = workdir
        self.dir = scratch
        self.token = token
        self.start_delay = start_delay
        self.jobs: dict[tuple[str, str], dict] = {}
        self.pods: dict[tuple[str, str], FakePod] = {}
        self.requests: list[tuple[str, str]] = []
        self.unknown: list[str] = []
        self.rejected: list[str] = []
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(('127.0.0.1', 0), self._handler())
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f'http://127.0.0.1:{self.port}'
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self) -> FakeKube:
        self.thread.start()
        return self

    def stop(self) -> None:
        for pod in list(self.pods.values()):
            pod.kill()
        self.httpd.shutdown()
        self.httpd.server_close()

    # -- state changes from the fake kubelet --------------------------------------------------
    def job_started(self, pod: FakePod) -> None:
        with self.lock:
            status = pod.job['status']
            status['startTime'] = now()
            status['active'] = 1

    def job_finished(self, pod: FakePod) -> None:
        with self.lock:
            status = pod.job['status']
            status.pop('active', None)
            if pod.job.get('_deleted'):
                return
            ok = pod.exit_code == 0
            status['succeeded' if ok else 'failed'] = 1
            if ok:
                status['completionTime'] = now()
            cond = {'type': 'Complete' if ok else 'Failed', 'status': 'True', 'lastProbeTime': now(),
                    'lastTransitionTime': now()}
            if not ok:
                cond.update(reason='BackoffLimitExceeded', message='Job has reached the specified backoff limit')
            status['conditions'] = [cond]

    # -- HTTP ---------------------------------------------------------------------------------
    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def _send(self, code: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _status(self, code: int, reason: str, message: str) -> None:
                self._send(code, {'kind': 'Status', 'apiVersion': 'v1', 'metadata': {}, 'status': 'Failure',
                                  'message': message, 'reason': reason, 'code': code})

            def _body(self) -> dict | None:
                length = int(self.headers.get('Content-Length') or 0)
                raw = self.rfile.read(length) if length else b''
                return json.loads(raw) if raw else None

            def _route(self, method: str) -> None:
                url = urlparse(self.path)
                query = parse_qs(url.query)
                fake.requests.append((method, self.path))
                if self.headers.get('Authorization') != f'Bearer {fake.token}':
                    return self._status(401, 'Unauthorized', 'Unauthorized')
                m = re.fullmatch(r'/apis/batch/v1/namespaces/([a-z0-9-]+)/jobs(?:/([a-z0-9.-]+)(/status)?)?', url.path)
                p = re.fullmatch(r'/api/v1/namespaces/([a-z0-9-]+)/pods(?:/([a-z0-9.-]+)/log)?', url.path)
                if m and method == 'POST' and not m[2]:
                    key = ('POST', 'jobs')
                elif m and m[2] and method in ('GET', 'DELETE'):
                    key = (method, 'job')
                elif p and method == 'GET':
                    key = ('GET', 'log' if p[2] else 'pods')
                else:
                    fake.unknown.append(f'{method} {self.path}')
                    return self._status(404, 'NotFound', 'the server could not find the requested resource')
                bad = set(query) - QUERY[key]
                if bad:
                    fake.rejected.append(f'{method} {self.path}')
                    return self._status(400, 'BadRequest', f'unknown query parameters: {sorted(bad)}')
                try:
                    body = self._body()
                except ValueError:
                    return self._status(400, 'BadRequest', 'body is not JSON')
                if key == ('POST', 'jobs'):
                    return self._create(m[1], body, query)
                if key == ('GET', 'job'):
                    return self._read(m[1], m[2])
                if key == ('DELETE', 'job'):
                    return self._delete(m[1], m[2], body, query)
                if key == ('GET', 'pods'):
                    return self._pods(p[1], query)
                return self._log(p[1], p[2], query)

            def _create(self, ns: str, body: dict | None, query: dict) -> None:
                try:
                    if body is None:
                        raise Invalid('empty body')
                    check_model(body, 'V1Job', 'Job')
                    if body.get('apiVersion') != 'batch/v1' or body.get('kind') != 'Job':
                        raise Invalid('apiVersion/kind must be batch/v1 Job')
                    name = body['metadata'].get('name') or ''
                    if not re.fullmatch(r'[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?', name):
                        raise Invalid(f'metadata.name: Invalid value: {name!r}: a lowercase RFC 1123 label')
                    if body['metadata'].get('namespace', ns) != ns:
                        raise Invalid('the namespace of the object does not match the namespace on the request')
                    for c in body['spec']['template']['spec']['containers']:
                        if not c.get('image'):
                            raise Invalid('spec.template.spec.containers[0].image: Required value')
                    if body['spec']['template']['spec'].get('restartPolicy') not in ('Never', 'OnFailure'):
                        raise Invalid('spec.template.spec.restartPolicy: Unsupported value')
                except Invalid as e:
                    fake.rejected.append(str(e))
                    invalid = any(w in str(e) for w in ('Invalid value', 'Required value', 'Unsupported value'))
                    return self._status(422 if invalid else 400, 'Invalid' if invalid else 'BadRequest', str(e))
                with fake.lock:
                    if (ns, name) in fake.jobs:
                        return self._status(409, 'AlreadyExists', f'jobs.batch "{name}" already exists')
                    job = json.loads(json.dumps(body))
                    job['metadata'].update(namespace=ns, uid=str(uuid.uuid4()), creationTimestamp=now(),
                                           resourceVersion='1')
                    job['status'] = {}
                    fake.jobs[(ns, name)] = job
                if query.get('dryRun'):
                    return self._send(201, job)
                pod = FakePod(fake, job, ns)
                fake.pods[(ns, pod.name)] = pod
                self._send(201, self._public(job))

            def _public(self, job: dict) -> dict:
                return {k: v for k, v in job.items() if not k.startswith('_')}

            def _read(self, ns: str, name: str) -> None:
                job = fake.jobs.get((ns, name))
                if job is None or job.get('_deleted'):
                    return self._status(404, 'NotFound', f'jobs.batch "{name}" not found')
                with fake.lock:
                    self._send(200, self._public(job))

            def _delete(self, ns: str, name: str, body: dict | None, query: dict) -> None:
                if body is not None:
                    try:
                        check_model(body, 'V1DeleteOptions', 'DeleteOptions')
                    except Invalid as e:
                        fake.rejected.append(str(e))
                        return self._status(400, 'BadRequest', str(e))
                job = fake.jobs.get((ns, name))
                if job is None or job.get('_deleted'):
                    return self._status(404, 'NotFound', f'jobs.batch "{name}" not found')
                job['_deleted'] = True
                policy = (body or {}).get('propagationPolicy') or (query.get('propagationPolicy') or [''])[0]
                for key, pod in list(fake.pods.items()):
                    if pod.job is job:
                        pod.kill()
                        if policy in ('Background', 'Foreground'):
                            del fake.pods[key]
                self._send(200, {'kind': 'Status', 'apiVersion': 'v1', 'metadata': {}, 'status': 'Success',
                                 'details': {'name': name, 'group': 'batch', 'kind': 'jobs',
                                             'uid': job['metadata']['uid']}})

            def _pods(self, ns: str, query: dict) -> None:
                selector = (query.get('labelSelector') or [''])[0]
                wanted = dict(part.split('=', 1) for part in selector.split(',') if '=' in part)
                items = [pod.as_json() for (pns, _), pod in list(fake.pods.items())
                         if pns == ns and all(pod.labels.get(k) == v for k, v in wanted.items())]
                self._send(200, {'kind': 'PodList', 'apiVersion': 'v1', 'metadata': {'resourceVersion': '1'},
                                 'items': items})

            def _log(self, ns: str, name: str, query: dict) -> None:
                pod = fake.pods.get((ns, name))
                if pod is None:
                    return self._status(404, 'NotFound', f'pods "{name}" not found')
                if pod.phase == 'Pending':
                    return self._status(400, 'BadRequest', f'container "{pod.container["name"]}" in pod "{name}" '
                                                           'is waiting to start: ContainerCreating')
                follow = (query.get('follow') or ['false'])[0] == 'true'
                self.send_response(200)
                self.send_header('Content-Type', 'text/plain')
                self.send_header('Transfer-Encoding', 'chunked')
                self.end_headers()
                pos = 0
                while True:
                    finished = pod.done.is_set()
                    with open(pod.log, 'rb') as f:
                        f.seek(pos)
                        data = f.read()
                    if data:
                        pos += len(data)
                        self.wfile.write(f'{len(data):x}\r\n'.encode() + data + b'\r\n')
                        self.wfile.flush()
                    if finished or not follow:
                        break
                    time.sleep(0.05)
                self.wfile.write(b'0\r\n\r\n')

            def do_GET(self) -> None:  # noqa: N802
                self._route('GET')

            def do_POST(self) -> None:  # noqa: N802
                self._route('POST')

            def do_DELETE(self) -> None:  # noqa: N802
                self._route('DELETE')

            def do_PUT(self) -> None:  # noqa: N802
                self._route('PUT')

            def do_PATCH(self) -> None:  # noqa: N802
                self._route('PATCH')

        Handler.protocol_version = 'HTTP/1.1'
        return Handler


def kubeconfig(path: Path, contexts: dict[str, tuple[str, str]], current: str) -> Path:
    """Write a kubeconfig: context name -> (server URL, token)."""
    import yaml

    data = {
        'apiVersion': 'v1', 'kind': 'Config', 'current-context': current,
        'clusters': [{'name': f'c-{n}', 'cluster': {'server': url}} for n, (url, _) in contexts.items()],
        'users': [{'name': f'u-{n}', 'user': {'token': tok}} for n, (_, tok) in contexts.items()],
        'contexts': [{'name': n, 'context': {'cluster': f'c-{n}', 'user': f'u-{n}'}} for n in contexts],
    }
    path.write_text(yaml.safe_dump(data))
    return path
