"""One color policy for every command: ``--color always|never`` wins; with ``auto`` (the default)
``NO_COLOR`` (any non-empty value) turns color off, else ``FORCE_COLOR`` (non-empty) turns it on,
else ``color`` of the user config file (``mlproj.settings``), else color is on when the stream is
a terminal.  ``mlproj lint``'s text reporter and the ``=== ... ===`` status lines of ``run`` and
``sweep`` use it.  Stdlib only; the config file is read only when the environment does not decide.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import IO

_choice: str | None = None  # the group's --color, set by mlproj.cli


def set_choice(choice: str | None) -> None:
    global _choice
    _choice = choice


def enabled(stream: IO[str] | None = None, *, choice: str | None = None,
            environ: Mapping[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    choice = choice or _choice or 'auto'
    if choice in ('always', 'never'):
        return choice == 'always'
    if env.get('NO_COLOR'):
        return False
    if env.get('FORCE_COLOR'):
        return True
    from mlproj.settings import resolve

    configured = resolve(None, environ=env, names=('color',))['color'].value
    if configured in ('always', 'never'):
        return configured == 'always'
    stream = sys.stdout if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def status(line: str, stream: IO[str] | None = None, tone: str | None = None) -> str:
    """A ``=== ... ===`` status line, colored when the policy says so for ``stream`` (stderr):
    green for success, red for failure or cancellation, bold otherwise (``tone`` 'ok', 'bad' or
    'plain' says which without looking at the words; give it when the line quotes a command)."""
    stream = sys.stderr if stream is None else stream
    if not enabled(stream):
        return line
    low = line.lower()
    if tone == 'plain':
        code = '1'
    elif tone == 'ok' or (tone is None and ('succeeded' in low or low.rstrip(' =').endswith('finished'))):
        code = '1;32'
    elif tone == 'bad' or (tone is None and any(w in low for w in ('failed', 'killed', 'interrupted', 'cancel'))):
        code = '1;31'
    else:
        code = '1'
    lead = len(line) - len(line.lstrip('\n'))
    return f'{line[:lead]}\x1b[{code}m{line[lead:]}\x1b[0m'
