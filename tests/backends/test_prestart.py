"""The local backend's supervisor is started before its command is known (``local.Prestarted``):
it gets the command, its directory and environment as one message, and a launch given up before
that leaves no process behind.  Real processes only."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from mlproj import supervisor
from mlproj.backends import local
from mlproj.errors import EnvError
from tests.helpers import run_mlproj, write_project
from tests.helpers.git import commit_all, git


def supervisors_of_this_checkout() -> set[int]:
    """Pids of live supervisor processes started from this checkout's mlproj/supervisor.py."""
    found = set()
    for name in os.listdir('/proc'):
        if not name.isdigit():
            continue
        try:
            with open(f'/proc/{name}/cmdline', 'rb') as f:
                argv = f.read().split(b'\0')
            with open(f'/proc/{name}/stat') as f:
                state = f.read().rsplit(')', 1)[1].split()[0]
        except OSError:
            continue
        if os.fsencode(local.SUPERVISOR) in argv and state != 'Z':
            found.add(int(name))
    return found


def test_message_round_trip_is_byte_exact():
    env = {'PATH': '/usr/bin', 'ODD': 'a=b\tc', 'NONUTF8': os.fsdecode(b'\xff\xfe')}
    fields = [b'/some/dir', b'1', b'rm', b'3', b'python', b'-c', os.fsencode('print("\u00e9")'),
              *(os.fsencode(k) + b'=' + os.fsencode(v) for k, v in env.items()), b'.']
    cwd, cleanup, command, got_env = supervisor.parse_message(b'\0'.join(fields) + b'\0')
    assert cwd == b'/some/dir' and cleanup == [b'rm']
    assert command == [b'python', b'-c', 'print("\u00e9")'.encode()]
    assert got_env == {b'PATH': b'/usr/bin', b'ODD': b'a=b\tc', b'NONUTF8': b'\xff\xfe'}


@pytest.mark.parametrize('message', [
    b'/d\x000\x001\x00true\x00',               # no final "." (cut short)
    b'/d\x000\x002\x00true\x00.\x00',          # fewer command words than announced
    b'/d\x000\x000\x00.\x00',                  # no command
    b'/d\x000\x001\x00true\x00NOEQUALS\x00.\x00',  # an environment item without "="
])
def test_incomplete_messages_are_refused(message):
    with pytest.raises(ValueError):
        supervisor.parse_message(message)


def test_a_cut_message_starts_nothing(tmp_path):
    marker = tmp_path / 'ran'
    pre = local.Prestarted()
    assert pre.proc is not None
    os.write(pre.cmd_w, b'/\x000\x003\x00touch\x00' + os.fsencode(str(marker)) + b'\x00')  # no count match, no "."
    os.close(pre.cmd_w)
    pre.cmd_w = -1
    assert pre.proc.wait(10) == 2
    pre.abort()
    assert not marker.exists()


def test_abort_reaps_the_supervisor_and_is_idempotent():
    pre = local.Prestarted()
    proc = pre.proc
    assert proc is not None
    deadline = time.monotonic() + 10
    while proc.pid not in supervisors_of_this_checkout():  # its exec may not be visible in /proc yet
        assert time.monotonic() < deadline, 'the prestarted supervisor never showed up'
        time.sleep(0.01)
    pre.abort()
    assert proc.returncode == 0
    assert proc.pid not in supervisors_of_this_checkout()
    pre.abort()


def test_command_gets_the_message_cwd_and_environment_only(tmp_path, monkeypatch):
    """The command runs in the message's directory with exactly the message's environment; the
    supervisor itself started with an empty one, so nothing else is in /proc/<its pid>/environ."""
    monkeypatch.setenv('MLPROJ_TEST_PRESTART_SECRET', 'do-not-hand-on')
    bindir = tmp_path / 'bin'
    bindir.mkdir()
    tool = bindir / 'only-on-message-path'
    tool.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    tool.chmod(0o755)
    out = tmp_path / 'out.txt'
    code = ('import os, sys; p = open(f"/proc/{os.getppid()}/environ", "rb").read(); '
            f'open({str(out)!r}, "w").write(repr((os.getcwd(), dict(os.environ), p)))')
    pre = local.Prestarted()
    time.sleep(0.2)  # the supervisor is up and waiting before the command is known
    sup = pre.start(str(tmp_path), ['only-on-message-path', '-c', code],
                    {'PATH': f'{bindir}:/usr/bin:/bin', 'GIVEN': 'yes'}, [])
    assert sup.proc.wait(30) == 0
    sup.close()
    cwd, env, parent_environ = eval(out.read_text())  # noqa: S307 - our own repr
    assert cwd == str(tmp_path)
    assert env.get('GIVEN') == 'yes' and 'MLPROJ_TEST_PRESTART_SECRET' not in env
    assert b'do-not-hand-on' not in parent_environ and b'MLPROJ_TEST' not in parent_environ


def test_command_that_cannot_start_is_one_env_error(tmp_path):
    pre = local.Prestarted()
    with pytest.raises(EnvError, match="cannot start 'no-such-program-here'"):
        pre.start(str(tmp_path), ['no-such-program-here'], {'PATH': str(tmp_path)}, [])
    assert pre.proc is None  # reaped


def test_a_nul_byte_is_one_env_error_and_starts_nothing(tmp_path):
    marker = tmp_path / 'ran'
    pre = local.Prestarted()
    proc = pre.proc
    with pytest.raises(EnvError, match='contains a NUL byte'):
        pre.start(str(tmp_path), ['sh', '-c', f'touch {marker}', 'a\0b'], {'PATH': '/usr/bin:/bin'}, [])
    assert pre.proc is None and proc is not None and proc.returncode == 0  # reaped, given up
    assert not marker.exists()


def test_missing_directory_is_one_env_error(tmp_path):
    launch = SimpleNamespace(project_dir=tmp_path / 'gone')
    with pytest.raises(EnvError, match='cannot start .true.: No such file or directory'):
        local.spawn(launch, ['true'], {'PATH': '/usr/bin:/bin'})  # type: ignore[arg-type]


@pytest.mark.slow  # mlproj as a subprocess
def test_launch_given_up_after_prestart_leaves_no_supervisor(tmp_path):
    """A run whose creation fails (the tracking server refuses the connection) started a
    supervisor already: it must be gone when mlproj exits."""
    project = write_project(tmp_path / 'p', 'name: p\nentry_points:\n  main:\n    command: "true"\n')
    before = supervisors_of_this_checkout()
    import socket

    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    r = run_mlproj('run', str(project), '--env-manager', 'local', env={'MLFLOW_TRACKING_URI': f'http://127.0.0.1:{port}'})
    assert r.returncode != 0 and 'cannot reach the tracking server' in r.stderr
    assert r.stderr.count('\n') == 1
    assert supervisors_of_this_checkout() - before == set()


@pytest.mark.slow  # mlproj as a subprocess
def test_reused_run_leaves_no_supervisor(tmp_path):
    project = write_project(tmp_path / 'p', 'name: p\nentry_points:\n  main:\n    command: "true"\n')
    git('init', '-q', cwd=project)
    commit_all(project)
    env = {'MLFLOW_TRACKING_URI': f'sqlite:///{tmp_path}/mlflow.db'}
    first = run_mlproj('run', str(project), '--env-manager', 'local', cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr
    before = supervisors_of_this_checkout()
    second = run_mlproj('run', str(project), '--env-manager', 'local', '--reuse', cwd=tmp_path, env=env)
    assert second.returncode == 0 and 'reused run' in second.stderr
    assert supervisors_of_this_checkout() - before == set()


def test_prestart_failure_falls_back_to_spawn_time(monkeypatch):
    """When the supervisor cannot be started ahead (here: the interpreter is missing), ``prestart``
    answers None and ``spawn`` reports the reason as one EnvError naming the supervisor, not the
    command (which was never tried)."""
    monkeypatch.setattr(sys, 'executable', '/nonexistent/python')
    assert local.prestart() is None
    with pytest.raises(EnvError, match="cannot start the run's supervisor '/nonexistent/python': No such file"):
        local.spawn(SimpleNamespace(project_dir=Path('/')), ['true'], {})  # type: ignore[arg-type]


def test_supervisor_exits_without_finalization_output():
    """The supervisor ends with os._exit: a normal run's status is still the command's."""
    pre = local.Prestarted()
    sup = pre.start('/', ['sh', '-c', 'exit 7'], {'PATH': '/usr/bin:/bin'}, [])
    assert sup.proc.wait(30) == 7
    sup.close()
