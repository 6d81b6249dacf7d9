"""``mlproj ci cancel``: stop what a cancelled job left behind.

The run step handles cancellation itself (it is the process the runner signals).  This is the
second line: a step with ``if: cancelled()`` reads the state file, and if the MLflow run is still
RUNNING it cancels the Databricks job run recorded in the run's tags (through databricks-sdk)
and ends the MLflow run KILLED.
"""
from __future__ import annotations

from mlproj.ci import state
from mlproj.errors import BackendError

# Tags naming the Databricks job run (mlproj's databricks backend writes MLflow's shellJobRunID).
DATABRICKS_RUN_ID_TAGS = ('mlflow.databricks.shellJobRunID', 'mlflow.databricks.runID')


def cancel_from_state(path: str | None) -> str:
    """Cancel the run recorded in ``path``; returns one line saying what was done."""
    from mlproj.tracking import get_tracker

    st = state.load(path)
    run_id, tracking_uri = st.get('run_id'), st.get('tracking_uri')
    if not run_id or not tracking_uri:
        return 'no run was started; nothing to cancel'
    tracker = get_tracker(tracking_uri)
    record = tracker.get_run(run_id)
    if record.status not in ('RUNNING', 'SCHEDULED'):
        state.update(path, status=record.status)
        return f'run {run_id} already ended {record.status}'
    done = []
    remote = next((record.tags[t] for t in DATABRICKS_RUN_ID_TAGS if record.tags.get(t)), None)
    if remote:
        cancel_databricks_run(remote)
        done.append(f'cancelled Databricks job run {remote}')
    tracker.set_status(run_id, 'KILLED')
    state.update(path, status='KILLED')
    done.append(f'marked MLflow run {run_id} KILLED')
    return '; '.join(done)


def cancel_databricks_run(run_id: str) -> None:
    """Cancel a Databricks job run with the SDK's unified auth (env vars, profile, OIDC)."""
    try:
        from databricks.sdk import WorkspaceClient
    except ImportError:
        raise BackendError('databricks-sdk is not installed (pip install "mlproj[databricks]")') from None
    try:
        WorkspaceClient().jobs.cancel_run(int(run_id))
    except Exception as e:  # the SDK's errors carry no credentials; keep one line
        raise BackendError(f'cancelling Databricks run {run_id} failed: {" ".join(str(e).split())[:300]}') from None
