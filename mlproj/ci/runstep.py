"""``mlproj ci run``: run a project inside a CI step and report the result to the runner.

The action's run step ``exec``s this command, so the process GitHub signals on cancellation is
this one (the runner sends SIGINT to the step's entry process, SIGTERM 7.5 s later, and kills the
process tree 2.5 s after that).  The first signal cancels the run through its backend (local:
the project's process group; databricks: the remote job run) and the MLflow run ends KILLED;
a second signal escalates to SIGKILL.

The project's processes get the environment of ``mlproj.childenv``'s policy, as under
``mlproj run``; in addition the CI runner's credentials (``GITHUB_TOKEN``, ``GH_TOKEN``,
``ACTIONS_*``, act's ``INPUT_*`` copies of the inputs) are removed from this process's own
environment before anything runs, so no backend plugin can hand them on either.
Outputs (``run-id``, ``status``, ``run-url``, ``experiment-id``, ``commit``) and the step
summary are written whatever the outcome, before the exit status says whether the run failed.
"""
from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlproj.backends.signals import Signals
from mlproj.ci import gha, state
from mlproj.ci.markdown import render
from mlproj.ci.runinfo import build_report, default_key, mlflow_run_url
from mlproj.errors import EXIT_INTERRUPTED, BadArgumentError, MlprojError
from mlproj.tags import KILLED, RUNNING

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@dataclass
class CiRun:
    uri: str = ''                       # '' = the workflow's repository at the PR head; '#sub' = its subdir
    entry_point: str = 'main'
    version: str | None = None
    parameters: Mapping[str, str] = field(default_factory=dict)
    backend: str = 'local'
    backend_config: str | None = None
    env_manager: str | None = None
    experiment_name: str | None = None
    tracking_uri: str | None = None
    run_name: str | None = None
    key: str | None = None
    state_file: str | None = None
    github_output: str | None = None
    step_summary: str | None = None


class Source:
    """The URI and version to run, and a sentence saying why."""

    def __init__(self, uri: str, version: str | None, note: str) -> None:
        self.uri, self.version, self.note = uri, version, note


def parse_parameters(text: str | None) -> dict[str, str]:
    """The action's multi-line ``parameters`` input: ``name=value`` per line, ``#`` comments."""
    out: dict[str, str] = {}
    for number, raw in enumerate((text or '').splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith('#'):
            continue
        name, sep, value = line.partition('=')
        name = name.strip()
        if not sep or not name:
            raise BadArgumentError(f'parameters line {number} is not name=value: {line[:80]!r}')
        if name in out:
            raise BadArgumentError(f'parameter {name!r} is given twice (parameters line {number})')
        out[name] = value.strip()
    return out


def _head_of(path: str) -> tuple[str | None, Any]:
    try:
        import pygit2

        repo_path = pygit2.discover_repository(path)
        if repo_path is None:
            return None, None
        repo = pygit2.Repository(repo_path)
        return (None if repo.head_is_unborn else str(repo.head.target)), repo
    except Exception:
        return None, None


def resolve_source(uri: str, version: str | None, ctx: gha.ActionsContext, cwd: str) -> Source:
    """Apply the default: the workflow's repository at the PR head commit (not GITHUB_SHA)."""
    if uri and not uri.startswith('#'):
        return Source(uri, version, f'running {uri}' + (f' at {version}' if version else ''))
    subdir = uri  # '' or '#sub/dir'
    sha = version or ctx.head_sha
    workspace = ctx.workspace or cwd
    if not sha:
        return Source(workspace + subdir, None, 'no commit in the event; running the workspace as checked out')
    head, repo = _head_of(workspace)
    if head is not None and head.startswith(sha):
        return Source(workspace + subdir, None, f'running the workspace checkout, which is at {head[:12]}')
    if repo is not None:
        try:
            repo.revparse_single(sha)
            return Source(workspace + subdir, sha, f'running commit {sha[:12]} from the workspace repository '
                                                   f'(checked out: {(head or "none")[:12]})')
        except Exception:
            pass
    if ctx.repository:
        remote = f'{ctx.server_url}/{ctx.repository}.git'
        return Source(remote + subdir, sha, f'commit {sha[:12]} is not in the workspace; fetching it from {remote}')
    return Source(workspace + subdir, None, f'commit {sha[:12]} is unknown here; running the workspace as checked out')


def wait_with_signals(submitted: Any, *, ignore_after_cancel: bool = False) -> bool:
    """Wait for the run; SIGINT/SIGTERM/SIGHUP cancel it, a second signal kills it
    (``mlproj.backends.signals``; ``ignore_after_cancel``: see ``execute``)."""
    from mlproj.backends.signals import wait_with_signals as wait

    return wait(submitted, SIGNALS, ignore_after_cancel=ignore_after_cancel, warn=gha.log_line)


def execute(opts: CiRun, *, out: Any = None) -> int:
    """Run, write state/outputs/summary, return the exit status of the step."""
    from mlproj.request import RunRequest
    from mlproj.runner import load_backend_config, submit

    out = out or sys.stdout
    from mlproj import childenv

    removed = set(childenv.strip_ci_secrets(os.environ))
    removed.update(childenv.withheld('run', tracking_uri=opts.tracking_uri))
    if removed:
        print('mlproj: not passed to the project: ' + ', '.join(sorted(removed)), file=sys.stderr)
    ctx = gha.ActionsContext.from_env()
    cwd = os.getcwd()
    src = resolve_source(opts.uri, opts.version, ctx, cwd)
    shown_uri = opts.uri or '.'
    key = opts.key or default_key(shown_uri, opts.entry_point)
    gha.annotate('notice', src.note, title='mlproj source')
    state.update(opts.state_file, status=RUNNING, entry_point=opts.entry_point, uri=shown_uri,
                 version=src.version, key=key, backend=opts.backend)
    started = time.monotonic()
    record = None
    status, error, run_id, experiment_id, tracking_uri = 'ERROR', '', '', '', ''
    code = 1
    try:
        request = RunRequest(
            uri=src.uri, entry_point=opts.entry_point, version=src.version, parameters=dict(opts.parameters),
            backend=opts.backend, backend_config=load_backend_config(opts.backend_config),
            env_manager=opts.env_manager, experiment_name=opts.experiment_name, run_name=opts.run_name,
            tracking_uri=opts.tracking_uri, cwd=cwd,
        )
        # From submission (environment preparation can take a while) to the run's end, a signal
        # cancels; once a cancel started, the runner's follow-up SIGTERM (7.5 s after SIGINT) is
        # ignored so that the outputs and the summary are still written.
        with Signals(SIGNALS, ignore_after_cancel=True, warn=gha.log_line) as signals:
            submitted = submit(request)
            run_id = submitted.run_id
            launch = getattr(submitted, 'launch', None)
            tracking_uri = getattr(launch, 'tracking_uri', '') or _tracking_uri(opts.tracking_uri, cwd)
            experiment_id = str(getattr(launch, 'experiment_id', '') or '')
            state.update(opts.state_file, run_id=run_id, tracking_uri=tracking_uri,
                         experiment_id=experiment_id or None)
            ok = signals.wait(submitted)
        status = submitted.get_status()
        code = 0 if ok else (submitted.exit_code if submitted.exit_code not in (None, 0) else 1)
        if status == KILLED and code == 1:
            code = EXIT_INTERRUPTED
        problem = getattr(submitted, 'tracking_problem', None)
        if problem:  # the store does not know the run ended: the step fails with the tracking code
            from mlproj.errors import EXIT_TRACKING

            error, code = problem, EXIT_TRACKING
            print(f'mlproj: error: {problem}', file=sys.stderr)
    except MlprojError as e:
        error, code = str(e), e.exit_code or 1
        gha.log_line(f'mlproj: error: {e}')
    except KeyboardInterrupt:
        error, code, status = 'interrupted before the run started', EXIT_INTERRUPTED, KILLED if run_id else 'ERROR'
    duration = round(time.monotonic() - started, 1)
    if run_id:
        record = _read_run(tracking_uri, run_id)
        if record is not None:
            experiment_id = record.experiment_id
    run_url = mlflow_run_url(tracking_uri, experiment_id, run_id) if run_id else ''
    final = state.update(opts.state_file, status=status, error=error or None, duration_s=duration,
                         run_url=run_url or None, experiment_id=experiment_id or None)
    report = build_report(final, record, ctx)
    gha.write_outputs(opts.github_output, {
        'run-id': run_id, 'status': status, 'run-url': run_url, 'experiment-id': experiment_id,
        'commit': report.commit,
    })
    gha.append_summary(opts.step_summary, render(report, gha.SUMMARY_CAP, heading='##'))
    if code and gha.in_actions():
        detail = f': {error}' if error else ''
        gha.annotate('error', f'mlproj run {opts.entry_point} {status}{detail}', title='mlproj', out=out)
    return int(code)


def _tracking_uri(explicit: str | None, cwd: str) -> str:
    from mlproj.tracking import resolve_tracking_uri

    return resolve_tracking_uri(explicit, cwd)


def _read_run(tracking_uri: str, run_id: str) -> Any:
    from mlproj.tracking import get_tracker

    try:
        return get_tracker(tracking_uri).get_run(run_id)
    except MlprojError as e:
        gha.log_line(f'mlproj: warning: cannot read run {run_id} back: {e}')
        return None
