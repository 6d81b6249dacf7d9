"""How an environment build step's output reaches the user while the step runs.

``venv.run_step(..., show=True)`` runs the installer through :func:`run`, which always keeps the
whole output (for the one-line error summary, ``venv.summarize``) and, by :func:`policy`:

* ``--quiet``: shows nothing (the output is printed only when the step fails, as always);
* stderr is a terminal: the child gets a pseudo-terminal of the same size as its stdout and stderr,
  so uv and pip draw their own progress bars, and everything it writes is copied to the terminal as
  it arrives (with ``NO_COLOR=1`` for the child when mlproj's color policy, ``mlproj.color``, says
  no color);
* stderr is not a terminal (CI logs, files): only the installer's summary lines (``Resolved 12
  packages in 1.2s``, ``Installed 12 packages in 80ms``, ``Downloading numpy (15.9MiB)``, pip's
  ``Successfully installed ...``), without control sequences, printed as they come;
* ``--verbose`` (``mlproj.verbose``): everything the installer writes, on a terminal through the
  pseudo-terminal, elsewhere as plain lines (control sequences removed).
"""
from __future__ import annotations

import codecs
import contextlib
import errno
import os
import re
import select
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

ANSI = re.compile(r'\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\x1b[()][A-Za-z0-9]')
# what a CI log gets from uv and pip: one line per phase, not one per package
COMPACT = re.compile(r'\s*(Resolved|Prepared|Installed|Uninstalled|Audited|Downloading|Successfully installed)\b')


@dataclass(frozen=True)
class Output:
    show: str            # 'none' (captured only), 'compact' (summary lines), 'all'
    terminal: bool       # give the child a pseudo-terminal
    verbose: bool = False


def _isatty(stream: IO[str] | None) -> bool:
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError):
        return False


def policy(stream: IO[str] | None) -> Output:
    from mlproj import quiet, verbose

    if quiet.active():
        return Output('none', False)
    tty = _isatty(stream)
    if verbose.active():
        return Output('all', tty, verbose=True)
    return Output('all', True) if tty else Output('compact', False)


def plain(text: str) -> str:
    """``text`` without terminal control sequences and carriage returns."""
    return ANSI.sub('', text).replace('\r', '')


def _write(stream: IO[str], text: str) -> None:
    try:
        stream.write(text)
        stream.flush()
    except (OSError, ValueError):
        pass


@contextlib.contextmanager
def _killed_if_interrupted(proc: subprocess.Popen) -> Iterator[None]:
    """The child is killed and reaped when reading its output is interrupted or fails."""
    try:
        yield
    except BaseException:
        proc.kill()
        proc.wait()
        raise


def run(argv: list[str], *, cwd: str, env: dict[str, str], stream: IO[str], output: Output) -> tuple[int, str]:
    """Run ``argv`` showing its output on ``stream`` as ``output`` says; (exit code, whole output).

    ``OSError`` when ``argv[0]`` cannot be run.  The child is killed if this is interrupted."""
    if output.terminal:
        return _run_pty(argv, cwd=cwd, env=env, stream=stream)
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, errors='replace')
    chunks: list[str] = []
    try:
        with _killed_if_interrupted(proc):
            assert proc.stdout is not None
            for line in proc.stdout:
                chunks.append(line)
                if output.show == 'all' or (output.show == 'compact' and COMPACT.match(plain(line))):
                    clean = plain(line).rstrip('\n')
                    if clean.strip():
                        _write(stream, clean.strip() + '\n' if output.show == 'compact' else clean + '\n')
            code = proc.wait()
    finally:
        if proc.stdout is not None:
            proc.stdout.close()
    return code, ''.join(chunks)


def _copy_size(stream: IO[str], fd: int) -> None:
    import fcntl
    import termios

    try:
        size = fcntl.ioctl(stream.fileno(), termios.TIOCGWINSZ, b'\0' * 8)
        fcntl.ioctl(fd, termios.TIOCSWINSZ, size)
    except (OSError, ValueError, AttributeError):
        pass


def _run_pty(argv: list[str], *, cwd: str, env: dict[str, str], stream: IO[str]) -> tuple[int, str]:
    from mlproj import color

    if not color.enabled(stream):
        env = dict(env, NO_COLOR='1')
    master, slave = os.openpty()
    try:
        _copy_size(stream, slave)
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave)
    except BaseException:
        os.close(master)
        raise
    finally:
        os.close(slave)
    decoder = codecs.getincrementaldecoder('utf-8')('replace')
    chunks: list[str] = []
    try:
        with _killed_if_interrupted(proc):
            while True:
                ready, _, _ = select.select([master], [], [], 0.1)
                if not ready:
                    if proc.poll() is not None:   # exited; a grandchild may still hold the terminal open
                        break
                    continue
                try:
                    data = os.read(master, 65536)
                except OSError as e:
                    if e.errno != errno.EIO:   # EIO: every writer is gone
                        raise
                    data = b''
                if not data:
                    break
                text = decoder.decode(data)
                chunks.append(text)
                _write(stream, text)
            code = proc.wait()
    finally:
        os.close(master)
    chunks.append(decoder.decode(b'', final=True))
    return code, ''.join(chunks)
