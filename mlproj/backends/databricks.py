"""The Databricks backend: run a project as a one-time Databricks job run, through databricks-sdk.

Flow of ``submit(launch)`` (the MLflow run already exists):

1. ``validate``: backend config shape, tracking URI, project kind -- no API call yet.
2. The project directory is packed into ``<sha256>.tar.gz`` (``mlproj.backends._pack``) and,
   with a small launcher script, uploaded once to ``upload_dir`` (DBFS by default, or a Unity
   Catalog volume, or workspace files); an existing file of the right size is not uploaded again.
3. ``jobs.submit`` with one ``spark_python_task`` that runs the launcher on a new cluster, an
   existing cluster or serverless compute.  mlproj is installed as a cluster library (or an
   environment dependency on serverless); the launcher extracts the archive and runs
   ``python -m mlproj run <dir> -e EP --run-id RUN -P k=v ... --env-manager M``, an argv list.
   The MLflow run id is the submit's idempotency token, so a retried submit never starts twice.
4. ``DatabricksSubmittedRun`` polls ``jobs.get_run`` adaptively (1 s, growing to 30 s), prints
   the run page URL and the final output, maps the terminal state to FINISHED/FAILED/KILLED and
   cancels the Databricks run on ``cancel()`` (Ctrl-C/SIGTERM in the CLI).

Auth and host come only from databricks-sdk's unified auth (env vars, ``~/.databrickscfg``
profiles, OAuth); tokens are never printed, tagged or placed in the job.  Every API error
becomes one ``BackendError`` line.
"""
from __future__ import annotations

import re
import signal
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from mlproj.backends import FAILED, FINISHED, KILLED, RUNNING, SCHEDULED, Launch
from mlproj.backends._databricks_api import Workspace, launcher_source, upload_target
from mlproj.backends._databricks_config import (  # noqa: F401  (re-exported for callers and tests)
    Settings,
    cluster_tracking_uri,
    normalize_upload_dir,
    parse_config,
    tracking_profile,
    validate,
)
from mlproj.backends.lifecycle import Backoff, JobState, Lifecycle, watch
from mlproj.backends.signals import started
from mlproj.errors import BackendError
from mlproj.tags import (
    DATABRICKS_ARCHIVE,
    DATABRICKS_RUN_ID,
    DATABRICKS_RUN_URL,
    DATABRICKS_SHELL_JOB_ID,
    DATABRICKS_SHELL_JOB_RUN_ID,
    DATABRICKS_WEBAPP_URL,
)

# the tags naming the Databricks job run of an MLflow run (``cancel_recorded``)
RECORDED_RUN_ID_TAGS = (DATABRICKS_SHELL_JOB_RUN_ID, DATABRICKS_RUN_ID)

POLL_FIRST = 1.0
POLL_GROWTH = 1.5
TASK_KEY = 'mlproj'
ENVIRONMENT_KEY = 'mlproj'

# life_cycle_state values after which a run never changes again
TERMINAL_LIFE_CYCLES = ('TERMINATED', 'SKIPPED', 'INTERNAL_ERROR')
WAITING_LIFE_CYCLES = ('PENDING', 'QUEUED', 'BLOCKED', 'WAITING')


# --------------------------------------------------------------------------------------------
# the job


def _param_text(value: Any) -> str:
    if isinstance(value, bool):
        return 'True' if value else 'False'
    return value if isinstance(value, str) else str(value)


def launcher_parameters(launch: Launch, archive_path: str, settings: Settings) -> list[str]:
    """The launcher's argv: where the archive is, the job's MLflow variables, then `mlproj run` flags."""
    args = [archive_path,
            '--env', f'MLFLOW_TRACKING_URI={settings.cluster_tracking_uri}',
            '--env', f'MLFLOW_EXPERIMENT_ID={launch.experiment_id}',
            '--',
            '-e', launch.request.entry_point, '--run-id', launch.run_id, '--env-manager', launch.env_manager]
    for key, value in launch.request.parameters.items():
        args += ['-P', f'{key}={_param_text(value)}']
    return args


def _names_mlproj(lib: Mapping[str, Any]) -> bool:
    pypi = lib.get('pypi') or {}
    package = str(pypi.get('package', '')) if isinstance(pypi, dict) else ''
    if re.match(r'^\s*mlproj\b(?![-_.\w])', package, re.IGNORECASE):
        return True
    whl = str(lib.get('whl', ''))
    return PurePosixPath(whl).name.lower().startswith('mlproj-')


def job_spec(launch: Launch, settings: Settings, *, launcher_path: str, archive_path: str,
             wheel_path: str | None) -> dict[str, Any]:
    """The ``jobs/runs/submit`` body (as plain JSON)."""
    libraries = [dict(lib) for lib in settings.libraries]
    if not any(_names_mlproj(lib) for lib in libraries):
        libraries.append({'whl': wheel_path} if wheel_path else {'pypi': {'package': settings.mlproj_package}})
    task: dict[str, Any] = {
        'task_key': TASK_KEY,
        'spark_python_task': {
            'python_file': launcher_path,
            'parameters': launcher_parameters(launch, archive_path, settings),
        },
    }
    body: dict[str, Any] = {
        'run_name': settings.run_name or launch.request.run_name
        or f'mlproj run {launch.source.uri} -e {launch.request.entry_point}',
        'tasks': [task],
        'idempotency_token': launch.run_id,
    }
    if settings.compute == 'serverless':
        dependencies = list((settings.environment or {}).get('dependencies') or [])
        for lib in libraries:
            if 'pypi' in lib:
                dependencies.append(lib['pypi']['package'])
            elif 'whl' in lib:
                dependencies.append(lib['whl'])
            elif 'requirements' in lib:
                dependencies.append(f"-r {lib['requirements']}")
        spec = {**(settings.environment or {}), 'dependencies': dependencies}
        body['environments'] = [{'environment_key': ENVIRONMENT_KEY, 'spec': spec}]
        task['environment_key'] = ENVIRONMENT_KEY
    else:
        if settings.compute == 'new':
            task['new_cluster'] = dict(settings.new_cluster or {})
        else:
            task['existing_cluster_id'] = settings.existing_cluster_id
        task['libraries'] = libraries
    if settings.timeout_seconds is not None:
        body['timeout_seconds'] = settings.timeout_seconds
    return body


def _submit_job(ws: Workspace, body: dict[str, Any]) -> int:
    from databricks.sdk.service import jobs

    kwargs: dict[str, Any] = {
        'run_name': body['run_name'],
        'tasks': [jobs.SubmitTask.from_dict(t) for t in body['tasks']],
        'idempotency_token': body['idempotency_token'],
    }
    if 'environments' in body:
        kwargs['environments'] = [jobs.JobEnvironment.from_dict(e) for e in body['environments']]
    if 'timeout_seconds' in body:
        kwargs['timeout_seconds'] = body['timeout_seconds']
    # the idempotency token makes a retried submit safe: Databricks starts at most one run per token
    waiter = ws.call('submitting the job run', ws.client.jobs.submit, **kwargs)
    return int(waiter.run_id)


def _say(message: str) -> None:
    print(f'=== {message} ===', file=sys.stderr, flush=True)


def _warn(message: str) -> None:
    print(f'mlproj: warning: {message}', file=sys.stderr, flush=True)


def submit(launch: Launch) -> DatabricksSubmittedRun:
    from mlproj.backends._pack import pack, sha256_file

    settings = validate(launch.request, launch.tracking_uri, launch.project)
    for w in settings.warnings:
        _warn(w)
    import shutil
    import tempfile

    work = Path(tempfile.mkdtemp(prefix='mlproj-databricks-'))
    try:
        archive = pack(launch.project_dir, work)
        _say(f'Packed project {launch.project_dir} ({len(archive.files)} files, {archive.size} bytes) '
             f'as {archive.sha256[:12]}')
        launcher = work / 'launcher.py'
        launcher.write_bytes(launcher_source())

        ws = Workspace(settings)
        store = upload_target(ws, settings.upload_dir)
        root = settings.upload_dir
        launcher_path = f'{root}/launchers/{sha256_file(launcher)}.py'
        archive_path = f'{root}/projects/{archive.name}'
        store.upload_once(launcher_path, launcher)
        wheel_path = None
        if settings.mlproj_wheel is not None:
            wheel_path = f'{root}/wheels/{sha256_file(settings.mlproj_wheel)}/{settings.mlproj_wheel.name}'
            if store.upload_once(wheel_path, settings.mlproj_wheel):
                _say(f'Uploaded {settings.mlproj_wheel.name} to {wheel_path}')
        if store.upload_once(archive_path, archive.path):
            _say(f'Uploaded project to {archive_path}')
        else:
            _say(f'Project already uploaded at {archive_path}')
    finally:
        shutil.rmtree(work, ignore_errors=True)
    launch.source.cleanup()  # everything the cluster needs is uploaded

    body = job_spec(launch, settings, launcher_path=launcher_path, archive_path=archive_path, wheel_path=wheel_path)
    _say(f"Running entry point {launch.request.entry_point} of project {launch.source.uri} on Databricks")
    db_run_id = _submit_job(ws, body)
    started()  # the job run exists: a signal from here on cancels it (mlproj.backends.signals)
    _say(f'Launched MLflow run as Databricks job run with ID {db_run_id}')
    submitted = DatabricksSubmittedRun(launch, ws, db_run_id, settings)
    try:
        submitted.describe(archive_path)
    except BaseException:
        submitted.abandon()
        raise
    return submitted


# --------------------------------------------------------------------------------------------
# the submitted run


@dataclass
class RunState:
    life_cycle: str
    result: str | None
    message: str
    task_run_id: int | None
    page_url: str | None
    job_id: int | None

    @property
    def terminal(self) -> bool:
        return self.life_cycle in TERMINAL_LIFE_CYCLES

    @property
    def label(self) -> str:
        return f'{self.life_cycle}' + (f' {self.result}' if self.result else '')


def mlflow_status(state: RunState) -> str:
    """Databricks run state -> MLflow run status."""
    if not state.terminal:
        return SCHEDULED if state.life_cycle in WAITING_LIFE_CYCLES else RUNNING
    if state.life_cycle == 'TERMINATED' and state.result == 'SUCCESS':
        return FINISHED
    if state.result == 'CANCELED':
        return KILLED
    return FAILED  # FAILED, TIMEDOUT, INTERNAL_ERROR, SKIPPED, UPSTREAM_*, EXCLUDED, ...


def _enum(value: Any) -> str | None:
    if value is None:
        return None
    return getattr(value, 'value', str(value))


class DatabricksSubmittedRun(Lifecycle):
    """A Databricks job run carrying an MLflow run.  ``wait()`` polls; ``cancel()`` cancels it."""

    def __init__(self, launch: Launch, ws: Workspace, databricks_run_id: int, settings: Settings) -> None:
        super().__init__(launch)
        self.ws = ws
        self.databricks_run_id = databricks_run_id
        self.settings = settings
        self.run_page_url: str | None = None
        self._last: RunState | None = None
        self._wake = threading.Event()
        self._poll_lock = threading.Lock()
        self._client_tags: dict[str, str] = {}

    # -- state ------------------------------------------------------------------------------
    def fetch(self) -> RunState:
        run = self.ws.call(f'reading Databricks run {self.databricks_run_id}', self.ws.client.jobs.get_run,
                           self.databricks_run_id)
        state = run.state
        task_run_id = None
        if run.tasks:
            task_run_id = run.tasks[0].run_id
        return RunState(
            life_cycle=(_enum(state.life_cycle_state) or 'PENDING') if state else 'PENDING',
            result=_enum(state.result_state) if state else None,
            message=(state.state_message or '') if state else '',
            task_run_id=task_run_id, page_url=run.run_page_url, job_id=run.job_id,
        )

    def describe(self, archive_path: str) -> None:
        """First status: tags and the run page URL (MLflow's runURL/shellJobRunID/webappURL tags)."""
        state = self.fetch()
        self._last = state
        self.run_page_url = state.page_url
        tags = {DATABRICKS_SHELL_JOB_RUN_ID: str(self.databricks_run_id), DATABRICKS_WEBAPP_URL: self.ws.host,
                DATABRICKS_ARCHIVE: archive_path}
        if state.page_url:
            tags[DATABRICKS_RUN_URL] = state.page_url
        if state.job_id is not None:
            tags[DATABRICKS_SHELL_JOB_ID] = str(state.job_id)
        tracker = self.launch.tracker
        tracker.set_tags(self.run_id, tags)
        try:
            self._client_tags = dict(tracker.get_run(self.run_id).tags)
        except Exception:
            self._client_tags = {}
        if state.page_url:
            _say(f"Check the run's status at {state.page_url}")
        _say(f'Databricks run {self.databricks_run_id}: {state.label}')

    def abandon(self) -> None:
        """Submit succeeded but we cannot follow the run: cancel it rather than leave it unobserved."""
        try:
            self.ws.client.jobs.cancel_run(self.databricks_run_id)
        except Exception:
            pass

    def get_status(self) -> str:
        if self._done.is_set():
            return self._status
        return mlflow_status(self.fetch())

    # -- waiting ----------------------------------------------------------------------------
    def wait(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._done.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                break
            if self._poll_lock.acquire(blocking=False):
                try:
                    self._poll_until_done(deadline)
                finally:
                    self._poll_lock.release()
            else:
                self._done.wait(0.2)
        return self._status == FINISHED

    def _poll_until_done(self, deadline: float | None) -> None:
        backoff = Backoff(POLL_FIRST, POLL_GROWTH, self.settings.poll_max_seconds)
        last_label = self._last.label if self._last else None

        def on_state(state: RunState) -> None:
            nonlocal last_label
            self._last = state
            if state.label != last_label:
                _say(f'Databricks run {self.databricks_run_id}: {state.label}'
                     + (f' ({state.message})' if state.message and state.terminal else ''))
                last_label = state.label
                backoff.reset()

        try:
            state = watch(self.fetch, lambda s: s.terminal, wake=self._wake, backoff=backoff, done=self._done,
                          deadline=deadline, on_state=on_state)  # no lost_timeout: ws.call retries already
        except BackendError as e:
            self._finish(FAILED, None, error=e)
            raise
        if state is not None:
            self._finish(mlflow_status(state), state)

    def _finish(self, status: str, state: RunState | None, error: BaseException | None = None) -> None:
        self.end(JobState(status), (state, error))

    def before_record(self, final: JobState, context: Any) -> None:
        state, error = context
        if state is not None:
            self._print_output(state)
            if state.result == 'TIMEDOUT':
                _say(f'Databricks run {self.databricks_run_id} timed out after {self.settings.timeout_seconds} s')
        if error is not None:
            _warn(f'lost track of Databricks run {self.databricks_run_id}'
                  + (f' ({self.run_page_url})' if self.run_page_url else '')
                  + f'; MLflow run {self.run_id} is marked FAILED, the job may still be running')

    def record(self, status: str) -> None:
        tracker = self.launch.tracker
        try:
            if self._client_tags:
                # the cluster-side `mlproj run --run-id` re-tags the run from its own point of view
                # (extracted dir, backend local); the submitting side's provenance is the truth
                tracker.set_tags(self.run_id, {k: v for k, v in self._client_tags.items()
                                               if not k.startswith('mlflow.log-model')})
        except Exception as e:
            _warn(f'could not restore the tags of run {self.run_id}: {e}')
        super().record(status)

    def ended_text(self, status: str) -> str:
        return f'the Databricks run ended {status}'

    def _print_output(self, state: RunState) -> None:
        if state.task_run_id is None:
            if state.message:
                print(f'mlproj: Databricks: {state.message}', file=sys.stderr, flush=True)
            return
        try:
            output = self.ws.call(f'reading the output of Databricks run {self.databricks_run_id}',
                                  self.ws.client.jobs.get_run_output, state.task_run_id)
        except BackendError as e:
            _warn(str(e))
            return
        if output.logs:
            sys.stdout.write(output.logs if output.logs.endswith('\n') else output.logs + '\n')
            sys.stdout.flush()
            if output.logs_truncated:
                _warn('the job output was truncated by Databricks; see the run page for the full log')
        from mlproj.quiet import project_stderr

        job_err = project_stderr()  # the job's own error output: shown under --quiet too
        if output.error:
            print(f'mlproj: Databricks error: {output.error}', file=job_err)
        if output.error_trace:
            print(output.error_trace.rstrip('\n'), file=job_err)
        job_err.flush()
        if not output.error and state.message and mlflow_status(state) != FINISHED:
            print(f'mlproj: Databricks: {state.message}', file=sys.stderr)
        sys.stderr.flush()

    # -- cancellation -----------------------------------------------------------------------
    def cancel(self, sig: int = signal.SIGTERM) -> None:
        if self._done.is_set():
            return
        first = self.note_cancel(sig)
        if first:
            try:
                self.ws.call(f'cancelling Databricks run {self.databricks_run_id}', self.ws.client.jobs.cancel_run,
                             self.databricks_run_id)
                _say(f'Cancel requested for Databricks run {self.databricks_run_id}')
            except BackendError as e:
                _warn(str(e))
        if sig == signal.SIGKILL or not first:
            # a second signal: do not wait for Databricks to confirm the cancellation
            self._finish(KILLED, None)
            self._wake.set()
            return
        self._wake.set()
        self.wait()


# --------------------------------------------------------------------------------------------
# a run recorded by another process (``mlproj ci cancel``)


def cancel_recorded(tags: Mapping[str, str]) -> str | None:
    run_id = next((tags[t] for t in RECORDED_RUN_ID_TAGS if tags.get(t)), None)
    if not run_id:
        return None
    cancel_databricks_run(run_id)
    return f'cancelled Databricks job run {run_id}'


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
