"""Backends: where a resolved, validated run executes.

Each backend module is a ``Backend``: ``validate(request, tracking_uri, project)`` (checks made
before any run exists), ``submit(launch: Launch) -> SubmittedRun`` and
``cancel_recorded(tags)`` (stop what a run recorded in its tags, from another process: ``mlproj
ci cancel``).  The run already exists in MLflow (created by the runner, with its tags) when
``submit`` is called; the backend owns the run's terminal status from then on, through
``launch.tracker``, with the shared lifecycle of ``mlproj.backends.lifecycle``.

Built-in backends are listed in ``BACKENDS``; others are found through the entry-point groups
``mlproj.backends`` (a module or object with ``submit``) and ``mlflow.project_backend``
(MLflow's ``AbstractBackend`` plugins, adapted by ``mlproj.backends.mlflow_plugin``); a plugin of
ours that has only ``submit`` gets the defaults of ``PluginModule`` for the other hooks.
"""
from __future__ import annotations

import importlib
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from mlproj.errors import BackendError
from mlproj.tags import FAILED, FINISHED, KILLED, RUNNING, SCHEDULED  # noqa: F401  (backends import statuses from here)

if TYPE_CHECKING:
    from mlproj.params import BoundParams
    from mlproj.request import RunRequest
    from mlproj.source import ResolvedSource
    from mlproj.spec import EntryPoint, Project
    from mlproj.tracking import Tracker

BACKENDS: dict[str, str] = {
    'local': 'mlproj.backends.local',
    'databricks': 'mlproj.backends.databricks',
    'ray': 'mlproj.backends.ray',
    'slurm': 'mlproj.backends.slurm',
    'kubernetes': 'mlproj.backends.kubernetes',
}

TERMINAL = (FINISHED, FAILED, KILLED)

# Built-in backends with nothing to check before the run exists (their ``validate`` is
# ``lifecycle.checked_at_submit``): ``validate`` does not import them, the runner does, while a
# tracking server creates the run (``runner.launch``).
NOTHING_TO_VALIDATE = frozenset({'local'})


@dataclass
class Launch:
    """Everything a backend needs: the request and what the runner resolved from it."""
    request: RunRequest
    source: ResolvedSource
    project: Project
    entry_point: EntryPoint
    params: BoundParams
    command: str                      # the entry point's shell command, parameters substituted
    run_id: str
    experiment_id: str
    tracking_uri: str                 # absolute; what the child process must use
    tracker: Tracker
    env_manager: str                  # the manager chosen for this run
    run_env: Mapping[str, str] = field(default_factory=dict)  # MLFLOW_* variables for the child
    # environments already prepared for this project (a sweep's points share one), by manager;
    # None: prepare as usual.  Backends that prepare locally may read and fill it.
    prepared: dict | None = None
    # a supervisor already started for this run (the local backend's ``prestart``), or None
    prestarted: Any = None

    @property
    def project_dir(self) -> Path:
        return self.source.project_dir


class SubmittedRun:
    """A run handed to a backend: MLflow's ``SubmittedRun`` interface.

    ``wait()`` returns True on success; ``get_status()`` is one of RUNNING, FINISHED, FAILED,
    KILLED, SCHEDULED; ``cancel()`` stops the run and records it KILLED.  ``exit_code`` is the
    process-style code the CLI exits with once the run is over.  ``tracking_problem`` is set when
    the run ended but its status could not be recorded (after the retries of
    ``tracking.record_terminal_status``); the CLI then exits 70 with that message.
    """

    tracking_problem: str | None = None

    def __init__(self, run_id: str) -> None:
        self._run_id = run_id
        self.exit_code: int | None = None

    @property
    def run_id(self) -> str:
        return self._run_id

    def wait(self) -> bool:
        raise NotImplementedError

    def get_status(self) -> str:
        raise NotImplementedError

    def cancel(self) -> None:
        raise NotImplementedError


class Backend(Protocol):
    def validate(self, request: RunRequest, tracking_uri: str, project: Project) -> object:
        """Check the backend config, tracking URI and project kind; raise a one-line error.  Runs
        before the MLflow run exists (nothing to end on failure)."""
        ...

    def submit(self, launch: Launch) -> SubmittedRun:
        """Start the run; from here on the backend records its terminal status."""
        ...

    def cancel_recorded(self, tags: Mapping[str, str]) -> str | None:
        """Stop the job a run of this backend recorded in ``tags`` (launched by another process);
        returns what was done, or None when the tags name nothing that can be stopped."""
        ...


class PluginModule:
    """A ``mlproj.backends`` plugin with only ``submit``: the other hooks do nothing."""

    def __init__(self, impl: Any) -> None:
        self.impl = impl

    def validate(self, request: RunRequest, tracking_uri: str, project: Project) -> object:
        check = getattr(self.impl, 'validate', None)  # optional for third-party plugins
        return check(request, tracking_uri, project) if check is not None else None

    def submit(self, launch: Launch) -> SubmittedRun:
        return self.impl.submit(launch)  # type: ignore[no-any-return]

    def cancel_recorded(self, tags: Mapping[str, str]) -> str | None:
        cancel = getattr(self.impl, 'cancel_recorded', None)
        return cancel(tags) if cancel is not None else None


_plugin_lock = threading.Lock()
_plugins: dict[str, Any] | None = None


def _discover_plugins() -> dict[str, Any]:
    global _plugins
    with _plugin_lock:
        if _plugins is None:
            from importlib.metadata import entry_points

            found: dict[str, Any] = {}
            for group in ('mlflow.project_backend', 'mlproj.backends'):  # ours win on a name clash
                for ep in entry_points(group=group):
                    found[ep.name] = (group, ep)
            _plugins = found
        return _plugins


def available() -> list[str]:
    return sorted(set(BACKENDS) | set(_discover_plugins()))


def validate(request: RunRequest, tracking_uri: str, project: Project) -> object:
    """The request's backend's ``validate`` (an unknown backend is an error here too)."""
    if request.backend in NOTHING_TO_VALIDATE:
        return None
    return get_backend(request.backend).validate(request, tracking_uri, project)


def get_backend(name: str) -> Backend:
    if name in BACKENDS:
        return importlib.import_module(BACKENDS[name])  # type: ignore[return-value]
    plugin = _discover_plugins().get(name)
    if plugin is None:
        raise BackendError(f'unknown backend {name!r}; available: ' + ', '.join(available()))
    group, ep = plugin
    try:
        obj = ep.load()
    except Exception as e:  # a broken third-party plugin must not produce a traceback
        raise BackendError(f'backend plugin {name!r} failed to load: {e}') from e
    if group == 'mlflow.project_backend':
        from mlproj.backends.mlflow_plugin import MlflowPluginBackend

        return MlflowPluginBackend(name, obj)
    return PluginModule(obj() if isinstance(obj, type) else obj)
