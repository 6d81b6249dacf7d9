"""``mlproj.httplite`` checked differentially against ``http.client``: the same request through both
to a scripted raw-socket loopback server answering canned (often adversarial) bytes, the same
answer read back (status, reason, body, content type, will_close) or the same kind of failure
(a protocol error, a connection cut inside the answer, a dropped kept-alive connection, a body
over the bound); the exact bytes both send; the differences kept on purpose (each stated where
it is tested).  Then ``RestTracker`` through httplite: against a real ``mlflow server``, against
misbehaving servers, and which transport each URI gets."""
from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time

import pytest

from mlproj import httplite
from mlproj.errors import TrackingError
from mlproj.tracking_rest import RestTracker
from tests.helpers import REPO, free_port

MAX_BODY = 100
JSON_HEADERS = {'User-Agent': 'mlproj', 'Accept': 'application/json'}


class Scripted:
    """A loopback server (one thread per connection) answering the n-th request of every
    connection with ``answers[n]`` (raw bytes), closing the connection after it when ``close`` is
    set or the script is done; ``None`` closes without answering.  ``requests`` holds the raw bytes
    of every request it read, ``connections`` counts the connections it accepted."""

    def __init__(self, answers: list[bytes | None], close: bool = False,
                 per_connection: list[list[bytes | None]] | None = None, tls: ssl.SSLContext | None = None) -> None:
        self.answers, self.close_after, self.per_connection = answers, close, per_connection
        self.requests: list[bytes] = []
        self.connections = 0
        self.sock = socket.create_server(('127.0.0.1', 0))
        if tls is not None:  # every accepted connection speaks TLS (the handshake happens in accept)
            self.sock = tls.wrap_socket(self.sock, server_side=True)
        self.port = self.sock.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._accepter = threading.Thread(target=self._accept, daemon=True)
        self._accepter.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            script = self.per_connection[self.connections] if self.per_connection else self.answers
            self.connections += 1
            t = threading.Thread(target=self._serve, args=(conn, script), daemon=True)
            self._threads.append(t)
            t.start()

    def _read_request(self, conn: socket.socket, buf: bytearray) -> bytes | None:
        while b'\r\n\r\n' not in buf:
            data = conn.recv(65536)
            if not data:
                return None
            buf += data
        end = buf.index(b'\r\n\r\n') + 4
        length = 0
        for line in bytes(buf[:end]).split(b'\r\n'):
            if line.lower().startswith(b'content-length:'):
                length = int(line.split(b':', 1)[1])
        while len(buf) < end + length:
            data = conn.recv(65536)
            if not data:
                return None
            buf += data
        request = bytes(buf[:end + length])
        del buf[:end + length]
        return request

    def _serve(self, conn: socket.socket, script: list[bytes | None]) -> None:
        conn.settimeout(5)
        buf = bytearray()
        try:
            for answer in script:
                request = self._read_request(conn, buf)
                if request is None:
                    return
                self.requests.append(request)
                if answer is None:
                    return
                conn.sendall(answer)
                if self.close_after:
                    return
        except OSError:
            pass
        finally:
            conn.close()

    def stop(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept (a close alone does not)
        except OSError:
            pass
        self.sock.close()
        self._accepter.join(2)
        for t in self._threads:
            t.join(2)


@pytest.fixture
def scripted():
    servers: list[Scripted] = []

    def start(answers: list[bytes | None] | None = None, **kw) -> Scripted:
        servers.append(Scripted(answers or [], **kw))
        return servers[-1]

    yield start
    for s in servers:
        s.stop()


@pytest.fixture
def no_proxy(monkeypatch):
    for k in [k for k in os.environ if k.lower().endswith('_proxy')]:
        monkeypatch.delenv(k)


def kind_of(e: BaseException) -> str:
    """The failure classes the comparison speaks of, from either client's exception."""
    if isinstance(e, (http.client.IncompleteRead, httplite.IncompleteRead)):
        return 'cut inside the answer'
    if isinstance(e, (http.client.RemoteDisconnected, httplite.RemoteDisconnected)):
        return 'closed without answering'
    if isinstance(e, OSError):
        return 'OSError'
    if isinstance(e, httplite.BodyTooLarge):
        return 'too large'
    if isinstance(e, (http.client.HTTPException, httplite.ProtocolError)):
        return 'protocol error'
    raise e


def _drive(conn, send, requests: list[tuple[str, str, bytes | None]]) -> list:
    """Each request's answer (what ``send`` makes of it), or its failure's kind, over ``conn``;
    the first failure ends the sequence, and the connection is closed at the end."""
    out: list = []
    try:
        for method, path, body in requests:
            try:
                out.append(send(conn, method, path, body))
            except Exception as e:
                out.append(kind_of(e))
                break
    finally:
        conn.close()
    return out


def _send_httpclient(conn, method: str, path: str, body: bytes | None) -> tuple:
    conn.request(method, path, body=body, headers=JSON_HEADERS)
    r = conn.getresponse()
    data = r.read()
    if len(data) > MAX_BODY:
        raise httplite.BodyTooLarge
    return r.status, r.reason, data, r.getheader('Content-Type', '') or '', r.will_close


def _send_httplite(conn, method: str, path: str, body: bytes | None) -> tuple:
    r = conn.request(method, path, body, JSON_HEADERS)
    return r.status, r.reason, r.body, r.content_type, r.will_close


def with_httpclient(port: int, requests: list[tuple[str, str, bytes | None]]) -> list:
    """Each request's (status, reason, body, content type, will_close), or its failure's kind,
    over one ``http.client`` connection, the body read whole (a longer one than MAX_BODY is 'too
    large', as RestTracker decides)."""
    return _drive(http.client.HTTPConnection('127.0.0.1', port, timeout=2), _send_httpclient, requests)


def with_httplite(port: int, requests: list[tuple[str, str, bytes | None]]) -> list:
    return _drive(httplite.Connection('127.0.0.1', port, timeout=2, max_body=MAX_BODY), _send_httplite, requests)


def both(scripted, answers: list[bytes | None], requests=(('GET', '/x', None),), **kw):
    server = scripted(answers, **kw)
    ours = with_httplite(server.port, list(requests))
    theirs = with_httpclient(server.port, list(requests))
    return ours, theirs


OK_JSON = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}'

SAME = {
    'content-length': [OK_JSON],
    'content-length, two answers on one connection': [OK_JSON, OK_JSON],
    'chunked, extensions and trailers': [
        b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n'
        b'4;name=value\r\n{"a"\r\n3 ; x="y;z"\r\n: 1\r\n1\r\n}\r\n0;last\r\nX-Trailer: t\r\nX-Other: u\r\n\r\n',
        OK_JSON],
    'chunked, mixed-case coding and hex digits': [
        b'HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n'],
    'close-delimited HTTP/1.0': [b'HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhello'],
    'close-delimited HTTP/1.1 with Connection: close': [b'HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nbody'],
    'close-delimited HTTP/1.1 without Connection: close': [b'HTTP/1.1 200 OK\r\n\r\nbody'],
    'Content-Length with Connection: close': [
        b'HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\nabc'],
    'HTTP/1.0 kept alive': [b'HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 3\r\n\r\nabc',
                            b'HTTP/1.0 200 OK\r\nKeep-Alive: timeout=5\r\nContent-Length: 2\r\n\r\nde'],
    '100 Continue, then 200': [b'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\nX: y\r\n\r\n' + OK_JSON],
    '204 with a Content-Length and no body': [b'HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n', OK_JSON],
    '304 with a Content-Length and no body': [b'HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n', OK_JSON],
    'duplicate headers': [b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Type: text/plain\r\n'
                          b'X-Dup: 1\r\nX-Dup: 2\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}'],
    'mixed-case header names': [b'HTTP/1.1 200 OK\r\ncOnTeNt-TyPe: application/json\r\nCONTENT-LENGTH: 2\r\n'
                                b'connection: CLOSE\r\n\r\n{}'],
    'bare LF line ends': [b'HTTP/1.1 200 OK\nContent-Type: application/json\nContent-Length: 2\n\n{}'],
    'a status line without reason, a long reason': [b'HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n',
                                                    b'HTTP/1.1 500 Internal  Server Error \r\nContent-Length: 0\r\n\r\n',
                                                    b'HTTP/1.1 200 \xe9t\xe9\xa0\r\nContent-Length: 0\r\n\r\n'],
    'an error status with a JSON body': [
        b'HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{"error": "no"}'],
    'bad status line: garbage': [b'garbage\r\n\r\n'],
    'bad status line: not a number': [b'HTTP/1.1 abc OK\r\n\r\n'],
    'bad status line: two digits': [b'HTTP/1.1 20 OK\r\n\r\n'],
    'bad status line: not HTTP': [b'ICY 200 OK\r\n\r\n'],
    'bad status line: HTTP/2': [b'HTTP/2 200 OK\r\n\r\n'],
    'oversized status line': [b'HTTP/1.1 200 ' + b'x' * 70000 + b'\r\n\r\n'],
    'oversized header line': [b'HTTP/1.1 200 OK\r\nX-Big: ' + b'x' * 70000 + b'\r\nContent-Length: 0\r\n\r\n'],
    # http.client's bound counts the blank line too: 99 headers pass, 100 do not
    '100 header lines': [b'HTTP/1.1 200 OK\r\n' + b''.join(b'X-%d: v\r\n' % i for i in range(99))
                         + b'Content-Length: 0\r\n\r\n'],
    '99 header lines': [b'HTTP/1.1 200 OK\r\n' + b''.join(b'X-%d: v\r\n' % i for i in range(98))
                        + b'Content-Length: 0\r\n\r\n'],
    'oversized chunk-size line': [b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;' + b'x' * 70000
                                  + b'\r\na\r\n0\r\n\r\n'],
    'truncated Content-Length body': [b'HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc'],
    'truncated chunked body, inside a chunk': [b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab'],
    'truncated chunked body, no last chunk': [b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n'],
    'a Content-Length body longer than max_body': [
        b'HTTP/1.1 200 OK\r\nContent-Length: 200\r\n\r\n' + b'x' * 200],
    'a chunked body longer than max_body': [
        b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n' + b'64\r\n' + b'x' * 100 + b'\r\n' + b'1\r\nx\r\n0\r\n\r\n'],
    'a close-delimited body longer than max_body': [b'HTTP/1.0 200 OK\r\n\r\n' + b'x' * 200],
    'a body of exactly max_body': [b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n' + b'x' * 100],
    'no answer at all': [None],
    'a kept-alive connection closed before the second answer': [OK_JSON, None],
}


@pytest.mark.parametrize('case', SAME)
def test_the_same_answer_as_http_client(scripted, case):
    answers = SAME[case]
    requests = [('GET', '/x', None)] * len(answers)
    ours, theirs = both(scripted, answers, requests)
    assert ours == theirs
    expected = next((kind for start, kind in FAILS.items() if case.startswith(start)), None)
    if expected:  # both fail alike, and as the case says
        assert ours[-1] == expected
    else:
        assert len(ours) == len(answers) and all(isinstance(r, tuple) for r in ours)


FAILS = {'bad status line': 'protocol error', 'oversized': 'protocol error', '100 header lines': 'protocol error',
         'truncated': 'cut inside the answer', 'a Content-Length body longer': 'too large',
         'a chunked body longer': 'too large', 'a close-delimited body longer': 'too large',
         'no answer': 'closed without answering', 'a kept-alive connection closed': 'closed without answering'}


def test_the_failures_are_of_the_classes_restracker_tells_apart():
    # OSError: RestTracker retries once ("cannot reach"); anything else is "cannot talk" at once
    assert issubclass(httplite.IncompleteRead, ConnectionError)
    assert issubclass(httplite.RemoteDisconnected, ConnectionResetError)
    assert not issubclass(httplite.ProtocolError, OSError)
    assert issubclass(httplite.BodyTooLarge, httplite.ProtocolError)


@pytest.mark.parametrize('method', ['HEAD'])
def test_head_reads_no_body_and_keeps_the_connection(scripted, method):
    answers = [b'HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 10\r\n\r\n', OK_JSON]
    ours, theirs = both(scripted, answers, [(method, '/x', None), ('GET', '/x', None)])
    assert ours == theirs == [(200, 'OK', b'', 'text/html', False), (200, 'OK', b'{}', 'application/json', False)]


def test_a_server_closing_a_kept_alive_connection_between_two_requests(scripted):
    """Closed right after the first answer (which did not say so), and the close has arrived
    before the second request: http.client sends into the dead socket and fails; httplite sees
    the idle socket readable and sends on a new connection (a difference kept on purpose: an
    mlflow server closes idle connections after a few seconds, i.e. during most runs)."""
    server = scripted([OK_JSON, OK_JSON, OK_JSON], close=True)
    theirs = http.client.HTTPConnection('127.0.0.1', server.port, timeout=2)
    theirs.request('GET', '/x')
    assert theirs.getresponse().read() == b'{}'
    time.sleep(0.2)  # the server's close arrives
    with pytest.raises((http.client.RemoteDisconnected, OSError)):
        theirs.request('POST', '/y', body=b'{}')
        theirs.getresponse()
    theirs.close()
    ours = httplite.Connection('127.0.0.1', server.port, timeout=2)
    assert ours.request('GET', '/x').body == b'{}'
    time.sleep(0.2)
    before = server.connections
    second = ours.request('POST', '/y', b'{}')
    assert (second.status, second.body) == (200, b'{}')
    assert server.connections == before + 1  # a new connection, not an error
    ours.close()


def test_the_request_bytes_are_http_clients(scripted):
    """The same bytes, byte for byte: request line, Host (with the port), Accept-Encoding:
    identity (http.client adds it; httplite does too, so a server sees no difference),
    Content-Length (0 for a POST without body, none for a GET), then the caller's headers in order."""
    headers = {'User-Agent': 'mlproj', 'Accept': 'application/json', 'Content-Type': 'application/json',
               'Authorization': 'Bearer t0k'}
    body = json.dumps({'run_id': 'r', 'params': [{'key': 'é', 'value': 'v'}]}).encode()
    requests = [('GET', '/api/2.0/mlflow/runs/get?run_id=abc&x=%2F', None, {'User-Agent': 'mlproj'}),
                ('POST', '/api/2.0/mlflow/runs/log-batch', body, headers),
                ('POST', '/api/2.0/mlflow/runs/update', None, headers),
                ('DELETE', '/p', None, {}),
                ('GET', '/empty-body', b'', {})]  # a body, if empty: Content-Length: 0 too
    seen = []
    server = scripted([OK_JSON] * len(requests))  # every connection gets the same answers
    for client in ('httplite', 'http.client'):
        server.requests = []
        if client == 'httplite':
            lite = httplite.Connection('127.0.0.1', server.port, timeout=2)
            for method, path, data, h in requests:
                lite.request(method, path, data, h)
            lite.close()
        else:
            conn = http.client.HTTPConnection('127.0.0.1', server.port, timeout=2)
            for method, path, data, h in requests:
                conn.request(method, path, body=data, headers=h)
                conn.getresponse().read()
            conn.close()
        seen.append(server.requests)
    assert seen[0] == seen[1]
    assert seen[0][0] == (f'GET /api/2.0/mlflow/runs/get?run_id=abc&x=%2F HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n'
                          'Accept-Encoding: identity\r\nUser-Agent: mlproj\r\n\r\n').encode()
    assert b'\r\nContent-Length: 0\r\n' in seen[0][2]


def test_the_host_header_is_http_clients():
    for host, port in [('example.com', None), ('example.com', 80), ('example.com', 5000), ('::1', 8080)]:
        lite = httplite.Connection(host, port)._head('GET', '/', None, {})
        hc = http.client.HTTPConnection(host, port)
        hc.putrequest('GET', '/')
        assert lite.split(b'\r\n')[1] == hc._buffer[1], (host, port)
    # http.client takes a bare '::1' without a port for host '::' port 1 ('Host: [:]:1'): not copied
    assert httplite.Connection('::1')._head('GET', '/', None, {}).split(b'\r\n')[1] == b'Host: [::1]'


@pytest.mark.parametrize('method, path, headers', [
    ('GET\r\nX: y', '/', {}),
    ('GET', '/', {'X-A': 'a\r\nX-Injected: 1'}),
    ('GET', '/', {'X-A': 'a\nb'}),
    ('GET', '/', {'X-A\r\n': 'a'}),
    ('GET', '/', {'X-A': 'a\rb'}),
])
def test_control_characters_are_refused_as_http_client_refuses_them(method, path, headers):
    with pytest.raises(ValueError):
        httplite.Connection('127.0.0.1', 1)._head(method, path, None, headers)
    hc = http.client.HTTPConnection('127.0.0.1', 1)
    with pytest.raises(ValueError):
        hc.putrequest(method, path)
        for k, v in headers.items():
            hc.putheader(k, v)


@pytest.mark.parametrize('path', ['/a b', '/a\r\nX: y', '/a\0'])
def test_a_path_with_spaces_or_control_characters_is_refused(path):
    """http.client raises InvalidURL (an HTTPException, not a ValueError) and httplite ValueError:
    RestTracker makes both 'cannot talk to the tracking server' (its paths are urlencoded anyway)."""
    with pytest.raises(ValueError):
        httplite.Connection('127.0.0.1', 1)._head('GET', path, None, {})
    with pytest.raises(http.client.InvalidURL):
        http.client.HTTPConnection('127.0.0.1', 1).putrequest('GET', path)


# -- the differences kept on purpose ------------------------------------------------------------
@pytest.mark.parametrize('length', [b'abc', b'-1', b'1, 2', b'+2'])
def test_an_invalid_content_length_is_a_protocol_error(scripted, length):
    """http.client ignores it (and reads until the close, or a length int() accepts); a length
    nobody can trust is the server's error (RFC 9112 6.3)."""
    answer = b'HTTP/1.1 200 OK\r\nContent-Length: ' + length + b'\r\nConnection: close\r\n\r\n{}'
    ours, theirs = both(scripted, [answer])
    assert ours == ['protocol error']
    assert theirs[0][2] == b'{}'


def test_a_connection_closed_inside_the_headers_is_cut_inside_the_answer(scripted):
    """http.client ends the headers at the close and answers 200 with an empty body; the answer
    was cut, which RestTracker retries once like any dropped connection."""
    ours, theirs = both(scripted, [b'HTTP/1.1 200 OK\r\nContent-Type: application/js'])
    assert ours == ['cut inside the answer']
    assert theirs[0][:3] == (200, 'OK', b'')


def test_interim_answers_other_than_100_are_skipped(scripted):
    """http.client returns a 103 Early Hints as the answer (and the real one is left unread);
    httplite skips every 1xx but 101, which it refuses (nothing asked to switch protocols)."""
    ours, theirs = both(scripted, [b'HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n' + OK_JSON])
    assert ours == [(200, 'OK', b'{}', 'application/json', False)]
    assert theirs[0][0] == 103
    ours, _ = both(scripted, [b'HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n'])
    assert ours == ['protocol error']
    ours, _ = both(scripted, [b'HTTP/1.1 100 Continue\r\n\r\n' * 11 + OK_JSON])
    assert ours == ['protocol error']  # http.client has no bound on them


def test_malformed_framing_is_a_protocol_error(scripted):
    """A header line without a colon (http.client's email parser takes it and what follows as
    the body), a chunk not followed by CRLF (http.client discards any two bytes), a transfer
    coding it cannot decode (http.client hands over the coded bytes)."""
    for answer in [b'HTTP/1.1 200 OK\r\nno colon here\r\nContent-Length: 2\r\n\r\n{}',
                   b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}XX0\r\n\r\n',
                   b'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n',
                   b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n']:
        ours, _ = both(scripted, [answer])
        assert ours == ['protocol error'], answer


def test_several_connection_headers_are_read_together(scripted):
    """http.client reads only the first Connection header; httplite closes if any says close."""
    ours, theirs = both(scripted, [b'HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nConnection: close\r\n'
                                   b'Content-Length: 0\r\n\r\n'])
    assert ours[0][4] is True and theirs[0][4] is False


def test_a_declared_length_over_the_bound_is_refused_before_reading(scripted):
    server = scripted([b'HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n'])  # and no body at all
    with pytest.raises(httplite.BodyTooLarge):
        httplite.Connection('127.0.0.1', server.port, timeout=2, max_body=MAX_BODY).request('GET', '/')


def test_the_socket_options_and_the_host_passed_as_bytes(scripted, monkeypatch):
    """An ASCII host reaches getaddrinfo as bytes (no IDNA codec import); TCP_NODELAY is set."""
    server = scripted([OK_JSON])
    seen = []
    real = socket.create_connection
    monkeypatch.setattr(socket, 'create_connection', lambda address, *a: seen.append(address) or real(address, *a))
    conn = httplite.Connection('127.0.0.1', server.port, timeout=2)
    conn.request('GET', '/')
    assert seen == [(b'127.0.0.1', server.port)]
    assert conn._sock is not None and conn._sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    conn.close()


# -- RestTracker through httplite ---------------------------------------------------------------
def test_which_transport_each_uri_gets(no_proxy):
    assert isinstance(RestTracker('http://127.0.0.1:5000')._connection(), httplite.Connection)
    assert isinstance(RestTracker('http://tracking.example/prefix')._connection(), httplite.Connection)
    assert isinstance(RestTracker('https://tracking.example')._connection(), http.client.HTTPSConnection)
    unicode_host = RestTracker('http://bücher.example')._connection()
    assert type(unicode_host) is http.client.HTTPConnection


def test_an_html_page_with_200_is_not_json(scripted, no_proxy):
    page = b'<html><body>Please log in</body></html>'
    server = scripted([b'HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: %d\r\n\r\n%s'
                       % (len(page), page)])
    with pytest.raises(TrackingError, match='runs/create: the tracking server answered with text/html instead of JSON'):
        RestTracker(f'http://127.0.0.1:{server.port}', timeout=2).create_run('0', {}, None)


def test_a_server_that_is_not_http_is_one_line(scripted, no_proxy):
    server = scripted([b'SSH-2.0-OpenSSH_9.2\r\n\r\n'])
    with pytest.raises(TrackingError) as e:
        RestTracker(f'http://127.0.0.1:{server.port}', timeout=2).create_run('0', {}, None)
    assert str(e.value).startswith("cannot talk to the tracking server: ProtocolError: not an HTTP status line: b'SSH-2.0")
    assert '\n' not in str(e.value) and server.connections == 1  # not retried


def test_a_refused_port_cannot_be_reached(no_proxy):
    with pytest.raises(TrackingError, match='cannot reach the tracking server: .*[Cc]onnection refused'):
        RestTracker(f'http://127.0.0.1:{free_port()}', timeout=2).create_run('0', {}, None)


def test_an_oversized_answer_is_one_tracking_error(scripted, no_proxy, monkeypatch):
    from mlproj import tracking_rest

    monkeypatch.setattr(tracking_rest, 'MAX_RESPONSE_BYTES', 1000)
    for body in (b'Content-Length: 5000\r\n\r\n' + b'x' * 5000,
                 b'Transfer-Encoding: chunked\r\n\r\n' + b'1388\r\n' + b'x' * 5000 + b'\r\n0\r\n\r\n'):
        server = scripted([b'HTTP/1.1 200 OK\r\n' + body])
        uri = f'http://127.0.0.1:{server.port}'
        with pytest.raises(TrackingError) as e:
            RestTracker(uri, timeout=2).get_run('0' * 32)
        assert str(e.value) == f'the tracking server answered more than 1000 bytes ({uri})'


RUN = json.dumps({'run': {'info': {'run_id': 'r1', 'experiment_id': '0', 'status': 'RUNNING'}}}).encode()
RUN_ANSWER = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s' % (len(RUN), RUN)


def test_a_kept_alive_connection_the_server_closed_is_retried_once(scripted, no_proxy):
    server = scripted(per_connection=[[RUN_ANSWER, None], [RUN_ANSWER]], answers=[])
    t = RestTracker(f'http://127.0.0.1:{server.port}', timeout=2)
    assert t.get_run('r1').status == 'RUNNING'
    assert t.get_run('r1').status == 'RUNNING'  # the first connection closed: one retry on a new one
    assert server.connections == 2


def test_an_idle_connection_the_server_closed_costs_no_retry(scripted, no_proxy, monkeypatch):
    """A run's end meets a connection the server closed while the command ran: the request goes
    on a new connection at once, without the retry's sleep."""
    server = scripted(per_connection=[[RUN_ANSWER, None], [RUN_ANSWER]], answers=[], close=True)
    t = RestTracker(f'http://127.0.0.1:{server.port}', timeout=2)
    assert t.get_run('r1').status == 'RUNNING'
    time.sleep(0.2)  # the server's close arrives while the connection is idle

    def no_sleep(seconds):
        raise AssertionError(f'retried after sleeping {seconds} s')

    monkeypatch.setattr('mlproj.tracking_rest.time.sleep', no_sleep)
    assert t.get_run('r1').status == 'RUNNING'
    assert server.connections == 2


@pytest.fixture(scope='module')
def tls_files(tmp_path_factory):
    d = tmp_path_factory.mktemp('tls')
    crt, key = d / 'tls.crt', d / 'tls.key'
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=127.0.0.1',
                    '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', str(key), '-out', str(crt)],
                   check=True, capture_output=True)
    return str(crt), str(key)


def test_an_idle_https_connection_the_server_closed_costs_no_retry(scripted, no_proxy, monkeypatch, tls_files):
    """The same on https://, where RestTracker keeps http.client: an idle connection the server
    closed is replaced before the request instead of failing, sleeping and being retried."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(*tls_files)
    server = scripted(per_connection=[[RUN_ANSWER, None], [RUN_ANSWER]], answers=[], close=True, tls=server_ctx)
    monkeypatch.setenv('MLFLOW_TRACKING_SERVER_CERT_PATH', tls_files[0])
    t = RestTracker(f'https://127.0.0.1:{server.port}', timeout=5)
    assert not t._lite()
    assert t.get_run('r1').status == 'RUNNING'
    time.sleep(0.2)

    def no_sleep(seconds):
        raise AssertionError(f'retried after sleeping {seconds} s')

    monkeypatch.setattr('mlproj.tracking_rest.time.sleep', no_sleep)
    assert t.get_run('r1').status == 'RUNNING'
    assert server.connections == 2


def test_an_answer_cut_short_is_retried_once(scripted, no_proxy):
    server = scripted(per_connection=[[RUN_ANSWER[:-5]], [RUN_ANSWER]], answers=[])
    assert RestTracker(f'http://127.0.0.1:{server.port}', timeout=2).get_run('r1').run_id == 'r1'
    assert server.connections == 2


def test_a_round_trip_with_a_real_mlflow_server(mlflow_server, no_proxy):
    t = RestTracker(mlflow_server, timeout=10)
    assert isinstance(t._connection(), httplite.Connection)
    exp = t.resolve_experiment('httplite-round-trip', None)
    run_id = t.create_run(exp, {'mlproj.test': 'httplite'}, 'lite')
    t.log_params(run_id, {'a': '1', 'b': 'é ü'})
    got = t.get_run(run_id)
    assert (got.status, got.params, got.tags['mlproj.test']) == ('RUNNING', {'a': '1', 'b': 'é ü'}, 'httplite')
    t.set_status(run_id, 'FINISHED')
    assert t.get_run(run_id).status == 'FINISHED'
    with pytest.raises(TrackingError, match='does not exist'):
        t.get_run('0' * 32)


def test_a_request_imports_neither_http_client_nor_email_nor_ssl(mlflow_server):
    code = ('import sys\n'
            'from mlproj.tracking_rest import RestTracker\n'
            f't = RestTracker({mlflow_server!r})\n'
            "t.resolve_experiment('httplite-imports', None)\n"
            "print(sorted(m for m in ('http.client', 'email', 'ssl', 'urllib.request', 'encodings.idna')"
            " if m in sys.modules))\n")
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith('_proxy')}
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=60, cwd=REPO, env=env,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == '[]'
