"""From a recorded MLflow run (plus what the action knows) to a ``Report``; run page URLs."""
from __future__ import annotations

import os
from typing import Any

from mlproj.ci.gha import ActionsContext
from mlproj.ci.markdown import LintSummary, Report
from mlproj.tags import (
    DATABRICKS_RUN_URL,
    ENV_MANAGER,
    GIT_COMMIT,
    GIT_REPO_URL,
    PROJECT_BACKEND,
    PROJECT_ENTRY_POINT,
    RUNNING,
)


def default_key(uri: str | None, entry_point: str) -> str:
    """One sticky comment / status context per project and entry point."""
    return f'{uri or "."}:{entry_point}'


def mlflow_run_url(tracking_uri: str, experiment_id: str, run_id: str, environ: dict[str, str] | None = None) -> str:
    """The MLflow UI page of a run, when the store has a UI ('' for sqlite/file stores)."""
    from mlproj.tracking import is_server_uri, redact_uri

    env = os.environ if environ is None else environ
    if not (run_id and experiment_id):
        return ''
    if is_server_uri(tracking_uri):
        base = redact_uri(tracking_uri).split('?', 1)[0].rstrip('/')
        return f'{base}/#/experiments/{experiment_id}/runs/{run_id}'
    if tracking_uri == 'databricks' or tracking_uri.startswith('databricks://'):
        host = (env.get('DATABRICKS_HOST') or '').rstrip('/')
        if host and '://' not in host:
            host = 'https://' + host
        return f'{host}/ml/experiments/{experiment_id}/runs/{run_id}' if host else ''
    return ''


def _same_repo(repo_url: str, ctx: ActionsContext) -> bool:
    def norm(url: str) -> str:
        url = url.strip().rstrip('/')
        url = url[:-4] if url.endswith('.git') else url
        return url.split('://', 1)[-1].split('@')[-1].lower()

    return bool(ctx.repo_url) and norm(repo_url) == norm(ctx.repo_url)


def build_report(state: dict[str, Any], record: Any | None, ctx: ActionsContext,
                 lint: LintSummary | None = None) -> Report:
    """``record`` is a ``mlproj.tracking.RunRecord`` (or None when no run was created)."""
    entry_point = state.get('entry_point') or 'main'
    uri = state.get('uri') or '.'
    report = Report(
        key=state.get('key') or default_key(uri, entry_point), entry_point=entry_point, project=uri,
        status=state.get('status', ''), run_id=state.get('run_id', ''),
        experiment_id=str(state.get('experiment_id') or ''), run_url=state.get('run_url', ''),
        workflow_url=ctx.run_url, backend=state.get('backend', ''), duration_s=state.get('duration_s'),
        error=state.get('error', ''), lint=lint,
    )
    if record is not None:
        tags = record.tags
        report.status = record.status if report.status in ('', RUNNING) else report.status
        report.entry_point = tags.get(PROJECT_ENTRY_POINT, report.entry_point)
        report.backend = tags.get(PROJECT_BACKEND, report.backend)
        report.env_manager = tags.get(ENV_MANAGER, '')
        report.commit = tags.get(GIT_COMMIT, '')
        report.databricks_url = tags.get(DATABRICKS_RUN_URL, '')
        report.params = dict(sorted(record.params.items()))
        report.metrics = dict(record.metrics)
        report.experiment_id = str(record.experiment_id)
        repo_url = tags.get(GIT_REPO_URL, '')
        if report.commit and ctx.repository and (not repo_url or _same_repo(repo_url, ctx)):
            report.commit_url = f'{ctx.repo_url}/commit/{report.commit}'
        if not report.run_url and state.get('tracking_uri'):
            report.run_url = mlflow_run_url(state['tracking_uri'], report.experiment_id, report.run_id)
    return report
