"""FetchProgress: rewritten in place on a terminal, sparse plain lines elsewhere, silent when quick."""
from __future__ import annotations

import io

from mlproj.source import credentials
from mlproj.source.credentials import FetchProgress


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _progress(monkeypatch, tty: bool):
    clock = Clock()
    monkeypatch.setattr('time.monotonic', clock)
    out = io.StringIO()
    return FetchProgress('https://h/r.git', out, tty=tty), out, clock


def test_a_quick_fetch_prints_nothing(monkeypatch):
    p, out, clock = _progress(monkeypatch, tty=True)
    for i in range(50):
        clock.t += 0.01
        p.update(i, 50, i * 1024)
    p.done()
    assert out.getvalue() == ''


def test_on_a_terminal_one_line_is_rewritten(monkeypatch):
    p, out, clock = _progress(monkeypatch, tty=True)
    for i in range(40):
        clock.t += 0.1
        p.update(i, 40, i << 20)
    p.done()
    text = out.getvalue()
    assert text.count('\r') >= 10 and text.endswith(' done\x1b[K\n') and text.count('\n') == 1
    assert '39/40 objects, 39.0 MiB' in text


def test_elsewhere_plain_lines_at_most_every_10_s(monkeypatch):
    p, out, clock = _progress(monkeypatch, tty=False)
    for i in range(300):
        clock.t += 0.1
        p.update(i, 300, i << 10)
    p.done()
    lines = out.getvalue().splitlines()
    assert 2 <= len(lines) <= 5 and lines[-1].endswith(' done')
    assert '\r' not in out.getvalue() and '\x1b' not in out.getvalue()
    assert all(line.startswith('mlproj: fetching https://h/r.git: ') for line in lines)


def test_the_callbacks_report_transfer_progress(monkeypatch):
    import pygit2

    seen = []

    class Rec:
        def update(self, *a):
            seen.append(a)

    cb = credentials.make_callbacks(type('P', (), {'host': 'h', 'scheme': 'https', 'username': None,
                                                    'display': 'x'})(), None, None, Rec())
    assert isinstance(cb, pygit2.RemoteCallbacks)
    cb.transfer_progress(type('S', (), {'received_objects': 3, 'total_objects': 9, 'received_bytes': 77})())
    assert seen == [(3, 9, 77)]
