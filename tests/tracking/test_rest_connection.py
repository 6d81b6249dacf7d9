"""RestTracker's transport: kept-alive connections (shared between threads) to a real `mlflow server`, the
proxy path through urllib, and bounded, one-line errors from servers that misbehave."""
from __future__ import annotations

import contextlib
import http.server
import os
import socket
import subprocess
import threading

import pytest

from mlproj.errors import TrackingError
from mlproj.tracking_rest import RestTracker
from tests.helpers import mlproj_bin, write_project

pytestmark = pytest.mark.slow


class Relay:
    """A loopback TCP relay that counts the connections it accepts and forwards to ``target``."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.sock = socket.create_server(('127.0.0.1', 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._stop = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _pipe(self, a: socket.socket, b: socket.socket) -> None:
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _serve(self) -> None:
        while not self._stop:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            upstream = socket.create_connection(self.target)
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()

    def close(self) -> None:
        self._stop = True
        self.sock.close()


def _mlproj(args, cwd, uri, env=None):
    full = {k: v for k, v in os.environ.items() if not k.lower().endswith('_proxy')}
    full.update(MLFLOW_TRACKING_URI=uri, **(env or {}))
    return subprocess.run([mlproj_bin(), *args], cwd=cwd, env=full, capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)


def test_a_run_uses_one_kept_alive_connection(mlflow_server, tmp_path):
    host, port = mlflow_server.rsplit('//', 1)[1].split(':')
    relay = Relay((host, int(port)))
    try:
        proj = write_project(tmp_path / 'p', 'entry_points:\n  main:\n    parameters: {a: {default: 1}}\n'
                                              '    command: "true {a}"\n')
        r = _mlproj(['run', str(proj), '--experiment-name', 'keepalive'], tmp_path, f'http://127.0.0.1:{relay.port}')
        assert r.returncode == 0, r.stderr
        # create run, params, env tags (main thread), the end status (the run's watcher thread):
        # the watcher reuses the connection the main thread opened (the stale-run check waits for
        # a second of command, so it never needs one here)
        assert relay.accepted == 1, relay.accepted
    finally:
        relay.close()
    from mlflow.tracking import MlflowClient

    c = MlflowClient(mlflow_server)
    (run,) = c.search_runs([c.get_experiment_by_name('keepalive').experiment_id])
    assert run.info.status == 'FINISHED' and run.data.params == {'a': '1'}


class ForwardingProxy:
    """An HTTP forward proxy on loopback; requests whose path contains ``hold`` wait for
    ``release`` before they are forwarded."""

    def __init__(self, hold: str | None = None) -> None:
        self.seen: list[str] = []
        self.held = threading.Event()
        self.held_at = 0.0
        self.release = threading.Event()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _forward(self) -> None:
                import urllib.error
                import urllib.request

                proxy.seen.append(self.path)
                length = int(self.headers.get('Content-Length') or 0)
                body = self.rfile.read(length) if length else None
                if hold and hold in self.path:
                    import time

                    proxy.held_at = time.time()
                    proxy.held.set()
                    proxy.release.wait(120)
                req = urllib.request.Request(self.path, data=body, method=self.command,
                                             headers={'Content-Type': 'application/json'})
                opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
                try:
                    with opener.open(req, timeout=30) as resp:
                        status, data = resp.status, resp.read()
                except urllib.error.HTTPError as e:
                    status, data = e.code, e.read()
                try:
                    self.send_response(status)
                    self.send_header('Content-Type', 'application/json')
                    self.send_header('Content-Length', str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client is gone

            do_GET = do_POST = _forward

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.url = f'http://127.0.0.1:{self.server.server_address[1]}'
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def test_a_proxy_variable_sends_the_calls_through_the_proxy(mlflow_server, tmp_path):
    """With HTTP_PROXY set the calls go through urllib, which honours it (as MLflow's client does)."""
    proxy = ForwardingProxy()
    try:
        proj = write_project(tmp_path / 'p', 'entry_points:\n  main:\n    command: "true"\n')
        r = _mlproj(['run', str(proj)], tmp_path, mlflow_server, env={'HTTP_PROXY': proxy.url, 'NO_PROXY': ''})
        assert r.returncode == 0, r.stderr
        assert any(p.startswith(mlflow_server + '/api/2.0/mlflow/runs/create') for p in proxy.seen), proxy.seen
    finally:
        proxy.close()


def test_the_end_of_a_run_does_not_wait_for_a_stale_run_search_in_flight(mlflow_server, tmp_path):
    """The stale-run check is housekeeping: a server slow to answer its search must not hold the
    run's end (status recorded, mlproj exits) hostage."""
    proxy = ForwardingProxy(hold='runs/search')
    try:
        # long enough for the check to start (on a server it waits for the command's first second)
        proj = write_project(tmp_path / 'p', 'entry_points:\n  main:\n    command: "sleep 2"\n')
        r = _mlproj(['run', str(proj), '--experiment-name', 'slow-search'], tmp_path, mlflow_server,
                    env={'HTTP_PROXY': proxy.url, 'NO_PROXY': ''})
        still_held = proxy.held.is_set() and not proxy.release.is_set()
        assert r.returncode == 0, r.stderr
        assert still_held, proxy.seen  # mlproj ended while its search was still waiting in the proxy
    finally:
        proxy.close()
    from mlflow.tracking import MlflowClient

    c = MlflowClient(mlflow_server)
    (run,) = c.search_runs([c.get_experiment_by_name('slow-search').experiment_id])
    assert run.info.status == 'FINISHED'
    # ended right after the command (1 s after the search started), not after a wait for the
    # search (which used to be up to 5 s)
    assert run.info.end_time / 1000 - proxy.held_at < 4.0, (run.info.end_time, proxy.held_at)


@contextlib.contextmanager
def serving(handler):
    """``handler`` served on a loopback port in threads: its base URL."""
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f'http://127.0.0.1:{server.server_address[1]}'
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def hostile_server():
    """Answers every request with a status and body chosen by the test."""
    state = {'status': 200, 'body': b'{}', 'close': False, 'requests': 0}

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = 'HTTP/1.1'

        def _answer(self) -> None:
            state['requests'] += 1
            length = int(self.headers.get('Content-Length') or 0)
            if length:
                self.rfile.read(length)
            if state['close']:
                self.close_connection = True
                self.wfile.write(b'garbage\r\n\r\n')
                return
            body = state['body']
            self.send_response(state['status'])
            self.send_header('Content-Type', 'application/json')
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, *args) -> None:
            pass

    with serving(Handler) as uri:
        yield uri, state


def test_misbehaving_servers_get_one_line_errors(hostile_server, monkeypatch):
    uri, state = hostile_server
    for k in [k for k in os.environ if k.lower().endswith('_proxy')]:
        monkeypatch.delenv(k)
    t = RestTracker(uri, timeout=10)
    state.update(status=500, body=b'{"error_code": "INTERNAL_ERROR", "message": "boom"}')
    with pytest.raises(TrackingError, match=r'runs/create failed: HTTP 500 INTERNAL_ERROR: boom'):
        t.create_run('0', {}, None)
    state.update(status=403, body=b'{}')
    with pytest.raises(TrackingError, match=r'refused the credentials \(HTTP 403\)'):
        t.create_run('0', {}, None)
    state.update(status=200, body=b'[1, 2]')
    with pytest.raises(TrackingError, match='JSON that is not an object'):
        t.create_run('0', {}, None)
    state.update(close=True)
    with pytest.raises(TrackingError, match='cannot talk to the tracking server'):
        t.create_run('0', {}, None)
    state.update(close=False, status=503, body=b'{}')
    before = state['requests']
    with pytest.raises(TrackingError, match='HTTP 503'):
        t.set_status('0' * 32, 'FINISHED')
    assert state['requests'] - before == 4  # retried, then given up


def test_an_oversized_answer_is_refused_without_reading_it_all(hostile_server, monkeypatch):
    from mlproj import tracking_rest as tracking

    uri, state = hostile_server
    for k in [k for k in os.environ if k.lower().endswith('_proxy')]:
        monkeypatch.delenv(k)
    monkeypatch.setattr(tracking, 'MAX_RESPONSE_BYTES', 1000)
    state.update(status=200, body=b'{"run": "' + b'x' * 5000 + b'"}')
    with pytest.raises(TrackingError, match='answered more than'):
        RestTracker(uri, timeout=10).get_run('0' * 32)


@pytest.fixture
def holding_server():
    """Answers runs/create only once the test's ``release`` event is set, after ``received``."""
    state = {'received': threading.Event(), 'release': threading.Event(), 'statuses': [], 'paths': []}

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = 'HTTP/1.1'

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get('Content-Length') or 0))
            state['paths'].append(self.path)
            state['received'].set()
            state['release'].wait(10)
            status = state['statuses'].pop(0) if state['statuses'] else 200
            body = b'{"run": {"info": {"run_id": "r1", "artifact_uri": "file:///a"}}}' if status == 200 else b'{}'
            self.send_response(status)
            self.send_header('Content-Type', 'application/json')
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    with serving(Handler) as uri:
        try:
            yield uri, state
        finally:
            state['release'].set()  # before the server joins its handlers


@pytest.mark.parametrize('transport', ['httplite', 'http.client'])
def test_create_run_does_the_callers_work_while_the_server_creates_the_run(holding_server, monkeypatch, transport):
    """``sent`` runs once the server has the request and before its answer is read: the server
    answers only after ``sent`` released it (else the call would time out)."""
    uri, state = holding_server
    for k in [k for k in os.environ if k.lower().endswith('_proxy')]:
        monkeypatch.delenv(k)
    if transport == 'http.client':
        monkeypatch.setattr(RestTracker, '_lite', lambda self: False)
    calls = []

    def sent():
        calls.append(state['received'].wait(5))
        state['release'].set()

    t = RestTracker(uri, timeout=10)
    assert t.create_run('0', {'k': 'v'}, 'name', sent=sent) == 'r1'
    assert calls == [True]
    assert t.known_artifact_uri('r1') == 'file:///a'


def test_create_runs_the_callers_work_once_through_retries_and_a_proxy(holding_server, monkeypatch):
    uri, state = holding_server
    for k in [k for k in os.environ if k.lower().endswith('_proxy')]:
        monkeypatch.delenv(k)
    state['release'].set()
    state['statuses'][:] = [503]  # answered, retried after half a second
    calls = []
    assert RestTracker(uri, timeout=10).create_run('0', {}, None, sent=lambda: calls.append(1)) == 'r1'
    assert calls == [1] and len(state['paths']) == 2
    # through a proxy (urllib sends and reads in one call): still called once, before
    import urllib.request

    monkeypatch.setattr(urllib.request, '_opener', None)  # urlopen's opener reads the variables once
    monkeypatch.setenv('http_proxy', uri)
    monkeypatch.setenv('no_proxy', '')
    calls.clear()
    assert RestTracker('http://tracking.invalid:5000', timeout=10).create_run(
        '0', {}, None, sent=lambda: calls.append(1)) == 'r1'
    assert calls == [1] and state['paths'][-1] == 'http://tracking.invalid:5000/api/2.0/mlflow/runs/create'
