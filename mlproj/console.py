"""The ``mlproj`` console script (``python -m mlproj`` too): the CLI, with Python's cyclic garbage
collector held off while it starts.

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

_held = False


def main() -> None:
    global _held
    if gc.isenabled():
        gc.disable()
        _held = True
    from mlproj.cli import entry

    entry()


def resume() -> None:
    """Turn the collector back on if ``main`` held it off (idempotent)."""
    global _held
    if _held:
        _held = False
        gc.freeze()
        gc.enable()
