"""Smart HTTP(S) Git server for tests: ``git http-backend`` as CGI behind ``http.server``.

    python git_http_server.py --root DIR --port P [--cert C --key K] [--auth USER:PASS]
                              [--log FILE] [--throttle-file FILE]

* ``--auth``: paths under ``/private/`` need HTTP basic auth with exactly USER:PASS.
* ``--log``: one line per request (``METHOD PATH STATUS``) plus ``PACK-START PATH`` when a pack
  response over 64 KiB starts streaming, so tests can count fetches and catch a transfer mid-way.
* ``--throttle-file``: while that file exists, response bodies are sent in 16 KiB pieces with a
  pause in between (a slow link, for killing a fetch mid-transfer).
"""
from __future__ import annotations

import argparse
import base64
import os
import ssl
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ARGS: argparse.Namespace
LOG_LOCK = threading.Lock()


def log(line: str) -> None:
    if ARGS.log:
        with LOG_LOCK, open(ARGS.log, 'a', encoding='utf-8') as f:
            f.write(line + '\n')


class Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet
        pass

    def _body(self) -> bytes:
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
        return self.rfile.read(int(self.headers.get('Content-Length') or 0))

    def _authorized(self, path: str) -> tuple[bool, str]:
        if not ARGS.auth or not path.startswith('/private/'):
            return True, ''
        header = self.headers.get('Authorization', '')
        if header.startswith('Basic '):
            try:
                given = base64.b64decode(header[6:]).decode()
            except Exception:
                given = ''
            if given == ARGS.auth:
                return True, given.split(':', 1)[0]
        return False, ''

    def _handle(self) -> None:
        path, _, query = self.path.partition('?')
        body = self._body() if self.command == 'POST' else b''
        ok, user = self._authorized(path)
        if not ok:
            log(f'{self.command} {path} 401')
            payload = b'authentication required\n'
            self.send_response(401)
            self.send_header('WWW-Authenticate', 'Basic realm="git"')
            self.send_header('Content-Length', str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        env = {
            'PATH': os.environ.get('PATH', '/usr/bin:/bin'),
            'GIT_PROJECT_ROOT': ARGS.root, 'GIT_HTTP_EXPORT_ALL': '1',
            'REQUEST_METHOD': self.command, 'PATH_INFO': path, 'QUERY_STRING': query,
            'CONTENT_TYPE': self.headers.get('Content-Type', ''), 'CONTENT_LENGTH': str(len(body)),
            'REMOTE_ADDR': self.client_address[0], 'REMOTE_USER': user,
            'GIT_CONFIG_NOSYSTEM': '1', 'HOME': ARGS.root,
        }
        if self.headers.get('Git-Protocol'):
            env['GIT_PROTOCOL'] = self.headers['Git-Protocol']
        if self.headers.get('Content-Encoding'):
            env['HTTP_CONTENT_ENCODING'] = self.headers['Content-Encoding']
        proc = subprocess.run(['git', 'http-backend'], input=body, capture_output=True, env=env)
        head, _, out = proc.stdout.partition(b'\r\n\r\n')
        if not _:
            head, _, out = proc.stdout.partition(b'\n\n')
        status = 200
        headers = []
        for line in head.decode('latin-1').splitlines():
            key, _, value = line.partition(':')
            if key.lower() == 'status':
                status = int(value.strip().split()[0])
            elif key:
                headers.append((key, value.strip()))
        log(f'{self.command} {path} {status}')
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header('Content-Length', str(len(out)))
        self.end_headers()
        throttled = ARGS.throttle_file and os.path.exists(ARGS.throttle_file)
        if path.endswith('git-upload-pack') and self.command == 'POST' and len(out) > 65536:
            log(f'PACK-START {path} {len(out)}')  # a big pack response (not a negotiation round)
        if not throttled:
            self.wfile.write(out)
            return
        for i in range(0, len(out), 16384):
            self.wfile.write(out[i:i + 16384])
            self.wfile.flush()
            time.sleep(0.05)

    do_GET = _handle
    do_POST = _handle


def main() -> None:
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument('--root', required=True)
    p.add_argument('--port', type=int, required=True)
    p.add_argument('--cert')
    p.add_argument('--key')
    p.add_argument('--auth')
    p.add_argument('--log')
    p.add_argument('--throttle-file')
    ARGS = p.parse_args()
    server = ThreadingHTTPServer(('127.0.0.1', ARGS.port), Handler)
    server.daemon_threads = True
    if ARGS.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(ARGS.cert, ARGS.key)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    print('ready', flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == '__main__':
    main()
