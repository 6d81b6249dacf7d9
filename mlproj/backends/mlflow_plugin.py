"""MLflow backend plugins (entry-point group ``mlflow.project_backend``) behind mlproj's backend API.

MLflow calls ``AbstractBackend.run(project_uri, entry_point, params, version, backend_config,
tracking_uri, experiment_id)`` and expects a ``SubmittedRun`` back at once.  The adapter calls it the
way ``mlflow run`` does, with three differences that keep mlproj's guarantees:

* the project is already resolved: ``project_uri`` is the checked-out project directory and
  ``version`` is None (the commit is in mlproj's tags);
* the MLflow run already exists: its id is passed as ``backend_config['_mlflow_local_backend_run_id']``
  (MLflow's own key for "reuse this run"), next to MLflow's reserved keys ``ENV_MANAGER``,
  ``SYNCHRONOUS``, ``DOCKER_ARGS``, ``STORAGE_DIR``, ``build_image`` and ``docker_auth``;
* mlproj owns the terminal status: when ``wait()`` returns, the run is ended FINISHED / FAILED
  (KILLED after ``cancel()``) unless the plugin already ended it; a plugin that raises becomes a
  one-line ``BackendError``.

A plugin that ignores the run id and creates its own run is tolerated: mlproj tags its own run with
``mlproj.plugin.run_id`` and ends both.  A plugin reads the MLproject with MLflow, so an entry
point's own environment (mlproj only) is not seen there: mlproj says so before handing it over.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlproj.backends import FAILED, FINISHED, KILLED, RUNNING, SCHEDULED, Launch
from mlproj.backends.remote import JobState, RemoteSubmittedRun, say
from mlproj.errors import BackendError, one_line
from mlproj.tags import PLUGIN_RUN_ID, PROJECT_BACKEND

RUN_ID_KEY = '_mlflow_local_backend_run_id'
KNOWN = (RUNNING, SCHEDULED, FINISHED, FAILED, KILLED)


def _status_text(value: Any) -> str:
    text = str(getattr(value, 'name', value) or '').upper()
    if text.isdigit():  # an int RunStatus
        try:
            from mlflow.entities import RunStatus

            text = RunStatus.to_string(int(text))
        except Exception:
            pass
    return text if text in KNOWN else RUNNING


class PluginJob:
    def __init__(self, name: str, submitted: Any) -> None:
        self.submitted = submitted
        self.description = f"backend plugin {name!r} run {getattr(submitted, 'run_id', '?')}"

    def state(self) -> JobState:
        return JobState(_status_text(self.submitted.get_status()))

    def follow_logs(self, ended: Any) -> None:  # plugins print their own output
        return None

    def stop(self) -> None:
        self.submitted.cancel()

    kill = stop

    def exit_code(self) -> int | None:
        proc = getattr(self.submitted, 'command_proc', None)  # MLflow's LocalSubmittedRun exposes it
        code = getattr(proc, 'returncode', None)
        if isinstance(code, int):
            return code if code >= 0 else 128 - code
        return None


class PluginSubmittedRun(RemoteSubmittedRun):
    """Watches through the plugin's blocking ``wait()`` (MLflow's contract) instead of polling."""

    def __init__(self, launch: Launch, job: PluginJob, *, plugin_run_id: str | None) -> None:
        super().__init__(launch, job, follow_logs=False)
        self.plugin_job = job
        self.plugin_run_id = plugin_run_id

    def _watch(self) -> None:
        try:
            ok = self.plugin_job.submitted.wait()
        except Exception as e:
            self._finish(JobState(FAILED, None, f'wait() raised {one_line(e)}'))
            return
        if ok:
            state = JobState(FINISHED, 0)
        else:
            try:
                status = _status_text(self.plugin_job.submitted.get_status())
            except Exception:
                status = FAILED
            state = JobState(KILLED if status == KILLED else FAILED, self.plugin_job.exit_code())
        self._finish(state)

    def record(self, status: str) -> None:
        super().record(status)
        if self.plugin_run_id:
            from mlproj.tracking import end_run_if_running

            try:
                end_run_if_running(self.launch.tracker, self.plugin_run_id, status)
            except Exception as e:
                say(f'mlproj: warning: could not record status {status} for run {self.plugin_run_id}: {e}')

    def on_finished(self, state: JobState) -> None:
        self.launch.source.cleanup()


class MlflowPluginBackend:
    def __init__(self, name: str, factory: Any) -> None:
        self.name = name
        self.factory = factory

    def validate(self, request: Any, tracking_uri: str, project: Any) -> None:
        """MLflow plugins check their config themselves, in ``run()``."""

    def cancel_recorded(self, tags: Mapping[str, str]) -> str | None:  # noqa: ARG002
        """A plugin's job is known only to the process that holds its ``SubmittedRun``."""
        return None

    def submit(self, launch: Launch) -> PluginSubmittedRun:
        try:
            import mlflow
        except ImportError:  # pragma: no cover - mlflow-skinny is a dependency
            raise BackendError('MLflow backend plugins need mlflow installed') from None
        try:
            backend = self.factory()
        except Exception as e:
            raise BackendError(f'backend plugin {self.name!r} could not be created: {one_line(e)}') from None
        if not callable(getattr(backend, 'run', None)):
            raise BackendError(f'backend plugin {self.name!r} is not an MLflow AbstractBackend (it has no run())')
        request = launch.request
        config = dict(request.backend_config)
        config.update({
            'ENV_MANAGER': launch.env_manager,
            'SYNCHRONOUS': request.synchronous,
            'DOCKER_ARGS': dict(request.docker_args),
            'STORAGE_DIR': request.storage_dir,
            'build_image': request.build_image,
            'docker_auth': None,
            RUN_ID_KEY: launch.run_id,
        })
        params = {k: v if isinstance(v, str) else str(v) for k, v in request.parameters.items()}
        if mlflow.get_tracking_uri() != launch.tracking_uri:  # plugins use MLflow's fluent client
            mlflow.set_tracking_uri(launch.tracking_uri)
        if launch.entry_point.env is not None:
            say(f'mlproj: warning: entry point {launch.entry_point.name!r} declares its own environment, which '
                f'MLflow backend plugin {self.name!r} does not see: MLflow reads the MLproject itself and uses '
                "the project's environment")
        say(f"=== Running entry point '{launch.entry_point.name}' with backend plugin {self.name!r} "
            f"in run with ID '{launch.run_id}' ===")
        try:
            submitted = backend.run(str(launch.project_dir), launch.entry_point.name, params, None, config,
                                    launch.tracking_uri, launch.experiment_id)
        except Exception as e:
            raise BackendError(f'backend plugin {self.name!r} failed: {one_line(e)}') from None
        for attr in ('wait', 'get_status', 'cancel'):
            if not callable(getattr(submitted, attr, None)):
                raise BackendError(f'backend plugin {self.name!r} returned {type(submitted).__name__}, '
                                   'not an MLflow SubmittedRun')
        other = getattr(submitted, 'run_id', None)
        plugin_run_id = other if other and other != launch.run_id else None
        if plugin_run_id:
            say(f'mlproj: warning: backend plugin {self.name!r} created its own run {plugin_run_id}; '
                f'run {launch.run_id} is tagged with it')
            launch.tracker.set_tags(launch.run_id, {PLUGIN_RUN_ID: plugin_run_id})
            try:
                launch.tracker.set_tags(plugin_run_id, {PROJECT_BACKEND: self.name})
            except Exception:
                pass
        run = PluginSubmittedRun(launch, PluginJob(self.name, submitted), plugin_run_id=plugin_run_id)
        if request.synchronous:
            run.start()
        return run

