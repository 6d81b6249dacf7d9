"""``mlproj ci cancel``: stop what a cancelled job left behind.

The run step handles cancellation itself (it is the process the runner signals).  This is the
second line: a step with ``if: cancelled()`` reads the state file, and if the MLflow run is still
RUNNING it asks the run's backend (the ``mlflow.project.backend`` tag, else the state file's
``backend``) to stop what the run recorded in its tags -- ``Backend.cancel_recorded``: the
Databricks job run (through databricks-sdk; its tags win whatever the backend tag says), the Slurm
job (scancel), the Kubernetes Job (deleted), the Ray job (stopped), the local launcher while it
provably still runs on this host (SIGTERM: it cancels its own run) -- and ends the MLflow run
KILLED.  A backend that refuses is one line with exit code 69 and the run is left as it is.
"""
from __future__ import annotations

from mlproj.backends.databricks import RECORDED_RUN_ID_TAGS, cancel_databricks_run  # noqa: F401
from mlproj.ci import state
from mlproj.errors import BackendError
from mlproj.tags import KILLED, PROJECT_BACKEND, RUNNING, SCHEDULED

DATABRICKS_RUN_ID_TAGS = RECORDED_RUN_ID_TAGS


def cancel_from_state(path: str | None) -> str:
    """Cancel the run recorded in ``path``; returns one line saying what was done."""
    from mlproj.backends import get_backend
    from mlproj.tracking import get_tracker

    st = state.load(path)
    run_id, tracking_uri = st.get('run_id'), st.get('tracking_uri')
    if not run_id or not tracking_uri:
        return 'no run was started; nothing to cancel'
    tracker = get_tracker(tracking_uri)
    record = tracker.get_run(run_id)
    if record.status not in (RUNNING, SCHEDULED):
        state.update(path, status=record.status)
        return f'run {run_id} already ended {record.status}'
    done = []
    backend = record.tags.get(PROJECT_BACKEND) or st.get('backend') or 'local'
    if any(record.tags.get(t) for t in DATABRICKS_RUN_ID_TAGS):
        backend = 'databricks'
    try:
        hooks = get_backend(backend)
    except BackendError as e:  # e.g. a plugin not installed here: the MLflow run is still ended
        done.append(f'cannot stop its job ({e})')
    else:
        stopped = hooks.cancel_recorded(record.tags)
        if stopped:
            done.append(stopped)
            record = tracker.get_run(run_id)
    if record.status in (RUNNING, SCHEDULED):
        tracker.set_status(run_id, KILLED)
        state.update(path, status=KILLED)
        done.append(f'marked MLflow run {run_id} KILLED')
    else:  # the launcher ended it itself
        state.update(path, status=record.status)
        done.append(f'run {run_id} ended {record.status}')
    return '; '.join(done)
