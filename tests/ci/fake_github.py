"""A strict fake of the GitHub REST API endpoints mlproj's reporting uses, on loopback.

Served endpoints (shapes from the REST API reference; PyGithub drives them exactly as it would
drive api.github.com):

    GET   /repos/{owner}/{repo}/issues/{number}/comments     (paginated: per_page, page, Link)
    POST  /repos/{owner}/{repo}/issues/{number}/comments     {body}
    PATCH /repos/{owner}/{repo}/issues/comments/{id}         {body}
    POST  /repos/{owner}/{repo}/statuses/{sha}               {state, target_url, description, context}
    POST  /repos/{owner}/{repo}/check-runs                   {name, head_sha, ...}
    PATCH /repos/{owner}/{repo}/check-runs/{id}              {...}

Anything else is a 404 and is recorded in ``rejected``; unknown body fields, wrong types and the
API's limits (140-char status description, 50 annotations per request, 65,536-char comment,
65,535-char check-run summary) are 422s, also recorded.  Every request needs
``Authorization: token <TOKEN>`` (or Bearer).
"""
from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

SHA_RE = re.compile(r'^[0-9a-f]{40}$')
STATUS_STATES = {'error', 'failure', 'pending', 'success'}
CHECK_STATUSES = {'queued', 'in_progress', 'completed', 'waiting', 'requested', 'pending'}
CONCLUSIONS = {'action_required', 'cancelled', 'failure', 'neutral', 'success', 'skipped', 'stale', 'timed_out'}
LEVELS = {'notice', 'warning', 'failure'}
CHECK_FIELDS = {'name', 'head_sha', 'details_url', 'external_id', 'status', 'started_at', 'conclusion',
                'completed_at', 'output', 'actions'}
OUTPUT_FIELDS = {'title', 'summary', 'text', 'annotations', 'images'}
ANNOTATION_FIELDS = {'path', 'start_line', 'end_line', 'start_column', 'end_column', 'annotation_level',
                     'message', 'title', 'raw_details'}
TIME_RE = re.compile(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$')


class Reject(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class State:
    token: str
    repository: str
    comments: dict[int, dict[str, Any]] = field(default_factory=dict)
    statuses: list[dict[str, Any]] = field(default_factory=list)
    check_runs: dict[int, dict[str, Any]] = field(default_factory=dict)
    annotations: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    rejected: list[tuple[str, str, int, str]] = field(default_factory=list)
    deny: set[str] = field(default_factory=set)  # route names answered with 403 (e.g. a fork PR token)
    next_id: int = 1000
    lock: threading.Lock = field(default_factory=threading.Lock)

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id


def _require_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise Reject(400, 'Problems parsing JSON')
    return body


def _only(body: dict[str, Any], allowed: set[str], what: str) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise Reject(422, f'Invalid request. "{unknown[0]}" is not a permitted key ({what}).')


def _string(body: dict[str, Any], key: str, *, required: bool = False, cap: int | None = None) -> None:
    if key not in body:
        if required:
            raise Reject(422, f'Invalid request. "{key}" wasn\'t supplied.')
        return
    if not isinstance(body[key], str):
        raise Reject(422, f'Invalid request. For "{key}", {body[key]!r} is not a string.')
    if cap is not None and len(body[key]) > cap:
        raise Reject(422, f'{key} is too long (maximum is {cap} characters)')


class Handler(BaseHTTPRequestHandler):
    server: Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep test output quiet
        pass

    # -- plumbing --------------------------------------------------------------------------
    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header('Content-Type', 'application/json; charset=utf-8')
        self.send_header('Content-Length', str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, method: str) -> None:
        st = self.server.state
        parts = urlsplit(self.path)
        length = int(self.headers.get('Content-Length') or 0)
        raw = self.rfile.read(length) if length else b''
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = '<invalid json>'
        with st.lock:
            st.requests.append((method, parts.path, body))
        try:
            auth = self.headers.get('Authorization', '')
            if auth not in (f'token {st.token}', f'Bearer {st.token}'):
                raise Reject(401, 'Bad credentials')
            status, payload, headers = self._route(method, parts.path, parse_qs(parts.query), body)
        except Reject as e:
            with st.lock:
                st.rejected.append((method, parts.path, e.status, e.message))
            self._send(e.status, {'message': e.message,
                                  'documentation_url': 'https://docs.github.com/rest'})
            return
        self._send(status, payload, headers)

    def do_GET(self) -> None:  # noqa: N802
        self._handle('GET')

    def do_POST(self) -> None:  # noqa: N802
        self._handle('POST')

    def do_PATCH(self) -> None:  # noqa: N802
        self._handle('PATCH')

    def do_PUT(self) -> None:  # noqa: N802
        self._handle('PUT')

    def do_DELETE(self) -> None:  # noqa: N802
        self._handle('DELETE')

    # -- routes ----------------------------------------------------------------------------
    def _route(self, method: str, path: str, query: dict[str, list[str]], body: Any):
        st = self.server.state
        repo = re.escape(st.repository)
        routes = [
            ('GET', rf'^/repos/{repo}/issues/(\d+)/comments$', 'list_comments', self.list_comments),
            ('POST', rf'^/repos/{repo}/issues/(\d+)/comments$', 'create_comment', self.create_comment),
            ('PATCH', rf'^/repos/{repo}/issues/comments/(\d+)$', 'edit_comment', self.edit_comment),
            ('POST', rf'^/repos/{repo}/statuses/([^/]+)$', 'create_status', self.create_status),
            ('POST', rf'^/repos/{repo}/check-runs$', 'create_check_run', self.create_check_run),
            ('PATCH', rf'^/repos/{repo}/check-runs/(\d+)$', 'update_check_run', self.update_check_run),
        ]
        for verb, pattern, name, fn in routes:
            m = re.match(pattern, path)
            if m and verb == method:
                if name in st.deny:
                    raise Reject(403, 'Resource not accessible by integration')
                return fn(*m.groups(), query=query, body=body)
        raise Reject(404, 'Not Found')

    def _url(self, path: str) -> str:
        return f'{self.server.base_url}{path}'

    def _comment_json(self, c: dict[str, Any]) -> dict[str, Any]:
        st = self.server.state
        return {
            'id': c['id'], 'node_id': f'IC_{c["id"]}', 'body': c['body'],
            'url': self._url(f'/repos/{st.repository}/issues/comments/{c["id"]}'),
            'html_url': f'https://github.example/{st.repository}/pull/{c["issue"]}#issuecomment-{c["id"]}',
            'issue_url': self._url(f'/repos/{st.repository}/issues/{c["issue"]}'),
            'user': {'login': c['user'], 'id': 41898282 if c['user'].endswith('[bot]') else 1001,
                     'type': 'Bot' if c['user'].endswith('[bot]') else 'User'},
            'created_at': c['created_at'], 'updated_at': c['updated_at'],
            'author_association': 'NONE',
        }

    def list_comments(self, number: str, *, query: dict[str, list[str]], body: Any):
        st = self.server.state
        allowed = {'per_page', 'page', 'since'}
        if set(query) - allowed:
            raise Reject(422, f'unknown query parameter {sorted(set(query) - allowed)[0]}')
        per_page = min(int(query.get('per_page', ['30'])[0]), 100)
        page = int(query.get('page', ['1'])[0])
        items = [c for c in sorted(st.comments.values(), key=lambda c: c['id']) if c['issue'] == int(number)]
        chunk = items[(page - 1) * per_page: page * per_page]
        headers = {}
        if page * per_page < len(items):
            base = self._url(f'/repos/{st.repository}/issues/{number}/comments')
            last = (len(items) + per_page - 1) // per_page
            headers['Link'] = (f'<{base}?per_page={per_page}&page={page + 1}>; rel="next", '
                               f'<{base}?per_page={per_page}&page={last}>; rel="last"')
        return 200, [self._comment_json(c) for c in chunk], headers

    def create_comment(self, number: str, *, query: dict[str, list[str]], body: Any):
        b = _require_object(body)
        _only(b, {'body'}, 'issue comment')
        _string(b, 'body', required=True, cap=65536)
        st = self.server.state
        with st.lock:
            c = {'id': st.new_id(), 'issue': int(number), 'body': b['body'], 'user': 'github-actions[bot]',
                 'created_at': '2026-01-01T00:00:00Z', 'updated_at': '2026-01-01T00:00:00Z'}
            st.comments[c['id']] = c
        return 201, self._comment_json(c), {}

    def edit_comment(self, comment_id: str, *, query: dict[str, list[str]], body: Any):
        b = _require_object(body)
        _only(b, {'body'}, 'issue comment')
        _string(b, 'body', required=True, cap=65536)
        st = self.server.state
        c = st.comments.get(int(comment_id))
        if c is None:
            raise Reject(404, 'Not Found')
        if c['user'] != 'github-actions[bot]':
            raise Reject(403, 'Resource not accessible by integration')
        with st.lock:
            c['body'] = b['body']
            c['updated_at'] = '2026-01-01T00:01:00Z'
        return 200, self._comment_json(c), {}

    def create_status(self, sha: str, *, query: dict[str, list[str]], body: Any):
        b = _require_object(body)
        _only(b, {'state', 'target_url', 'description', 'context'}, 'status')
        if not SHA_RE.match(sha):
            raise Reject(422, f'No commit found for SHA: {sha}')
        if b.get('state') not in STATUS_STATES:
            raise Reject(422, f'state must be one of {sorted(STATUS_STATES)}')
        _string(b, 'description', cap=140)
        _string(b, 'context')
        _string(b, 'target_url')
        st = self.server.state
        with st.lock:
            status = {'id': st.new_id(), 'sha': sha, **b}
            st.statuses.append(status)
        out = {'id': status['id'], 'node_id': f'SC_{status["id"]}', 'state': b['state'],
               'description': b.get('description'), 'target_url': b.get('target_url'),
               'context': b.get('context', 'default'), 'url': self._url(f'/repos/{st.repository}/statuses/{sha}'),
               'created_at': '2026-01-01T00:00:00Z', 'updated_at': '2026-01-01T00:00:00Z'}
        return 201, out, {}

    def _check_body(self, b: dict[str, Any], creating: bool) -> None:
        _only(b, CHECK_FIELDS, 'check run')
        _string(b, 'name', required=creating)
        _string(b, 'head_sha', required=creating)
        if 'head_sha' in b and not SHA_RE.match(b['head_sha']):
            raise Reject(422, 'head_sha is not a valid commit SHA')
        for key in ('details_url', 'external_id'):
            _string(b, key)
        for key in ('started_at', 'completed_at'):
            if key in b and not (isinstance(b[key], str) and TIME_RE.match(b[key])):
                raise Reject(422, f'{key} must be an ISO 8601 timestamp')
        if 'status' in b and b['status'] not in CHECK_STATUSES:
            raise Reject(422, f'status must be one of {sorted(CHECK_STATUSES)}')
        if 'conclusion' in b and b['conclusion'] not in CONCLUSIONS:
            raise Reject(422, f'conclusion must be one of {sorted(CONCLUSIONS)}')
        if b.get('status') == 'completed' and 'conclusion' not in b:
            raise Reject(422, 'conclusion is required when status is completed')
        if 'output' in b:
            out = b['output']
            if not isinstance(out, dict):
                raise Reject(422, 'output must be an object')
            _only(out, OUTPUT_FIELDS, 'check run output')
            _string(out, 'title', required=True)
            _string(out, 'summary', required=True, cap=65535)
            _string(out, 'text', cap=65535)
            notes = out.get('annotations', [])
            if not isinstance(notes, list):
                raise Reject(422, 'annotations must be an array')
            if len(notes) > 50:
                raise Reject(422, f'No more than 50 items are allowed; {len(notes)} were supplied.')
            for a in notes:
                if not isinstance(a, dict):
                    raise Reject(422, 'annotation must be an object')
                _only(a, ANNOTATION_FIELDS, 'annotation')
                for key in ('path', 'message'):
                    _string(a, key, required=True)
                for key in ('start_line', 'end_line'):
                    if not isinstance(a.get(key), int) or a[key] < 1:
                        raise Reject(422, f'annotation {key} must be a positive integer')
                if a['end_line'] < a['start_line']:
                    raise Reject(422, 'annotation end_line is before start_line')
                if a.get('annotation_level') not in LEVELS:
                    raise Reject(422, f'annotation_level must be one of {sorted(LEVELS)}')
                if ('start_column' in a or 'end_column' in a) and a['start_line'] != a['end_line']:
                    raise Reject(422, 'start_column and end_column are only allowed on single-line annotations')
                if a['path'].startswith('/'):
                    raise Reject(422, 'annotation path must be relative to the repository root')

    def _check_json(self, run: dict[str, Any]) -> dict[str, Any]:
        st = self.server.state
        out = run.get('output') or {}
        return {
            'id': run['id'], 'node_id': f'CR_{run["id"]}', 'name': run['name'], 'head_sha': run['head_sha'],
            'external_id': run.get('external_id', ''), 'status': run.get('status', 'queued'),
            'conclusion': run.get('conclusion'), 'started_at': run.get('started_at'),
            'completed_at': run.get('completed_at'), 'details_url': run.get('details_url'),
            'url': self._url(f'/repos/{st.repository}/check-runs/{run["id"]}'),
            'html_url': f'https://github.example/{st.repository}/runs/{run["id"]}',
            'output': {'title': out.get('title'), 'summary': out.get('summary'), 'text': out.get('text'),
                       'annotations_count': len(st.annotations.get(run['id'], [])),
                       'annotations_url': self._url(f'/repos/{st.repository}/check-runs/{run["id"]}/annotations')},
            'check_suite': {'id': 5}, 'app': {'id': 15368, 'slug': 'github-actions', 'name': 'GitHub Actions'},
            'pull_requests': [],
        }

    def create_check_run(self, *, query: dict[str, list[str]], body: Any):
        b = _require_object(body)
        self._check_body(b, creating=True)
        st = self.server.state
        with st.lock:
            run = {'id': st.new_id(), **b}
            st.check_runs[run['id']] = run
            st.annotations[run['id']] = list((b.get('output') or {}).get('annotations', []))
        return 201, self._check_json(run), {}

    def update_check_run(self, run_id: str, *, query: dict[str, list[str]], body: Any):
        b = _require_object(body)
        self._check_body(b, creating=False)
        st = self.server.state
        run = st.check_runs.get(int(run_id))
        if run is None:
            raise Reject(404, 'Not Found')
        with st.lock:
            run.update({k: v for k, v in b.items() if k != 'output'})
            if 'output' in b:
                run['output'] = b['output']
                st.annotations[run['id']].extend(b['output'].get('annotations', []))  # updates append
        return 200, self._check_json(run), {}


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: State) -> None:
        super().__init__(('127.0.0.1', 0), Handler)
        self.state = state
        self.base_url = f'http://127.0.0.1:{self.server_address[1]}'


class FakeGitHub:
    """Start with ``start()``, stop with ``stop()``; ``url`` is the API base URL."""

    def __init__(self, token: str, repository: str = 'octo/demo') -> None:
        self.state = State(token=token, repository=repository)
        self.server = Server(self.state)
        self.url = self.server.base_url
        self._thread = threading.Thread(target=self.server.serve_forever, name='fake-github', daemon=True)

    def start(self) -> FakeGitHub:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)

    def add_comment(self, issue: int, body: str, user: str = 'someone') -> int:
        st = self.state
        with st.lock:
            cid = st.new_id()
            st.comments[cid] = {'id': cid, 'issue': issue, 'body': body, 'user': user,
                                'created_at': '2026-01-01T00:00:00Z', 'updated_at': '2026-01-01T00:00:00Z'}
        return cid

    def writes(self) -> list[tuple[str, str, Any]]:
        return [r for r in self.state.requests if r[0] != 'GET']
