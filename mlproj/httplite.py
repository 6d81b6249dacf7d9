"""A minimal HTTP/1.1 client over one kept-alive TCP socket (stdlib ``socket`` only), for
``RestTracker``'s plain ``http://`` tracking servers.

Why it exists (the project rule is to use a maintained library unless a measured number demands
otherwise): ``mlproj run`` against an ``mlflow server`` had ~138 ms of overhead over bare Python,
the target is 100 ms, and ``import http.client`` alone cost 12-13 ms of it (it imports
``email.parser``, ``email.message`` and ``ssl``; and ``socket.getaddrinfo`` on a ``str`` host
imports ``encodings.idna`` and ``stringprep``).  h11 was measured as slow to import as
``http.client``.  This module imports nothing but ``socket`` and passes ASCII hosts to
``getaddrinfo`` as bytes.

Where it is used: ``RestTracker`` (``mlproj/tracking_rest.py``) for ``http://`` URIs with an ASCII
host and no proxy variable.  Where it is not: ``https://`` keeps ``http.client`` (``ssl`` is
imported then anyway), a proxy variable keeps ``urllib.request`` (it honours them), a non-ASCII
host keeps ``http.client`` (the IDNA codec).

What it does: ``METHOD path HTTP/1.1`` with ``Host`` and ``Accept-Encoding: identity`` (as
``http.client`` writes them), ``Content-Length`` (also ``0`` for a POST/PUT/PATCH without a body,
none for a GET without one) and the caller's headers, in one ``sendall``: the same bytes as
``http.client``'s, in the same order.  CR, LF and NUL in header names and values, and any control
character or space in the method and path, are refused with ``ValueError``.  The answer: a
``HTTP/1.x NNN reason`` status line, 1xx interim answers skipped (at most 10), headers
case-insensitive and bounded as ``http.client`` bounds them (65536 bytes a line, 100 lines), a
body delimited by ``Transfer-Encoding: chunked`` (chunk extensions and trailers ignored, bounded
alike), else by ``Content-Length``, else by the close; no body for HEAD, 1xx, 204 and 304; a body
bounded by ``max_body`` (``BodyTooLarge``, raised before reading a declared ``Content-Length``
past it).  A malformed answer raises ``ProtocolError`` (not an ``OSError``: a server that is not
HTTP is not retried); a connection closed before or during the answer raises
``RemoteDisconnected`` / ``IncompleteRead`` (``ConnectionError`` subclasses, so ``RestTracker``
retries once, as for a kept-alive connection the server dropped).  A timeout is the socket's
(``TimeoutError``, an ``OSError``); ``timeout=None`` blocks.

Not supported: proxies, TLS, sending ``Expect: 100-continue``, content codings (MLflow's server
answers identity-encoded JSON), transfer codings other than ``chunked`` (a ``ProtocolError``),
pipelining, non-ASCII hosts.

A kept-alive connection the server closed while it was idle (between a run's start and its end)
is noticed before the next request (the socket is readable) and replaced, where ``http.client``
sends into it, fails, and ``RestTracker`` had to sleep and retry.

Where it differs from ``http.client`` (on purpose, for a broken or hostile server): an invalid,
negative or conflicting ``Content-Length`` is a ``ProtocolError`` (``http.client`` reads until the
close); a connection closed inside the headers or the body is ``IncompleteRead``
(``http.client`` ends the headers there, and ``read(amt)`` returns a short body silently); a
header line without a colon, a chunk not followed by CRLF, a malformed chunk size is a
``ProtocolError`` (``IncompleteRead`` for the last, in ``http.client``); every 1xx answer but 101
is skipped, at most 10 (``http.client`` skips only 100, without a bound, and returns a 103 as the
answer), 101 is refused; several ``Connection`` headers are read together (``http.client`` reads
the first); header values are stripped of surrounding whitespace; a bad path is a ``ValueError``
(``http.client``'s ``InvalidURL`` is not one); a bare IPv6 host without a port gets
``Host: [::1]`` (``http.client`` parses ``::1`` as host ``::`` port 1).
``tests/tracking/test_httplite.py`` checks all of this differentially against ``http.client`` on
a scripted loopback server.
"""
from __future__ import annotations

import io  # loaded at every interpreter's start (stdio): free
import socket
from collections.abc import Callable  # loaded at every interpreter's start (io): free

MAX_LINE = 65536        # http.client's _MAXLINE: a status, header, chunk-size or trailer line
MAX_HEADERS = 100       # http.client's _MAXHEADERS: lines, the blank one included (trailers too)
MAX_INTERIM = 10        # 1xx answers skipped before the final one
_BODY_METHODS = frozenset({'POST', 'PUT', 'PATCH'})   # http.client's _METHODS_EXPECTING_BODY
_NO_BODY_STATUSES = frozenset({204, 304})


class ProtocolError(Exception):
    """The server's answer is not HTTP/1.x as this client reads it (never retried)."""


class BodyTooLarge(ProtocolError):
    """The body is longer than the connection's ``max_body``."""


class RemoteDisconnected(ConnectionResetError):
    """The server closed the connection without answering (a kept-alive one it dropped)."""


class IncompleteRead(ConnectionError):
    """The server closed the connection in the middle of its answer."""


class Response:
    """A complete answer: its body is read before ``Connection.request`` returns."""

    __slots__ = ('status', 'reason', 'version', 'headers', 'body', 'will_close')

    def __init__(self, status: int, reason: str, version: int, headers: dict[str, list[str]], body: bytes,
                 will_close: bool) -> None:
        self.status = status
        self.reason = reason
        self.version = version      # 10 or 11, as http.client's HTTPResponse.version
        self.headers = headers      # lower-case name -> values in arrival order
        self.body = body
        self.will_close = will_close

    def getheader(self, name: str, default: str | None = None) -> str | None:
        """Every value of ``name`` joined with ", " (as ``http.client``'s ``getheader``)."""
        values = self.headers.get(name.lower())
        return ', '.join(values) if values else default

    @property
    def content_type(self) -> str:
        return self.getheader('content-type', '') or ''


def _refuse(kind: str, value: str, forbidden: str) -> None:
    for c in value:
        if c in forbidden:
            raise ValueError(f'invalid {kind} {value[:80]!r}: it contains {c!r}')


_CONTROLS = ''.join(map(chr, range(32))) + '\x7f'


class Connection:
    """One kept-alive HTTP/1.1 connection to ``host:port``, opened on the first request and again
    after an answer that closed it; used by one thread at a time (``RestTracker`` lends its idle ones out)."""

    def __init__(self, host: str, port: int | None = None, timeout: float | None = None,
                 max_body: int = 64 << 20) -> None:
        self.host = host
        self.port = 80 if port is None else port
        self.timeout = timeout
        self.max_body = max_body
        self._addr: bytes | str = host.encode('ascii') if host.isascii() else host
        netloc = f'[{host}]' if ':' in host else host
        self._host_header = netloc if self.port == 80 else f'{netloc}:{self.port}'
        self._sock: socket.socket | None = None
        self._file: io.BufferedIOBase | None = None

    def close(self) -> None:
        sock, file = self._sock, self._file
        self._sock = self._file = None
        for closable in (file, sock):
            if closable is not None:
                try:
                    closable.close()
                except OSError:
                    pass

    def _connect(self) -> None:
        sock = socket.create_connection((self._addr, self.port), self.timeout)  # type: ignore[arg-type]
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:  # pragma: no cover - not every platform has it
            pass
        self._sock, self._file = sock, sock.makefile('rb')

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None, sent: Callable[[], None] | None = None) -> Response:
        """Send one request and read its whole answer.  Any exception closes the connection.
        ``sent()``, when given, is called once the request is sent, before its answer is read:
        the caller's work that overlaps the server's."""
        head = self._head(method, path, body, headers or {})
        if self._sock is not None and self._closed_while_idle():
            self.close()
        try:
            if self._sock is None:
                self._connect()
            assert self._sock is not None
            self._sock.sendall(head + body if body else head)
            if sent is not None:
                sent()
            resp = self._read_response(method)
        except BaseException:
            self.close()
            raise
        if resp.will_close:
            self.close()
        return resp

    def _closed_while_idle(self) -> bool:
        assert self._sock is not None
        return readable_while_idle(self._sock)

    def _head(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> bytes:
        _refuse('method', method, _CONTROLS + ' ')
        _refuse('path', path, _CONTROLS + ' ')
        names = {k.lower() for k in headers}
        # http.client's encodings: the request line and header names ASCII, header values latin-1
        lines = [f'{method} {path} HTTP/1.1'.encode('ascii')]
        if 'host' not in names:
            lines.append(f'Host: {self._host_header}'.encode('ascii'))
        if 'accept-encoding' not in names:
            lines.append(b'Accept-Encoding: identity')
        if 'content-length' not in names and (body is not None or method.upper() in _BODY_METHODS):
            lines.append(f'Content-Length: {len(body or b"")}'.encode('ascii'))
        for name, value in headers.items():
            _refuse('header name', name, _CONTROLS + ' :')
            if not name:
                raise ValueError('invalid header name: empty')
            _refuse('header value', value, '\r\n\0')
            lines.append(name.encode('ascii') + b': ' + value.encode('latin-1'))
        lines += [b'', b'']
        return b'\r\n'.join(lines)

    # -- reading ---------------------------------------------------------------------------------
    def _line(self, what: str) -> bytes:
        assert self._file is not None
        line = self._file.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            raise ProtocolError(f'{what} line longer than {MAX_LINE} bytes')
        if not line.endswith(b'\n'):
            raise IncompleteRead(f'the server closed the connection inside the {what}')
        return line

    def _headers(self, what: str) -> dict[str, list[str]]:
        headers: dict[str, list[str]] = {}
        count = 0
        last: list[str] | None = None
        while True:
            line = self._line(what)
            count += 1  # as http.client counts: every line, the blank one that ends them included
            if count > MAX_HEADERS:
                raise ProtocolError(f'more than {MAX_HEADERS} {what} lines')
            if line in (b'\r\n', b'\n'):
                return headers
            text = line.rstrip(b'\r\n').decode('latin-1')
            if text[:1] in (' ', '\t'):  # obsolete line folding: one value, joined by a space
                if last is None:
                    raise ProtocolError(f'{what} start with a continuation line')
                last[-1] = f'{last[-1]} {text.strip()}'.strip()
                continue
            name, colon, value = text.partition(':')
            if not colon or not name or name != name.strip() or ' ' in name or '\t' in name:
                raise ProtocolError(f'malformed {what} line {text[:80]!r}')
            last = headers.setdefault(name.lower(), [])
            last.append(value.strip())

    def _read_response(self, method: str) -> Response:
        for _ in range(MAX_INTERIM + 1):
            assert self._file is not None
            line = self._file.readline(MAX_LINE + 1)
            if not line:
                raise RemoteDisconnected('the server closed the connection without answering')
            if len(line) > MAX_LINE:
                raise ProtocolError(f'status line longer than {MAX_LINE} bytes')
            version, status, reason = _status_line(line)
            headers = self._headers('header')
            if 100 <= status < 200:
                if status == 101:
                    raise ProtocolError('the server switched protocols (101), which was not asked for')
                continue
            break
        else:
            raise ProtocolError(f'more than {MAX_INTERIM} interim (1xx) answers')
        will_close = _will_close(version, headers)
        te = headers.get('transfer-encoding')
        codings = [c.strip().lower() for c in ','.join(te).split(',') if c.strip()] if te else []
        if method.upper() == 'HEAD' or status in _NO_BODY_STATUSES:
            body = b''
        elif codings:
            if codings != ['chunked']:
                raise ProtocolError(f'unsupported transfer coding {", ".join(te or [])[:80]!r}')
            body = self._chunked()
        elif 'content-length' in headers:
            body = self._exactly(_content_length(headers['content-length'], self.max_body))
        else:
            will_close = True
            body = self._until_close()
        return Response(status, reason, version, headers, body, will_close)

    def _exactly(self, n: int) -> bytes:
        assert self._file is not None
        data = self._file.read(n) if n else b''
        if len(data) < n:
            raise IncompleteRead(f'the server closed the connection after {len(data)} of {n} body bytes')
        return data

    def _until_close(self) -> bytes:
        assert self._file is not None
        parts: list[bytes] = []
        total = 0
        while True:
            part = self._file.read1(65536)
            if not part:
                return b''.join(parts)
            total += len(part)
            if total > self.max_body:
                raise BodyTooLarge(f'the body is longer than {self.max_body} bytes')
            parts.append(part)

    def _chunked(self) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            size_text = self._line('chunk size').split(b';', 1)[0].strip()
            if not size_text or len(size_text) > 16 or size_text.strip(b'0123456789abcdefABCDEF'):
                raise ProtocolError(f'malformed chunk size {size_text[:80]!r}')
            size = int(size_text, 16)
            if size == 0:
                self._headers('trailer')
                return b''.join(parts)
            total += size
            if total > self.max_body:
                raise BodyTooLarge(f'the body is longer than {self.max_body} bytes')
            parts.append(self._exactly(size))
            if self._exactly(2) != b'\r\n':
                raise ProtocolError('a chunk is not followed by CRLF')


def readable_while_idle(sock: socket.socket) -> bool:
    """Whether a kept-alive socket became readable between two requests: the server closed it
    (its idle timeout: uvicorn's is 5 s, gunicorn's 2 s, so the end of any longer run would meet
    it) or wrote something unasked.  Either way the next request should go on a new connection
    instead of failing on this one and being retried.  (``RestTracker`` asks this of its
    ``http.client`` connections too.)"""
    import select  # a C module, and subprocess has loaded it already on a run's path

    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _status_line(line: bytes) -> tuple[int, int, str]:
    text = line.decode('latin-1')  # as http.client splits and strips it
    words = text.split(None, 2)
    if len(words) < 2 or not words[0].startswith('HTTP/'):
        raise ProtocolError(f'not an HTTP status line: {line[:80]!r}')
    if words[0] == 'HTTP/1.0':
        version = 10
    elif words[0].startswith('HTTP/1.'):
        version = 11
    else:
        raise ProtocolError(f'unsupported HTTP version {words[0][:20]!r}')
    status = words[1]
    if len(status) != 3 or not (status.isascii() and status.isdigit()) or status[0] == '0':
        raise ProtocolError(f'not an HTTP status line: {line[:80]!r}')
    return version, int(status), words[2].strip() if len(words) > 2 else ''


def _tokens(headers: dict[str, list[str]], name: str) -> set[str]:
    return {t.strip().lower() for v in headers.get(name, ()) for t in v.split(',')}


def _will_close(version: int, headers: dict[str, list[str]]) -> bool:
    """As ``http.client``'s ``_check_close`` (HTTP/1.1 closes on ``Connection: close``; 1.0 unless
    it says keep-alive), with the ``Connection`` values read as comma-separated tokens."""
    connection = _tokens(headers, 'connection')
    if version == 11:
        return 'close' in connection
    return not ('keep-alive' in connection or 'keep-alive' in headers
                or 'keep-alive' in _tokens(headers, 'proxy-connection'))


def _content_length(values: list[str], max_body: int) -> int:
    """The one length every ``Content-Length`` value (and list element) states."""
    lengths = {v.strip() for value in values for v in value.split(',')}
    if len(lengths) != 1:
        raise ProtocolError(f'conflicting Content-Length values {", ".join(values)[:80]!r}')
    (text,) = lengths
    if not text.isdigit() or not text.isascii() or len(text) > 18:
        raise ProtocolError(f'invalid Content-Length {text[:80]!r}')
    length = int(text)
    if length > max_body:
        raise BodyTooLarge(f'the body is longer than {max_body} bytes ({length})')
    return length
