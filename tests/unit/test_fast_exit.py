"""mlproj.cli._fast_exit: the process ends without finalization only when nothing runs at exit."""
from __future__ import annotations

import subprocess
import sys
import textwrap


def _run(body: str) -> subprocess.CompletedProcess:
    code = textwrap.dedent('''
        import atexit, sys, threading, time
        from mlproj import cli
        ''') + textwrap.dedent(body)
    return subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=60)


def test_fast_exit_keeps_the_exit_code_and_flushes_buffered_output():
    r = _run('''
        sys.stdout.write('x' * 100000)   # buffered, not yet written
        cli._fast_exit(7)
        print('not reached')
        ''')
    assert r.returncode == 7 and r.stdout == 'x' * 100000


def test_an_atexit_callback_gets_the_normal_exit():
    r = _run('''
        atexit.register(lambda: print('atexit ran'))
        cli._fast_exit(3)
        sys.exit(3)
        ''')
    assert r.returncode == 3 and r.stdout == 'atexit ran\n'


def test_a_running_non_daemon_thread_gets_the_normal_exit():
    r = _run('''
        t = threading.Thread(target=lambda: (time.sleep(0.3), print('thread finished')))
        t.start()
        cli._fast_exit(0)
        print('main continues')
        ''')
    assert r.returncode == 0 and r.stdout == 'main continues\nthread finished\n'
