"""``-b ray``: submit the project as a Ray job through Ray's Job Submission client.

* Address: backend-config ``address`` or ``RAY_ADDRESS`` (the dashboard, e.g. ``http://head:8265``).
* The checked-out project directory is the job's ``working_dir`` (Ray uploads it at submission;
  ``.git``, ``mlruns`` and ``__pycache__`` are excluded).
* The project's environment becomes the job's runtime environment.  The env file is read by
  ``mlproj.envs.envfiles`` only, as for every other backend: its PyPI requirements
  (``pypi_requirements``: python_env.yaml, or conda.yaml mapped onto PyPI, ``-r`` files inlined
  because Ray installs the list from a file of its own) -> ``pip`` (``"pip_installer": "uv"`` ->
  ``uv``); ``--env-manager conda`` -> ``conda`` (``conda_export``: the conda.yaml without
  ``name``/``prefix``); ``--env-manager local`` -> the cluster's own Python.  The cluster's Python
  is used whatever version the env file names.
* Entrypoint: ``bash -c <the entry point's command>``, with the run's ``MLFLOW_*`` variables as
  ``env_vars``; the submission id is ``mlproj-<run id>``.
* Output is followed with ``tail_job_logs``; Ctrl-C calls ``stop_job``; SUCCEEDED / FAILED / STOPPED
  become FINISHED / FAILED / KILLED; ``--no-wait`` returns after submission.
"""
from __future__ import annotations

import os
import shlex
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlproj.backends import FAILED, FINISHED, KILLED, RUNNING, SCHEDULED, Launch
from mlproj.backends.remote import (
    JobState,
    Key,
    RemoteSubmittedRun,
    cancel_job,
    checked_at_submit,
    is_mapping,
    is_number,
    is_str,
    say,
    validate_config,
)
from mlproj.backends.signals import started
from mlproj.envs import envfiles
from mlproj.errors import BackendError, EnvError, one_line
from mlproj.tags import RAY_ADDRESS, RAY_RUNTIME_ENV, RAY_SUBMISSION_ID

STATUS_MAP = {
    'PENDING': SCHEDULED,
    'RUNNING': RUNNING,
    'SUCCEEDED': FINISHED,
    'FAILED': FAILED,
    'STOPPED': KILLED,
}

DEFAULT_EXCLUDES = ['.git', 'mlruns', '__pycache__']


validate = checked_at_submit


def _installer(value: Any) -> str:
    if value not in ('pip', 'uv'):
        raise ValueError('must be "pip" or "uv"')
    return value


def _resources(value: Any) -> dict:
    value = is_mapping(value)
    for v in value.values():
        is_number(v)
    return value


def _str_map(value: Any) -> dict:
    value = is_mapping(value)
    if not all(isinstance(v, str) for v in value.values()):
        raise ValueError('values must be strings')
    return value


CONFIG_KEYS = {
    'address': Key(is_str, 'the Ray dashboard address, e.g. "http://127.0.0.1:8265"'),
    'runtime_env': Key(is_mapping, 'a Ray runtime_env object merged into the generated one'),
    'pip_installer': Key(_installer, '"pip" or "uv"'),
    'entrypoint_num_cpus': Key(is_number, 'a number'),
    'entrypoint_num_gpus': Key(is_number, 'a number'),
    'entrypoint_memory': Key(lambda v: int(is_number(v)), 'bytes, an integer'),
    'entrypoint_resources': Key(_resources, 'an object of resource name -> number'),
    'metadata': Key(_str_map, 'an object of string -> string'),
    'poll_interval': Key(is_number, 'seconds, a number'),
}


# --------------------------------------------------------------------------------------------
# project environment -> runtime_env


def runtime_env_for(launch: Launch, config: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The job's runtime_env and a short label of how the project environment was mapped."""
    project, manager = launch.project, launch.env_manager
    kind, path = project.env.kind, project.env.path
    env: dict[str, Any] = {}
    label = 'cluster'
    if kind == 'docker':
        raise BackendError('docker_env projects cannot run on Ray; use -b kubernetes, or set '
                           '"runtime_env": {"image_uri": ...} and --env-manager local', 'ray backend')
    if manager != 'local' and kind in ('python', 'conda') and path is not None:
        if kind == 'python' and manager == 'conda':
            raise EnvError('a python_env project cannot be run with --env-manager conda', str(path))
        if manager == 'conda':
            env['conda'] = envfiles.conda_export(project)
            label = 'conda'
        else:
            _python, reqs = envfiles.pypi_requirements(project)
            if reqs:
                installer = config.get('pip_installer', 'pip')
                env[installer] = {'packages': reqs}
                label = installer
    user = dict(config.get('runtime_env') or {})
    user_vars = user.pop('env_vars', None) or {}
    if not isinstance(user_vars, dict):
        raise BackendError("key 'runtime_env': env_vars must be an object", 'ray backend config')
    excludes = list(DEFAULT_EXCLUDES) + _store_excludes(launch) + list(user.pop('excludes', None) or [])
    env.update(user)   # the user's own runtime_env keys (py_modules, image_uri, nsight, ...) win
    env.setdefault('working_dir', str(launch.project_dir))
    env['excludes'] = excludes
    env['env_vars'] = {**{str(k): str(v) for k, v in user_vars.items()}, **dict(launch.run_env)}
    return env, label


def _store_excludes(launch: Launch) -> list[str]:
    """Keep a local tracking store that lives inside the project out of the upload."""
    from urllib.parse import unquote, urlparse

    uri = launch.tracking_uri
    if uri.startswith('sqlite:///'):
        local = uri[len('sqlite:///'):]
    elif uri.startswith('file:'):
        local = unquote(urlparse(uri).path)
    else:
        return []
    try:
        rel = Path(local).resolve().relative_to(Path(launch.project_dir).resolve())
    except ValueError:
        return []
    return ['/' + rel.as_posix()] if str(rel) != '.' else []


# --------------------------------------------------------------------------------------------
# the job


def _redact(address: str) -> str:
    from mlproj.tracking import redact_uri

    return redact_uri(address)


class RayJob:
    def __init__(self, client: Any, submission_id: str, address: str) -> None:
        self.client = client
        self.submission_id = submission_id
        self.description = f"Ray job '{submission_id}'"
        self.address = address

    def state(self) -> JobState:
        info = self.client.get_job_info(self.submission_id)
        raw = str(getattr(info.status, 'value', info.status))
        status = STATUS_MAP.get(raw, RUNNING)
        detail = ''
        if status in (FAILED, KILLED):
            lines = [ln.strip() for ln in (info.message or '').splitlines() if ln.strip()]
            detail = raw + (f': {lines[0]}' if lines else '')
            if len(lines) > 1 and 'runtime_env' in lines[0]:  # the cause is at the end of Ray's trace
                detail += f' ... {lines[-1][:300]}'
        return JobState(status, getattr(info, 'driver_exit_code', None), detail)

    def follow_logs(self, ended: threading.Event) -> None:
        """Ray closes the log websocket once the job is over; ``ended`` only bounds the wait for that."""
        import asyncio
        import time

        written = 0

        async def consume() -> None:
            nonlocal written
            async for chunk in self.client.tail_job_logs(self.submission_id):
                sys.stdout.write(chunk)
                sys.stdout.flush()
                written += len(chunk)

        async def main() -> None:
            task = asyncio.ensure_future(consume())
            ended_at = None
            while not task.done():
                if ended.is_set():
                    ended_at = ended_at or time.monotonic()
                    if time.monotonic() - ended_at > 5.0:
                        task.cancel()
                        break
                await asyncio.wait([task], timeout=0.25)
            try:
                await task
            except asyncio.CancelledError:
                pass

        try:
            asyncio.run(main())
        except Exception as e:  # websocket refused/closed early: fall back to polling the whole log
            say(f'mlproj: warning: log stream of {self.description} failed ({one_line(e)}); polling instead')
            self._poll_logs(ended, written)

    def _poll_logs(self, ended: threading.Event, seen: int) -> None:
        while True:
            last = ended.is_set()
            text = self.client.get_job_logs(self.submission_id)
            if len(text) > seen:
                sys.stdout.write(text[seen:])
                sys.stdout.flush()
                seen = len(text)
            if last:
                return
            ended.wait(1.0)

    def stop(self) -> None:
        self.client.stop_job(self.submission_id)

    kill = stop  # Ray's stop already escalates to SIGKILL after its own grace period


def _client(address: str) -> Any:
    try:
        from ray.job_submission import JobSubmissionClient
    except ImportError:
        raise BackendError('the ray backend needs Ray: pip install "mlproj[ray]"') from None
    import logging

    from mlproj.settings import env_value

    if not env_value('MLPROJ_DEBUG'):  # Ray's INFO chatter ("Uploading package", "WebSocket closed")
        for name in list(logging.root.manager.loggerDict):
            if name == 'ray' or name.startswith('ray.'):
                logging.getLogger(name).setLevel(logging.WARNING)
    try:
        return JobSubmissionClient(address)
    except Exception as e:
        if 'ray[default]' in str(e):
            raise BackendError('the ray backend needs Ray\'s job SDK: pip install "mlproj[ray]" (ray[default])') \
                from None
        raise BackendError(f'cannot reach the Ray cluster: {one_line(e)}', _redact(address)) from None


def _submit(client: Any, address: str, **kwargs: Any) -> str:
    """``submit_job``, retried while a just-started head has no job agent yet (Ray: "try again later")."""
    import time

    deadline = time.monotonic() + 20
    while True:
        try:
            return client.submit_job(**kwargs)
        except Exception as e:
            if 'No available agent' in str(e) and time.monotonic() < deadline:
                time.sleep(0.5)
                continue
            raise BackendError(f'Ray refused the job: {one_line(e)}', _redact(address)) from None


def submit(launch: Launch) -> RemoteSubmittedRun:
    config = validate_config(launch.request.backend_config, CONFIG_KEYS, 'ray')
    address = config.get('address') or os.environ.get('RAY_ADDRESS')
    if not address:
        raise BackendError('no Ray cluster address: set "address" in the backend config or RAY_ADDRESS',
                           'ray backend config')
    runtime_env, label = runtime_env_for(launch, config)
    entrypoint = 'bash -c ' + shlex.quote(launch.command)
    submission_id = f'mlproj-{launch.run_id}'
    if launch.request.run_id:  # a resumed run may have been submitted before: submission ids are unique
        import time

        submission_id += f'-{int(time.time())}'
    client = _client(address)
    launch.tracker.set_tags(launch.run_id, {
        RAY_SUBMISSION_ID: submission_id,
        RAY_ADDRESS: _redact(address),
        RAY_RUNTIME_ENV: label,
    })
    say(f"=== Submitting Ray job '{submission_id}' to {_redact(address)} for run with ID '{launch.run_id}' ===")
    kwargs = {k: config[k] for k in ('entrypoint_num_cpus', 'entrypoint_num_gpus', 'entrypoint_memory',
                                     'entrypoint_resources') if k in config}
    metadata = {**config.get('metadata', {}), 'mlflow_run_id': launch.run_id,
                'mlflow_experiment_id': launch.experiment_id}
    job_id = _submit(client, address, entrypoint=entrypoint, runtime_env=runtime_env, submission_id=submission_id,
                     metadata=metadata, **kwargs)
    started()  # the job exists: a signal from here on cancels it (mlproj.backends.signals)
    # The working_dir is uploaded by now: the local checkout is no longer needed.
    launch.source.cleanup()
    say(f"=== Ray job '{job_id}' submitted ===")
    run = RemoteSubmittedRun(launch, RayJob(client, job_id, address),
                             poll_interval=float(config.get('poll_interval', 1.0)))
    if launch.request.synchronous:
        run.start()
    return run


def cancel_recorded(tags: Mapping[str, str]) -> str | None:
    """Stop the Ray job recorded in ``mlproj.ray.*`` (``mlproj ci cancel``).  The recorded address
    has no credentials: ``RAY_ADDRESS`` is used instead when it is the same address with them."""
    submission_id, recorded = tags.get(RAY_SUBMISSION_ID), tags.get(RAY_ADDRESS)
    if not submission_id or not recorded:
        return None
    env = os.environ.get('RAY_ADDRESS')
    address = env if env and _redact(env) == recorded else recorded
    return cancel_job(RayJob(_client(address), submission_id, address))
