"""``-b ray``: submit the project as a Ray job through Ray's Job Submission client.

* Address: backend-config ``address`` or ``RAY_ADDRESS`` (the dashboard, e.g. ``http://head:8265``).
* The checked-out project directory is the job's ``working_dir`` (Ray uploads it at submission;
  ``.git``, ``mlruns`` and ``__pycache__`` are excluded).
* The project's environment becomes the job's runtime environment: ``python_env.yaml`` (or the
  ``pip:`` part of ``conda.yaml``) -> ``pip`` (``"pip_installer": "uv"`` -> ``uv``); ``--env-manager
  conda`` -> ``conda``; ``--env-manager local`` -> the cluster's own Python.
* Entrypoint: ``bash -c <the entry point's command>``, with the run's ``MLFLOW_*`` variables as
  ``env_vars``; the submission id is ``mlproj-<run id>``.
* Output is followed with ``tail_job_logs``; Ctrl-C calls ``stop_job``; SUCCEEDED / FAILED / STOPPED
  become FINISHED / FAILED / KILLED; ``--no-wait`` returns after submission.
"""
from __future__ import annotations

import os
import re
import shlex
import sys
import threading
from pathlib import Path
from typing import Any

from mlproj.backends import FAILED, FINISHED, KILLED, RUNNING, SCHEDULED, Launch
from mlproj.backends.remote import (
    JobState,
    Key,
    RemoteSubmittedRun,
    is_mapping,
    is_number,
    is_str,
    one_line,
    say,
    validate_config,
)
from mlproj.errors import BackendError, EnvError

STATUS_MAP = {
    'PENDING': SCHEDULED,
    'RUNNING': RUNNING,
    'SUCCEEDED': FINISHED,
    'FAILED': FAILED,
    'STOPPED': KILLED,
}

DEFAULT_EXCLUDES = ['.git', 'mlruns', '__pycache__']


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


def _read_yaml(path: Path, what: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(path.read_text(encoding='utf-8'))
    except OSError as e:
        raise EnvError(f'cannot read {what}: {e.strerror}', str(path)) from None
    except yaml.YAMLError as e:
        mark = getattr(e, 'problem_mark', None)
        where = f'{path}:{mark.line + 1}:{mark.column + 1}' if mark else str(path)
        raise EnvError(f'{what} is not valid YAML', where) from None


def _expand_requirements(items: list[Any], base: Path, where: str, depth: int = 0) -> list[str]:
    """Requirement strings, with ``-r file`` expanded (Ray writes the list to a file elsewhere)."""
    out: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise EnvError(f'dependency {item!r} must be a string', where)
        text = item.strip()
        if text.startswith(('-r ', '--requirement ', '-r\t')) and depth < 5:
            ref = base / text.split(None, 1)[1].strip()
            try:
                lines = ref.read_text(encoding='utf-8').splitlines()
            except OSError as e:
                raise EnvError(f'cannot read requirements file {ref.name!r}: {e.strerror}', where) from None
            lines = [ln.split(' #', 1)[0].strip() for ln in lines]
            out += _expand_requirements([ln for ln in lines if ln and not ln.startswith('#')], ref.parent,
                                        str(ref), depth + 1)
        elif text:
            out.append(text)
    return out


_SKIP = {'pip', 'python', 'setuptools', 'wheel'}


def _conda_to_pip(spec: dict, path: Path) -> list[str]:
    """The PyPI requirements of a conda.yaml: its ``pip:`` list plus plain ``name[=version]`` packages."""
    deps = spec.get('dependencies') or []
    if not isinstance(deps, list):
        raise EnvError('conda.yaml "dependencies" must be a list', str(path))
    out: list[str] = []
    for dep in deps:
        if isinstance(dep, dict):
            out += _expand_requirements(list(dep.get('pip') or []), path.parent, str(path))
        elif isinstance(dep, str):
            req = _conda_requirement(dep)
            if req:
                out.append(req)
    return out


_CONDA_SPEC = re.compile(r'^(?P<name>[A-Za-z0-9_.\-]+)\s*(?P<op>==|>=|<=|!=|>|<|=)?\s*(?P<ver>[^=\s]*)')


def _conda_requirement(dep: str) -> str | None:
    """``name=1.2`` (conda: any 1.2.x) -> ``name==1.2.*``; ``name>=1`` kept; build strings dropped."""
    m = _CONDA_SPEC.match(dep.split('::')[-1].strip())
    if not m or m['name'].lower() in _SKIP:
        return None
    op, ver = m['op'] or '', m['ver'] or ''
    if not ver:
        return m['name']
    if op == '=':
        return f"{m['name']}=={ver}" if ver.endswith('*') else f"{m['name']}=={ver}.*"
    return f"{m['name']}{op}{ver}"


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
        spec = _read_yaml(path, 'environment file') or {}
        if not isinstance(spec, dict):
            raise EnvError('environment file must be a mapping', str(path))
        if manager == 'conda':
            conda = {k: v for k, v in spec.items() if k not in ('name', 'prefix')}
            env['conda'] = conda
            label = 'conda'
        else:
            if kind == 'python':
                reqs = [r for r in _expand_requirements(list(spec.get('build_dependencies') or []), path.parent,
                                                        str(path)) if r.lower() not in _SKIP]
                reqs += _expand_requirements(list(spec.get('dependencies') or []), path.parent, str(path))
            else:
                reqs = _conda_to_pip(spec, path)
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

    if not os.environ.get('MLPROJ_DEBUG'):  # Ray's INFO chatter ("Uploading package", "WebSocket closed")
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
        'mlproj.ray.submission_id': submission_id,
        'mlproj.ray.address': _redact(address),
        'mlproj.ray.runtime_env': label,
    })
    say(f"=== Submitting Ray job '{submission_id}' to {_redact(address)} for run with ID '{launch.run_id}' ===")
    kwargs = {k: config[k] for k in ('entrypoint_num_cpus', 'entrypoint_num_gpus', 'entrypoint_memory',
                                     'entrypoint_resources') if k in config}
    metadata = {**config.get('metadata', {}), 'mlflow_run_id': launch.run_id,
                'mlflow_experiment_id': launch.experiment_id}
    job_id = _submit(client, address, entrypoint=entrypoint, runtime_env=runtime_env, submission_id=submission_id,
                     metadata=metadata, **kwargs)
    # The working_dir is uploaded by now: the local checkout is no longer needed.
    launch.source.cleanup()
    say(f"=== Ray job '{job_id}' submitted ===")
    run = RemoteSubmittedRun(launch, RayJob(client, job_id, address),
                             poll_interval=float(config.get('poll_interval', 1.0)))
    if launch.request.synchronous:
        run.start()
    return run
