"""Nested MLflow runs started by project code, seen from the run that launched them.

Inside an mlproj checkout (a Git working tree, ``worktree.py``), MLflow's own nested
``mlflow.run(".", entry_point=...)`` already records the commit (``mlflow.source.git.commit``
from ``HEAD``), the repository (``mlflow.source.git.repoURL`` from ``remote.origin.url``, the
credential-free source URL) and ``mlflow.parentRunId`` (the fluent run the code is in).  One
thing MLflow computes from the directory alone: ``mlflow.source.name`` is
``file://<working tree>#<subdir>``, i.e. the temporary checkout, which is deleted after the run.
No variable or file changes that (MLflow builds it from GitPython's ``working_tree_dir``), so
when the launching run is over and before its checkout is removed, ``relabel_nested_runs``
rewrites it, for every descendant run (children of children too), to the parent's source URI
with the same ``#subdir``: the same URI ``mlproj run`` / ``mlflow run`` would be given to rerun it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from mlproj.tags import SOURCE_NAME

MAX_RUNS = 1000


def relabel_nested_runs(tracker: Any, experiment_id: str, run_id: str, checkout: Path, origin_uri: str) -> int:
    """Rewrite ``mlflow.source.name`` of runs below ``run_id`` that point into ``checkout``.

    Returns the number of runs relabelled.  Trackers without ``child_runs`` are left alone.
    """
    search = getattr(tracker, 'child_runs', None)
    if search is None or not origin_uri:
        return 0
    prefixes = sorted({f'file://{checkout}', f'file://{Path(checkout).resolve()}'}, key=len, reverse=True)
    done, queue, seen = 0, [run_id], {run_id}
    while queue and len(seen) <= MAX_RUNS:
        parent = queue.pop(0)
        for child_id, tags in search(experiment_id, parent):
            if child_id in seen:
                continue
            seen.add(child_id)
            queue.append(child_id)
            name = tags.get(SOURCE_NAME, '')
            for prefix in prefixes:
                if name == prefix or name.startswith(prefix + '#') or name.startswith(prefix + '/'):
                    rest = name[len(prefix):].lstrip('/#')
                    tracker.set_tags(child_id, {SOURCE_NAME: origin_uri + (f'#{rest}' if rest else '')})
                    done += 1
                    break
    return done
