"""``--verbose``: the detail mlproj normally keeps to itself, whatever stderr is.

Environment build steps show the installer's full output as it is written (``uv venv`` without
``--quiet``, pip without ``--quiet``, everything uv or pip prints), and Git sources say what is
fetched from where and which commit a revision resolved to.  It is the opposite of ``--quiet``
(``mlproj.quiet``); asking for both is a usage error.  There is no ``-v``: ``mlproj run -v`` is
MLflow's ``--version`` (the Git revision), as in ``mlflow run``.
"""
from __future__ import annotations

import sys
from typing import Any

_on = False

CONFLICT = '--quiet and --verbose cannot be combined (MLPROJ_QUIET and MLPROJ_VERBOSE count too)'


def enable() -> None:
    """Turn verbose mode on; a ``BadArgumentError`` when quiet mode is on already."""
    global _on
    from mlproj import quiet

    if quiet.active():
        from mlproj.errors import BadArgumentError

        raise BadArgumentError(CONFLICT)
    _on = True


def disable() -> None:
    global _on
    _on = False


def active() -> bool:
    return _on


def option(help: str = "Show the installer's full output and what Git fetches (also MLPROJ_VERBOSE=1).") -> Any:
    """The ``--verbose`` click option of a command (long form only)."""
    import click

    def callback(ctx: Any, param: Any, value: bool) -> None:
        if value:
            enable()

    return click.option('--verbose', 'verbose', is_flag=True, expose_value=False, callback=callback, help=help)


def note(text: str) -> None:
    """A ``mlproj: <text>`` detail line on stderr, in verbose mode only."""
    if _on:
        print(f'mlproj: {text}', file=sys.stderr, flush=True)
