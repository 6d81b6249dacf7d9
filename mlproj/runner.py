"""The run pipeline: source -> project -> parameters -> MLflow run -> backend.

Everything that can be checked without side effects (URI, MLproject, entry point, parameter
types, env manager, backend name) is checked before the MLflow run is created.  From the entry
point on, the project is the one that entry point runs (``Project.for_entry_point``: its own
environment when it declares one), so env managers and every backend see the right environment.  Once the run
exists, any failure ends it FAILED before the error propagates: no run is ever left RUNNING.
"""
from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass, field
from typing import Any

from mlproj.errors import BackendError, EnvError, TrackingError
from mlproj.request import ENV_MANAGERS, RunRequest
from mlproj.tags import (
    CACHE_KEY,
    ENV_MANAGER,
    FAILED,
    FINISHED,
    KILLED,
    PARENT_RUN_ID,
    PROJECT_BACKEND,
    PROJECT_ENTRY_POINT,
    RUN_NAME,
    RUNNING,
    SCHEDULED,
    USER,
)

# Backends whose commands see this machine's filesystem, so `path` parameters are made absolute.
LOCAL_FILESYSTEM_BACKENDS = ('local', 'slurm')


@dataclass
class Plan:
    """What a request resolves to before anything is created (also what --dry-run prints)."""
    request: RunRequest
    source: Any
    project: Any
    entry_point: Any
    params: Any
    command: str
    env_manager: str
    tracking_uri: str
    tags: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    cache_key: str | None = None           # mlproj.runcache: the run's inputs as one key
    cache_miss_reason: str | None = None   # why there is no key

    def as_dict(self) -> dict[str, Any]:
        return {
            'uri': self.source.uri,
            'project_dir': str(self.source.project_dir),
            'commit': self.source.commit,
            'entry_point': self.entry_point.name,
            'parameters': self.params.logged,
            'command': self.command,
            'env_manager': self.env_manager,
            'environment': {**self.project.env.as_dict(), 'entry_point_env': self.entry_point.env is not None},
            'backend': self.request.backend,
            'experiment': self.experiment(),
            'tracking_uri': _redact(self.tracking_uri),
            'tags': self.tags,
            'cache_key': self.cache_key,
        }


    def experiment(self) -> dict[str, str | None]:
        """The experiment the run would be recorded in, as the request and MLFLOW_EXPERIMENT_NAME/_ID
        give it (the store is not asked: a dry run creates nothing; no name and no id is id 0)."""
        from mlproj.tracking import resolve_experiment_args

        name, experiment_id = resolve_experiment_args(self.request.experiment_name, self.request.experiment_id)
        return {'name': name, 'id': experiment_id if name or experiment_id else '0'}


def _redact(uri: str) -> str:
    from mlproj.tracking import redact_uri

    return redact_uri(uri)


def plan(request: RunRequest, *, warn: Any = None) -> Plan:
    """Resolve and validate a request; creates no MLflow run. The caller must clean up ``source``."""
    warn = warn or _warn
    src, project = resolve_project(request, warn=warn)
    try:
        return plan_point(request, src, project, warn=warn)
    except BaseException:
        src.cleanup()
        raise


def resolve_project(request: RunRequest, *, warn: Any = None) -> tuple[Any, Any]:
    """The checks that need no source, the source, and its project (loaded and validated).
    The caller must clean up the source."""
    from mlproj import backends, source, spec

    warn = warn or _warn
    if request.env_manager is not None and request.env_manager not in ENV_MANAGERS:
        raise EnvError(f'invalid env manager {request.env_manager!r}; choose one of: ' + ', '.join(ENV_MANAGERS))
    if request.backend not in backends.BACKENDS and request.backend not in backends.available():
        raise BackendError(f'unknown backend {request.backend!r}; available: ' + ', '.join(backends.available()))
    credential: Any = contextlib.nullcontext()
    if request.git_password:  # --git-password: the credential module only then (a local run has no use for it)
        from mlproj.source.credentials import given_credential

        credential = given_credential(request.git_username, request.git_password)
    with credential:
        src = source.resolve(request.uri, request.version, keep_checkout=request.keep_checkout,
                             require_clean=request.require_clean, cwd=request.cwd)
    try:
        if src.dirty:
            warn(f'the working tree of {src.root} has uncommitted changes; the run records commit '
                 f'{(src.commit or "")[:12]} plus a diff hash')
        # env files may live anywhere in the checkout / repository root (monorepos), never outside
        project = spec.load_project(src.project_dir, root=src.root, refuse_lint_errors=request.strict)
        for f in project.run_warnings(strict=request.strict):
            warn(spec.run_warning_text(f))
        return src, project
    except BaseException:
        src.cleanup()
        raise


def plan_point(request: RunRequest, src: Any, project: Any, *, warn: Any = None) -> Plan:
    """The plan of one run of an already resolved project (a sweep plans each point so)."""
    from mlproj import backends, envs, params, tracking

    entry_point = project.get_entry_point(request.entry_point)
    project = project.for_entry_point(entry_point)  # its own python_env / conda_env / docker_env
    # `path` values are resolved (and remote ones downloaded) only where the command runs on
    # this machine's filesystem; a remote backend gets the value as given.
    local_paths = request.backend in LOCAL_FILESYSTEM_BACKENDS
    bound = params.bind(entry_point, request.parameters, cwd=request.cwd, project_dir=src.project_dir,
                        storage_dir=request.storage_dir, resolve_paths=local_paths,
                        download=local_paths and not request.dry_run, strict=request.strict,
                        where=f'entry point {entry_point.name!r} of {project.mlproject_path or src.project_dir}')
    command = params.build_command(entry_point, bound)
    manager = envs.select_manager(project, request.env_manager or _inherited_env_manager())
    tracking_uri = tracking.resolve_tracking_uri(request.tracking_uri, request.cwd)
    # backend config, tracking URI, project kind: before any run exists
    backends.validate(request, tracking_uri, project)
    tags = {
        USER: tracking.user(),
        **src.tags(),
        PROJECT_ENTRY_POINT: request.entry_point,
        PROJECT_BACKEND: request.backend,
        ENV_MANAGER: manager,
        **dict(request.extra_tags),
    }
    if request.run_name:
        tags[RUN_NAME] = request.run_name
    p = Plan(request, src, project, entry_point, bound, command, manager, tracking_uri, tags)
    from mlproj import runcache

    p.cache_key, p.cache_miss_reason = runcache.cache_key(p)
    if p.cache_key:
        p.tags[CACHE_KEY] = p.cache_key
    return p


def _warn(message: str) -> None:
    from mlproj.safeout import printable

    print(f'mlproj: warning: {printable(message)}', file=sys.stderr)


def _parent_run_id() -> str | None:
    """The active fluent run of this process, when mlproj.run is called from project code."""
    mlflow = sys.modules.get('mlflow')
    if mlflow is None:
        return None
    try:
        active = mlflow.active_run()
    except Exception:
        return None
    return active.info.run_id if active else None


def _inherited_env_manager() -> str | None:
    """Inside a run mlproj launched (``MLFLOW_RUN_ID`` and ``MLPROJ_ENV_MANAGER`` set for the
    child), a nested run without ``--env-manager`` uses the parent's manager."""
    import os

    from mlproj.settings import env_value

    inherited: str | None = env_value('MLPROJ_ENV_MANAGER')  # None unless one of ENV_MANAGERS
    return inherited if os.environ.get('MLFLOW_RUN_ID') else None


def _relabel_nested_at_end(src: Any, tracker: Any, experiment_id: str, run_id: str) -> None:
    """Nested ``mlflow.run(".")`` calls record the checkout dir as their source name: fix at the end."""
    if not src.commit or not src.origin_uri or not src.temporary:  # in place: MLflow's name is right
        return
    from mlproj.source.nested import relabel_nested_runs

    root, origin = src.root, src.origin_uri
    src.before_cleanup(lambda: relabel_nested_runs(tracker, experiment_id, run_id, root, origin))

def _launcher_tags(request: RunRequest) -> dict[str, str]:
    """Who launches a local run (its life is this process's life): see ``mlproj.stale``."""
    if request.backend != 'local':
        return {}
    from mlproj.stale import launcher_tags

    return launcher_tags()


class ReusedRun:
    """A FINISHED run of the same inputs, reported instead of running again (``--reuse``)."""

    exit_code = 0
    tracking_problem = None
    reused = True

    def __init__(self, record: Any) -> None:
        self.record = record
        self.run_id = record.run_id

    def wait(self, timeout: float | None = None) -> bool:  # noqa: ARG002
        return True

    def get_status(self) -> str:
        return FINISHED

    def cancel(self, sig: int = 0) -> None:  # noqa: ARG002
        return None


def submit(request: RunRequest):
    """Plan, create the MLflow run, hand it to the backend. Returns a SubmittedRun (a
    ``ReusedRun`` when ``request.reuse`` finds a FINISHED run with the same cache key)."""
    return launch(plan(request))


def launch(p: Plan, *, tracker: Any = None, experiment_id: str | None = None, parent_run_id: str | None = None,
           prepared: dict | None = None, reuse_announce: Any = None):
    """Create the MLflow run of plan ``p`` and hand it to its backend; owns ``p.source`` (cleaned
    up when the run ends, or here on failure).  A sweep passes its ``tracker``, ``experiment_id``,
    the parent run and a ``prepared`` dict (environments prepared once for every point)."""
    from mlproj import backends, tracking

    request = p.request
    backend: Any = None
    pre = None

    def ready() -> None:
        """The backend's module, and the local backend's supervisor started beside the tracking
        calls that follow (``prestart``)."""
        nonlocal backend, pre
        if backend is None:
            backend = backends.get_backend(request.backend)
            pre = getattr(backend, 'prestart', lambda: None)()

    def ready_quietly() -> None:  # while runs/create is on the server: an error comes back below
        try:
            ready()
        except Exception:
            pass

    try:
        # A tracking server's runs/create takes the longest of a run's calls: the backend's module
        # is imported and its supervisor started while the server works on it (RestTracker's
        # ``sent``).  A local store is opened after the supervisor started (its interpreter starts
        # beside it).
        overlap = not request.run_id and tracking.is_server_uri(p.tracking_uri)
        if not overlap:
            ready()
        tracker = tracker or tracking.get_tracker(p.tracking_uri)
        if request.run_id:
            record = tracker.get_run(request.run_id)
            if record.status not in (RUNNING, SCHEDULED):
                raise TrackingError(f'run {request.run_id} has status {record.status}; only a RUNNING or '
                                    'SCHEDULED run can be resumed with --run-id')
            run_id, experiment_id = record.run_id, record.experiment_id
            # Resuming (e.g. the cluster side of a remote backend): add what is missing, never
            # overwrite what the submitting side recorded, except who launches it from now on.
            tracker.set_tags(run_id, {**{k: v for k, v in p.tags.items() if k not in record.tags},
                                      **_launcher_tags(request)})
            resumed_params = record.params
        else:
            if experiment_id is None:
                exp_name, exp_id = tracking.resolve_experiment_args(request.experiment_name, request.experiment_id)
                experiment_id = tracker.resolve_experiment(exp_name, exp_id)
            if request.reuse:
                reused = _find_reusable(p, tracker, str(experiment_id), reuse_announce)
                if reused is not None:
                    _abort(pre)
                    p.source.cleanup()
                    return reused
            tags = {**p.tags, **_launcher_tags(request)}
            parent = parent_run_id or _parent_run_id()
            if parent:
                tags[PARENT_RUN_ID] = parent
            if overlap:
                run_id = tracker.create_run(experiment_id, tags, request.run_name, sent=ready_quietly)
            else:
                run_id = tracker.create_run(experiment_id, tags, request.run_name)
            resumed_params = {}
            _relabel_nested_at_end(p.source, tracker, str(experiment_id), run_id)
    except BaseException:
        _abort(pre)
        p.source.cleanup()
        raise
    try:
        ready()  # a no-op unless it failed beside runs/create: the run now ends FAILED
        tracker.log_params(run_id, {k: v for k, v in p.params.logged.items() if k not in resumed_params})
        run_env = {
            **tracking.child_env_for(p.tracking_uri),
            'MLFLOW_RUN_ID': run_id,
            'MLFLOW_EXPERIMENT_ID': str(experiment_id),
            'MLPROJ_ENV_MANAGER': p.env_manager,
        }
        launch = backends.Launch(
            request=request, source=p.source, project=p.project, entry_point=p.entry_point, params=p.params,
            command=p.command, run_id=run_id, experiment_id=str(experiment_id), tracking_uri=p.tracking_uri,
            tracker=tracker, env_manager=p.env_manager, run_env=run_env, prepared=prepared, prestarted=pre,
        )
        submitted = backend.submit(launch)
    except BaseException as e:
        _abort(pre)
        status = KILLED if isinstance(e, KeyboardInterrupt) else FAILED
        try:
            tracker.set_status(run_id, status)
        except Exception as inner:
            print(f'mlproj: warning: could not mark run {run_id} {status}: {inner}', file=sys.stderr)
        p.source.cleanup()
        raise
    return submitted


def _abort(prestarted: Any) -> None:
    """Let a backend's prestarted process go (a no-op once the run's command started)."""
    if prestarted is not None:
        prestarted.abort()


def _find_reusable(p: Plan, tracker: Any, experiment_id: str, announce: Any) -> ReusedRun | None:
    from mlproj import runcache

    if not p.cache_key:
        _warn(f'--reuse: this run cannot be reused or found: {p.cache_miss_reason}')
        return None
    record = runcache.find_reusable(tracker, experiment_id, p.cache_key)
    if record is None:
        return None
    message = f'reused run {record.run_id}, {runcache.describe_end(record)} (same inputs; --force reruns)'
    (announce or (lambda m: print(f'mlproj: {m}', file=sys.stderr, flush=True)))(message)
    return ReusedRun(record)


def load_backend_config(value: Any) -> dict:
    """A dict, a path to a ``.json`` file, or inline JSON text (the CLI's ``-c``)."""
    import json
    import os

    from mlproj.errors import BadArgumentError

    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    text = str(value)
    if text.endswith('.json') or (os.path.isfile(text) and not text.lstrip().startswith('{')):
        try:
            with open(text, encoding='utf-8') as f:
                data = json.load(f)
        except OSError as e:
            raise BadArgumentError(f'cannot read backend config: {e.strerror}', text) from None
        except json.JSONDecodeError as e:
            raise BadArgumentError(f'backend config is not valid JSON: {e.msg}',
                                   f'{text}:{e.lineno}:{e.colno}') from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise BadArgumentError(f'invalid backend config JSON: {e.msg} at column {e.colno}') from None
    if not isinstance(data, dict):
        raise BadArgumentError('backend config must be a JSON object')
    return data
