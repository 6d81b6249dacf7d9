"""``RestTracker``: mlproj's tracker for ``http(s)://`` tracking servers, through MLflow's
documented REST API (``/api/2.0/mlflow/...``).

Importing the MLflow client costs ~1 s, most of a short run's overhead; the calls a run needs are
a handful of JSON requests.  Kept-alive connections shared by the threads of a run (``mlproj.httplite``
for ``http://``, ``http.client`` for ``https://``), MLflow's client variables (MLFLOW_TRACKING_TOKEN,
_USERNAME/_PASSWORD, _INSECURE_TLS, _SERVER_CERT_PATH), retries of 429/502/503/504 and of one
dropped connection, bounded answers, and errors as one ``TrackingError`` line.  The ``Tracker``
protocol it implements lives in ``mlproj.tracking``.
"""
from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

from mlproj.errors import TrackingError
from mlproj.tags import RUNNING, USER
from mlproj.tracking import RunRecord, redact_uri, user


def _json_object(payload: bytes, endpoint: str, content_type: str, where: str) -> dict:
    """A tracking server's JSON answer; anything else (an HTML login page or proxy error served
    with status 200, a truncated body) is a TrackingError, not a traceback."""
    if not payload:
        return {}
    try:
        data = json.loads(payload)
    except ValueError:
        kind = content_type.split(';')[0].strip() or 'not JSON'
        raise TrackingError(f'{endpoint}: the tracking server answered with {kind} instead of JSON '
                            '(is the URI an MLflow tracking server, behind a login or proxy page?)', where) from None
    if not isinstance(data, dict):
        raise TrackingError(f'{endpoint}: the tracking server answered JSON that is not an object', where)
    return data


MAX_RESPONSE_BYTES = 64 << 20  # a hostile or broken server must not exhaust memory


class RestTracker:
    """MLflow's REST API over kept-alive connections: a call takes an idle one (or opens one) and
    gives it back once its answer is read, so a run's end, called from its monitor thread, reuses
    the connection its start opened, and the stale-run check can search from a second thread while
    the run's own calls go on.  ``http://`` (an ASCII host)
    goes through ``mlproj.httplite``, which imports only ``socket`` (``http.client`` costs 12-13 ms
    of imports: ``email``, ``ssl``); ``https://`` through ``http.client`` (``ssl`` is needed there
    anyway).  ``urllib.request`` is used instead only where a proxy variable is set (it honours
    them; neither of the others does): it costs a new connection per call and ~40 ms more of
    imports, which a run pays five times."""

    def __init__(self, uri: str, timeout: float = 30.0) -> None:
        import threading
        import urllib.parse

        self.uri = uri.rstrip('/')
        self.timeout = timeout
        self._parts = urllib.parse.urlsplit(self.uri)
        self._idle: list[Any] = []
        self._idle_lock = threading.Lock()
        self._artifact_uris: dict[str, str] = {}   # run id -> artifact_uri, from runs/create

    def _headers(self, has_body: bool) -> dict[str, str]:
        headers = {'User-Agent': 'mlproj', 'Accept': 'application/json'}
        if has_body:
            headers['Content-Type'] = 'application/json'
        token = os.environ.get('MLFLOW_TRACKING_TOKEN')
        user, password = os.environ.get('MLFLOW_TRACKING_USERNAME'), os.environ.get('MLFLOW_TRACKING_PASSWORD')
        if token:
            headers['Authorization'] = f'Bearer {token}'
        elif user and password:
            import base64

            headers['Authorization'] = 'Basic ' + base64.b64encode(f'{user}:{password}'.encode()).decode()
        return headers

    def _ssl_context(self) -> Any:
        if self._parts.scheme != 'https':
            return None
        import ssl

        if os.environ.get('MLFLOW_TRACKING_INSECURE_TLS', '').lower() == 'true':
            return ssl._create_unverified_context()
        return ssl.create_default_context(cafile=os.environ.get('MLFLOW_TRACKING_SERVER_CERT_PATH') or None)

    def _lite(self) -> bool:
        """Whether ``mlproj.httplite`` carries the calls (plain http, an ASCII host)."""
        return self._parts.scheme == 'http' and (self._parts.hostname or '').isascii()

    def _connection(self) -> Any:
        with self._idle_lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            host, port = self._parts.hostname or '', self._parts.port
            if self._lite():
                from mlproj import httplite

                conn = httplite.Connection(host, port, timeout=self.timeout, max_body=MAX_RESPONSE_BYTES)
            else:
                import http.client

                if self._parts.scheme == 'https':
                    conn = http.client.HTTPSConnection(host, port, timeout=self.timeout,
                                                       context=self._ssl_context())
                else:
                    conn = http.client.HTTPConnection(host, port, timeout=self.timeout)
        return conn

    def _release(self, conn: Any, will_close: bool) -> None:
        """After a complete answer: back to the idle connections, unless the server closes it."""
        if will_close:
            self._drop(conn)
            return
        with self._idle_lock:
            self._idle.append(conn)

    @staticmethod
    def _drop(conn: Any) -> None:
        try:
            conn.close()
        except Exception:
            pass

    def _send(self, method: str, path: str, data: bytes | None,
              sent: Callable[[], None] | None = None) -> tuple[int, str, bytes, str]:
        """(status, reason, body, content type) over the kept-alive connection; ``sent()`` is
        called between sending the request and reading its answer."""
        conn = self._connection()
        headers = self._headers(data is not None)
        if self._lite():
            from mlproj import httplite

            try:
                lite = conn.request(method, path, data, headers, sent)
            except httplite.BodyTooLarge:
                self._drop(conn)
                raise self._too_large() from None
            except BaseException:
                self._drop(conn)
                raise
            self._release(conn, lite.will_close)
            return lite.status, lite.reason, lite.body, lite.content_type
        from mlproj.httplite import readable_while_idle

        if conn.sock is not None and readable_while_idle(conn.sock):
            conn.close()  # closed by the server while idle: http.client reconnects on the request
        try:
            conn.request(method, path, body=data, headers=headers)
            if sent is not None:
                sent()
            resp = conn.getresponse()
            payload = resp.read(MAX_RESPONSE_BYTES + 1)
        except BaseException:
            self._drop(conn)
            raise
        if len(payload) > MAX_RESPONSE_BYTES:
            self._drop(conn)
            raise self._too_large()
        self._release(conn, resp.will_close)
        return resp.status, resp.reason, payload, resp.getheader('Content-Type', '') or ''

    def _too_large(self) -> TrackingError:
        return TrackingError(f'the tracking server answered more than {MAX_RESPONSE_BYTES} bytes', redact_uri(self.uri))

    def _send_urllib(self, method: str, url: str, data: bytes | None) -> tuple[int, str, bytes, str]:
        import urllib.error
        import urllib.request

        req = urllib.request.Request(url, data=data, method=method, headers=self._headers(data is not None))
        try:
            with urllib.request.urlopen(req, timeout=self.timeout, context=self._ssl_context()) as resp:
                return resp.status, resp.reason, resp.read(), resp.headers.get('Content-Type', '')
        except urllib.error.HTTPError as e:
            return e.code, str(e.reason), e.read() or b'', e.headers.get('Content-Type', '') if e.headers else ''
        except urllib.error.URLError as e:
            raise OSError(str(getattr(e, 'reason', e))) from None

    def _request(self, method: str, endpoint: str, body: dict | None = None, query: dict | None = None,
                 *, missing_ok: bool = False, sent: Callable[[], None] | None = None) -> dict | None:
        """One API call, retried as below; ``sent()`` (once, whatever the retries) runs while the
        server works on it."""
        import urllib.parse

        once = None
        if sent is not None:
            pending = [sent]

            def once() -> None:
                if pending:
                    pending.pop()()

        path = f'{self._parts.path.rstrip("/")}/api/2.0/mlflow/{endpoint}'
        if query:
            path += '?' + urllib.parse.urlencode(query)
        data = json.dumps(body).encode() if body is not None else None
        proxied = _proxy_configured()
        where = redact_uri(self.uri)
        delay = 0.5
        for attempt in range(4):
            try:
                if proxied:
                    if once is not None:  # urllib sends and reads in one call: nothing to overlap
                        once()
                    status, reason, payload, content_type = self._send_urllib(
                        method, f'{self._parts.scheme}://{self._parts.netloc}{path}', data)
                else:
                    status, reason, payload, content_type = self._send(method, path, data, once)
            except OSError as e:  # refused, reset, timed out, TLS, or a kept-alive connection the server closed
                if attempt < 1:
                    time.sleep(0.2)
                    continue
                raise TrackingError(f'cannot reach the tracking server: {getattr(e, "reason", None) or e}',
                                    where) from None
            except TrackingError:  # _send's own (an oversized answer): not quoted inside another
                raise
            except Exception as e:  # httplite's or http.client's protocol errors (a server that is not HTTP)
                raise TrackingError(f'cannot talk to the tracking server: {type(e).__name__}: {e}', where) from None
            if status < 400:
                return _json_object(payload, endpoint, content_type, where)
            detail = _error_detail(payload, reason)
            if status in (429, 502, 503, 504) and attempt < 3:
                time.sleep(delay)
                delay *= 2
                continue
            if missing_ok and (status == 404 or 'RESOURCE_DOES_NOT_EXIST' in detail):
                return None
            if status in (401, 403):
                raise TrackingError(f'tracking server refused the credentials (HTTP {status})', where)
            raise TrackingError(f'{endpoint} failed: HTTP {status} {detail}', where)
        raise TrackingError(f'{endpoint} failed after retries', where)

    def _request_object(self, method: str, endpoint: str, body: dict | None = None,
                        sent: Callable[[], None] | None = None) -> dict:
        """``_request`` for calls whose answer is always an object (a missing one is an error there)."""
        got = self._request(method, endpoint, body, sent=sent)
        if got is None:  # pragma: no cover - _request answers None only with missing_ok
            raise TrackingError(f'{endpoint}: empty answer', redact_uri(self.uri))
        return got

    def resolve_experiment(self, name: str | None, experiment_id: str | None) -> str:
        if experiment_id is not None:
            got = self._request('GET', 'experiments/get', query={'experiment_id': experiment_id}, missing_ok=True)
            if not got:
                raise TrackingError(f'experiment id {experiment_id!r} does not exist', redact_uri(self.uri))
            return str(got['experiment']['experiment_id'])
        if name:
            got = self._request('GET', 'experiments/get-by-name', query={'experiment_name': name}, missing_ok=True)
            if got:
                exp = got['experiment']
                if exp.get('lifecycle_stage') == 'deleted':
                    raise TrackingError(f'experiment {name!r} is deleted; restore it or choose another name')
                return str(exp['experiment_id'])
            created = self._request_object('POST', 'experiments/create', {'name': name})
            return str(created['experiment_id'])
        # MLflow's default experiment: not looked up (one round trip less); creating the run
        # fails with the server's own message if it was deleted.
        return '0'

    def create_run(self, experiment_id: str, tags: dict[str, str], run_name: str | None,
                   sent: Callable[[], None] | None = None) -> str:
        """Create the run; ``sent()``, when given, runs once the request is sent, while the server
        creates the run (``runs/create`` is the slowest call of a run: 15-20 ms).  An exception
        of ``sent`` leaves the answer unread and the run's id unknown: ``sent`` must not raise
        (an interruption is as during any call)."""
        body: dict[str, Any] = {
            'experiment_id': experiment_id,
            'user_id': tags.get(USER, user()),
            'start_time': int(time.time() * 1000),
            'tags': [{'key': k, 'value': v} for k, v in tags.items()],
        }
        if run_name:
            body['run_name'] = run_name
        got = self._request_object('POST', 'runs/create', body, sent)
        info = got['run']['info']
        if info.get('artifact_uri'):
            self._artifact_uris[info['run_id']] = info['artifact_uri']
        return info['run_id']

    def known_artifact_uri(self, run_id: str) -> str | None:
        """The artifact URI of a run this tracker created (no request), else None."""
        return self._artifact_uris.get(run_id)

    def log_params(self, run_id: str, params: dict[str, str]) -> None:
        items = [{'key': k, 'value': v} for k, v in params.items()]
        for i in range(0, len(items), 100):
            self._request('POST', 'runs/log-batch', {'run_id': run_id, 'params': items[i:i + 100]})

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        if tags:
            self._request('POST', 'runs/log-batch',
                          {'run_id': run_id, 'tags': [{'key': k, 'value': v} for k, v in tags.items()]})

    def get_run(self, run_id: str) -> RunRecord:
        got = self._request('GET', 'runs/get', query={'run_id': run_id}, missing_ok=True)
        if not got:
            raise TrackingError(f'run {run_id!r} does not exist', redact_uri(self.uri))
        run = got['run']
        data = run.get('data', {})
        return RunRecord(
            run['info']['run_id'], str(run['info']['experiment_id']), run['info']['status'],
            {t['key']: t.get('value', '') for t in data.get('tags', [])},
            {p['key']: p.get('value', '') for p in data.get('params', [])},
            {m['key']: m.get('value') for m in data.get('metrics', [])},
            run['info'].get('artifact_uri', ''),
        )

    def set_status(self, run_id: str, status: str) -> None:
        self._request('POST', 'runs/update',
                      {'run_id': run_id, 'status': status, 'end_time': int(time.time() * 1000)})

    def child_runs(self, experiment_id: str, parent_run_id: str) -> list[tuple[str, dict[str, str]]]:
        """(run id, tags) of the runs whose ``mlflow.parentRunId`` is ``parent_run_id`` (first 1000)."""
        got = self._request('POST', 'runs/search', {
            'experiment_ids': [experiment_id], 'max_results': 1000,
            'filter': f"tags.`mlflow.parentRunId` = '{parent_run_id}'"}) or {}
        return [(r['info']['run_id'], {t['key']: t.get('value', '') for t in r.get('data', {}).get('tags', [])})
                for r in got.get('runs', [])]

    # -- searching (stale runs, mlproj.stale): kept apart from the run's hot path --------------
    def search_with_tag(self, experiment_ids: list[str], key: str, value: str, status: str = RUNNING
                        ) -> list[RunRecord]:
        """Runs of ``experiment_ids`` with ``status`` whose tag ``key`` equals ``value``, newest first."""
        body: dict[str, Any] = {'experiment_ids': list(experiment_ids), 'max_results': 1000,
                                'filter': f"attributes.status = '{status}' and tags.`{key}` = '{value}'"}
        out: list[RunRecord] = []
        for _ in range(100):
            got = self._request('POST', 'runs/search', body) or {}
            for run in got.get('runs', []):
                tags = {t['key']: t.get('value', '') for t in run.get('data', {}).get('tags', [])}
                info = run['info']
                out.append(RunRecord(info['run_id'], str(info['experiment_id']), info['status'], tags,
                                     start_time=_int_or_none(info.get('start_time')),
                                     end_time=_int_or_none(info.get('end_time'))))
            if not got.get('next_page_token'):
                break
            body['page_token'] = got['next_page_token']
        return out

    def search_running_with_tag(self, experiment_ids: list[str], key: str, value: str) -> list[RunRecord]:
        return self.search_with_tag(experiment_ids, key, value, RUNNING)

    def list_experiment_ids(self) -> list[str]:
        """Ids of every active experiment."""
        body: dict[str, Any] = {'max_results': 1000}
        out: list[str] = []
        for _ in range(100):
            got = self._request('POST', 'experiments/search', body) or {}
            out += [str(e['experiment_id']) for e in got.get('experiments', [])]
            if not got.get('next_page_token'):
                break
            body['page_token'] = got['next_page_token']
        return out


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _error_detail(payload: bytes, reason: str) -> str:
    try:
        body = json.loads(payload or b'{}')
        return f"{body.get('error_code', '')}: {body.get('message', '')}".strip(': ')[:300]
    except Exception:
        return str(reason)[:300]


def _proxy_configured() -> bool:
    """Whether a proxy variable is set (``urllib.request.getproxies`` reads the same names)."""
    return any(k.lower() in ('http_proxy', 'https_proxy', 'all_proxy') and v for k, v in os.environ.items())
