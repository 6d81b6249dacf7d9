"""The ``mlproj`` console script (``python -m mlproj`` too): the CLI, in a process the project's
code cannot read, with Python's cyclic garbage collector held off while it starts.  An everyday
``mlproj run`` argument list is parsed without importing click (``mlproj.clicore``); every other
goes to the click CLI (``mlproj.cli``).

**Not dumpable.**  A project's processes run as the same user as mlproj, so they could read
``/proc/<mlproj's pid>/environ`` (and ``mem``, ``fd/``) and find every secret mlproj's
child-environment policy (``mlproj.childenv``) keeps from them: a CI token, a Databricks token.
``main`` first marks the process not dumpable (``prctl(PR_SET_DUMPABLE, 0)``, Linux): those files
then belong to root.  Its children are dumpable again once they ``exec``; the supervisor starts
with an empty environment of its own (``mlproj.supervisor``).  Limits: root (and a user who can
``sudo``, as on GitHub-hosted runners) reads them anyway; the processes that started mlproj (a
shell, a CI step) are not covered; debuggers need root to attach to mlproj; mlproj writes no core
dump.  Library use (``mlproj.run``) leaves the caller's process as it is.

Starting a run imports ~200 modules and builds the run's plan; on the way the collector ran ~40
young and 4 older collections, ~5 ms of a trivial run's ~0.1 s overhead (measured with
``gc.callbacks``), for almost no garbage: what is allocated then is modules, classes and the
plan, which live as long as the process.  So the collector is disabled before the CLI is
imported and resumed by ``resume`` (which first ``gc.freeze``\\ s what exists, so later collections
do not walk it): by the CLI group for every command but ``run``, and by ``run`` once its command
has started, before it waits.  Library use (``mlproj.run``, ``mlproj.cli`` imported) never
reaches ``main`` and keeps the collector as it is.
"""
from __future__ import annotations

import gc
import sys

_held = False


def main() -> None:
    global _held
    not_dumpable()
    if gc.isenabled():
        gc.disable()
        _held = True
    from mlproj import clicore

    code = clicore.main(sys.argv[1:])  # `mlproj run`'s everyday argument lists, without click
    if code is None:
        from mlproj.cli import main as click_main

        code = click_main()
    clicore.fast_exit(code)
    sys.exit(code)


def not_dumpable() -> bool:
    """Mark this process not dumpable (Linux); False where that is not possible."""
    from mlproj.supervisor import prctl  # stdlib C modules only, as the supervisor needs

    PR_SET_DUMPABLE = 4
    return prctl(PR_SET_DUMPABLE, 0)


def resume() -> None:
    """Turn the collector back on if ``main`` held it off (idempotent)."""
    global _held
    if _held:
        _held = False
        gc.freeze()
        gc.enable()
