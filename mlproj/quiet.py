"""``--quiet``: only the project's own output and mlproj's errors reach the terminal.

The run's processes write to the file descriptors they inherit, never through this process's
``sys.stderr`` object, so quiet mode replaces that object with a filter: mlproj's status lines
(``=== ... ===``), warnings and notes are dropped, lines that report an error (``mlproj: error:``,
``mlproj: internal error:``) pass, and so does everything under ``--debug`` (tracebacks).  The
exit code says how the run ended.  stdout (the sweep table, ``--json`` documents, ``show``) is
untouched.
"""
from __future__ import annotations

import sys
from typing import IO

PASS = ('mlproj: error:', 'mlproj: internal error:', 'Traceback', 'Error:', 'Usage:')


class QuietStream:
    """A text stream that forwards only whole lines starting with one of ``PASS``."""

    def __init__(self, inner: IO[str]) -> None:
        self._inner = inner
        self._pending = ''
        self._passing = False  # inside a passed multi-line block (a traceback, click's usage)

    def write(self, text: str) -> int:
        self._pending += text
        while '\n' in self._pending:
            line, self._pending = self._pending.split('\n', 1)
            self._line(line + '\n')
        return len(text)

    def _line(self, line: str) -> None:
        bare = line.lstrip('\n')
        if bare.startswith(PASS):
            self._passing = bare.startswith(('Traceback', 'Usage:'))
            self._inner.write(line)
        elif self._passing and bare.startswith((' ', '\t')):
            self._inner.write(line)
        elif self._passing and bare.strip():  # the block's last line (the exception, click's error)
            self._inner.write(line)
            self._passing = False
        else:
            self._passing = False

    def flush(self) -> None:
        if self._pending.startswith(PASS):
            self._inner.write(self._pending)
            self._pending = ''
        self._inner.flush()

    def isatty(self) -> bool:
        return self._inner.isatty()

    def fileno(self) -> int:
        return self._inner.fileno()

    def __getattr__(self, name: str):  # encoding, errors, buffer, ...
        return getattr(self._inner, name)


def project_stderr() -> IO[str]:
    """Where a remote backend writes what the project's job wrote to its stderr (a Databricks task's
    error and traceback): the terminal's stderr, past the quiet filter, because under ``--quiet``
    the project's own output is exactly what is shown."""
    err = sys.stderr
    return err._inner if isinstance(err, QuietStream) else err


def active() -> bool:
    """Whether quiet mode is on (``sys.stderr`` is the filter)."""
    return isinstance(sys.stderr, QuietStream)


def enable() -> None:
    """Turn quiet mode on; a ``BadArgumentError`` when verbose mode (``mlproj.verbose``) is on."""
    from mlproj import verbose

    if verbose.active():
        from mlproj.errors import BadArgumentError

        raise BadArgumentError(verbose.CONFLICT)
    if not isinstance(sys.stderr, QuietStream) and sys.stderr is not None:
        sys.stderr = QuietStream(sys.stderr)  # type: ignore[assignment]
