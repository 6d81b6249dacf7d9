"""``-b slurm``: run the entry point as a Slurm batch job.

* The project is copied to ``<shared_dir>/<run id>/project`` (``shared_dir``: backend config, else
  ``MLPROJ_SLURM_SHARED_DIR``, else ``~/.mlproj/slurm``; it must be visible from the compute nodes),
  so later edits or a removed checkout never change a queued job.
* The project's environment is prepared on the submitting host with the chosen env manager (as
  for a local run); its location must be on the shared filesystem too (``MLPROJ_CACHE_DIR``).
* ``<shared_dir>/<run id>/job.sbatch`` is generated: ``#SBATCH`` lines from the backend config
  (partition, time, nodes, ntasks, cpus_per_task, mem, gpus, account, qos, constraint, job_name and
  any ``sbatch_args``), every value validated; the run's variables exported with ``shlex.quote``;
  optional ``setup`` shell lines (e.g. ``module load``); then the entry point's command.
* ``sbatch --parsable`` submits it (the submitting environment is exported to the job, so tokens
  such as ``MLFLOW_TRACKING_TOKEN`` reach it without being written to disk); the job id is the
  tag ``mlproj.slurm.job_id``.
* State: ``squeue``; once the job left the queue, ``sacct`` and, when accounting is disabled,
  ``scontrol show job``.  The output file ``slurm-<id>.out`` is streamed.  Ctrl-C -> ``scancel``.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
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
    is_bool,
    is_number,
    is_str,
    is_str_list,
    say,
    validate_config,
)
from mlproj.backends.signals import started
from mlproj.errors import BackendError, one_line
from mlproj.tags import ENV_HASH, PROJECT_ENV, SLURM_JOB_ID, SLURM_OUTPUT, SLURM_SCRIPT

WHERE = 'slurm backend config'

validate = checked_at_submit


def _matching(pattern: str, help: str) -> Key:  # noqa: A002
    rx = re.compile(pattern)

    def check(value: Any) -> str:
        if isinstance(value, bool):
            raise ValueError('must be a string or number')
        text = str(value) if isinstance(value, int) else value
        if not isinstance(text, str) or not rx.fullmatch(text):
            raise ValueError('has an invalid format')
        return text
    return Key(check, help)


def _path(value: Any) -> str:
    value = is_str(value)
    path = os.path.expanduser(value)
    if not os.path.isabs(path):
        raise ValueError('must be an absolute path')
    if re.search(r'[\s\'"\\%#]', path):
        raise ValueError('must not contain whitespace, quotes, backslashes, % or #')
    return path


_SBATCH_ARG = re.compile(r'--?[A-Za-z][A-Za-z0-9-]*(=[^\s\'"\\]*)?')


def _sbatch_args(value: Any) -> list[str]:
    items = is_str_list(value)
    for i, item in enumerate(items):
        if not _SBATCH_ARG.fullmatch(item):
            raise ValueError(f'item {i} {item!r} is not a single --option[=value] without spaces or quotes')
        if item.split('=', 1)[0] in ('--output', '-o', '--error', '-e', '--chdir', '-D', '--parsable', '--wrap'):
            raise ValueError(f'item {i} {item!r} sets an option mlproj manages itself')
    return items


def _setup(value: Any) -> list[str]:
    items = is_str_list(value)
    for i, item in enumerate(items):
        if '\n' in item or '\r' in item or '\0' in item:
            raise ValueError(f'item {i} must be a single line')
    return items


_NAME = r'[A-Za-z0-9_.+-]{1,128}'
CONFIG_KEYS = {
    'shared_dir': Key(_path, 'an absolute path on a filesystem shared with the compute nodes'),
    'workdir': Key(_path, 'an absolute path (alias of shared_dir)'),
    'partition': _matching(rf'{_NAME}(,{_NAME})*', 'a partition name, or several separated by commas'),
    'time': _matching(r'\d+|\d+:\d{1,2}(:\d{1,2})?|\d+-\d{1,2}(:\d{1,2}(:\d{1,2})?)?|UNLIMITED|INFINITE',
                      'a Slurm time limit: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS'),
    'nodes': _matching(r'\d{1,6}(-\d{1,6})?', 'a node count or a min-max range'),
    'ntasks': _matching(r'\d{1,7}', 'a positive integer'),
    'cpus_per_task': _matching(r'\d{1,5}', 'a positive integer'),
    'mem': _matching(r'\d{1,9}[KMGT]?', 'a memory size such as 4000 (MB) or 16G'),
    'gpus': _matching(r'([A-Za-z0-9_.-]{1,64}:)?\d{1,4}', 'a GPU count such as 2 or a1000:2'),
    'account': _matching(_NAME, 'an account name'),
    'qos': _matching(_NAME, 'a QOS name'),
    'constraint': _matching(r'[A-Za-z0-9_.,&|*\[\]()-]{1,256}', 'a feature constraint expression'),
    'job_name': _matching(_NAME, 'letters, digits and _ . + -'),
    'sbatch_args': Key(_sbatch_args, 'a list of extra sbatch options such as ["--exclusive", "--reservation=r1"]'),
    'setup': Key(_setup, 'a list of shell lines run before the entry point, e.g. ["module load cuda"]'),
    'poll_interval': Key(is_number, 'seconds between squeue calls, a number'),
    'keep_project': Key(is_bool, 'true to keep the project copy after the job ended'),
}
OPTION_OF = {'partition': '--partition', 'time': '--time', 'nodes': '--nodes', 'ntasks': '--ntasks',
             'cpus_per_task': '--cpus-per-task', 'mem': '--mem', 'gpus': '--gpus', 'account': '--account',
             'qos': '--qos', 'constraint': '--constraint'}

STATE_MAP = {
    'PENDING': SCHEDULED, 'CONFIGURING': SCHEDULED, 'REQUEUED': SCHEDULED, 'REQUEUE_HOLD': SCHEDULED,
    'REQUEUE_FED': SCHEDULED, 'RESV_DEL_HOLD': SCHEDULED,
    'RUNNING': RUNNING, 'COMPLETING': RUNNING, 'SUSPENDED': RUNNING, 'STAGE_OUT': RUNNING, 'SIGNALING': RUNNING,
    'RESIZING': RUNNING, 'STOPPED': RUNNING,
    'COMPLETED': FINISHED,
    'CANCELLED': KILLED,
    'FAILED': FAILED, 'TIMEOUT': FAILED, 'NODE_FAIL': FAILED, 'OUT_OF_MEMORY': FAILED, 'BOOT_FAIL': FAILED,
    'DEADLINE': FAILED, 'PREEMPTED': FAILED, 'SPECIAL_EXIT': FAILED, 'REVOKED': FAILED,
}
TERMINAL_STATES = {k for k, v in STATE_MAP.items() if v in (FINISHED, FAILED, KILLED)}
_ENV_NAME = re.compile(r'[A-Za-z_][A-Za-z0-9_]*')


# --------------------------------------------------------------------------------------------
# the batch script


def shared_dir(config: dict[str, Any]) -> Path:
    if config.get('shared_dir') or config.get('workdir'):
        return Path(config.get('shared_dir') or config['workdir'])
    from mlproj.settings import env_value

    raw = env_value('MLPROJ_SLURM_SHARED_DIR')
    if raw:
        try:
            return Path(_path(raw))
        except ValueError as e:
            raise BackendError(f'MLPROJ_SLURM_SHARED_DIR {e}', raw) from None
    return Path(os.path.expanduser('~/.mlproj/slurm'))


def _has_credentials(value: str) -> bool:
    from mlproj.tracking import redact_uri

    return '://' in value and redact_uri(value) != value


def export_lines(base: dict[str, str], env: dict[str, str], run_env: dict[str, str]) -> list[str]:
    """``export`` lines for the run's variables and what the environment's activation changed."""
    lines: list[str] = []
    wanted = dict(run_env)
    for k, v in env.items():
        if base.get(k) != v:
            wanted[k] = v
    for k in sorted(wanted):
        v = wanted[k]
        if not _ENV_NAME.fullmatch(k):
            continue
        old = base.get(k)
        if _has_credentials(v):
            lines.append(f'# {k}: passed through the submitting environment (it holds credentials)')
        elif old and v.endswith(os.pathsep + old) and k.endswith('PATH'):
            prefix = v[:-len(old) - 1]
            lines.append(f'export {k}={shlex.quote(prefix)}"${{{k}:+:${k}}}"')  # prepend, keep the node's own
        else:
            lines.append(f'export {k}={shlex.quote(v)}')
    for k in sorted(set(base) - set(env)):
        if _ENV_NAME.fullmatch(k):
            lines.append(f'unset {k}')
    return lines


def render_script(*, config: dict[str, Any], job_name: str, job_dir: Path, project_dir: Path,
                  exports: list[str], argv: list[str], run_id: str, source: str) -> str:
    lines = ['#!/bin/bash', f'#SBATCH --job-name={config.get("job_name") or job_name}',
             f'#SBATCH --output={job_dir}/slurm-%j.out', f'#SBATCH --chdir={project_dir}']
    for key, option in OPTION_OF.items():
        if key in config:
            lines.append(f'#SBATCH {option}={config[key]}')
    lines += [f'#SBATCH {arg}' for arg in config.get('sbatch_args', [])]
    lines += [f'# Generated by mlproj for MLflow run {run_id}', f'# source: {" ".join(source.split())[:300]}',
              *exports, *config.get('setup', []), 'exec ' + shlex.join(argv), '']
    return '\n'.join(lines)


# --------------------------------------------------------------------------------------------
# talking to Slurm


def _tool(name: str) -> str:
    found = shutil.which(name)
    if not found:
        raise BackendError(f'{name} not found on PATH: install the Slurm client tools (slurm-client) and '
                           'point SLURM_CONF at the cluster')
    return found


def _call(argv: list[str], timeout: float = 60.0, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                              env=env)
    except subprocess.TimeoutExpired:
        raise BackendError(f'{os.path.basename(argv[0])} did not answer within {timeout:.0f} s') from None
    except OSError as e:
        raise BackendError(f'cannot run {argv[0]!r}: {e.strerror}') from None


def _last_error(proc: subprocess.CompletedProcess) -> str:
    lines = [ln.strip() for ln in (proc.stderr or proc.stdout or '').splitlines() if ln.strip()]
    text = lines[-1] if lines else f'exit code {proc.returncode}'
    return re.sub(r'^(sbatch|squeue|sacct|scontrol|scancel): (error: )?', '', text)


def _exit_code(text: str) -> int | None:
    m = re.fullmatch(r'(\d+):(\d+)', text.strip())
    if not m:
        return None
    code, sig = int(m[1]), int(m[2])
    return code if code or not sig else 128 + sig


class SlurmJob:
    def __init__(self, job_id: str, output: Path) -> None:
        self.job_id = job_id
        self.output = output
        self.description = f'Slurm job {job_id}'

    # -- state ----------------------------------------------------------------------------
    def _squeue(self) -> str | None:
        proc = _call([_tool('squeue'), '--noheader', '--states=all', f'--jobs={self.job_id}', '--format=%T'])
        if proc.returncode != 0:
            if 'Invalid job id' in (proc.stderr or ''):
                return None
            raise BackendError(f'squeue failed: {_last_error(proc)}')
        states = [ln.strip() for ln in proc.stdout.splitlines() if ln.strip()]
        return states[0].split()[0] if states else None

    def _sacct(self) -> tuple[str, int | None, str] | None:
        if not shutil.which('sacct'):
            return None
        proc = _call(['sacct', '--noheader', '--parsable2', '--allocations', f'--jobs={self.job_id}',
                      '--format=State,ExitCode'])
        if proc.returncode != 0 or not proc.stdout.strip():
            return None  # e.g. "Slurm accounting storage is disabled"
        state, _, code = proc.stdout.strip().splitlines()[0].partition('|')
        return state.split()[0], _exit_code(code), ''

    def _scontrol(self) -> tuple[str, int | None, str] | None:
        proc = _call([_tool('scontrol'), 'show', 'job', '--oneliner', self.job_id])
        if proc.returncode != 0:
            return None
        fields = dict(f.split('=', 1) for f in proc.stdout.split() if '=' in f)
        if 'JobState' not in fields:
            return None
        reason = fields.get('Reason', 'None')
        return fields['JobState'], _exit_code(fields.get('ExitCode', '')), '' if reason == 'None' else reason

    def state(self) -> JobState:
        raw = self._squeue()
        if raw is not None and raw not in TERMINAL_STATES:
            return JobState(STATE_MAP.get(raw, RUNNING), None, raw)
        final = self._sacct() or self._scontrol()
        if final is None:
            if raw is None:
                raise BackendError(f'job {self.job_id} is unknown to squeue, sacct and scontrol')
            final = (raw, None, '')
        state, code, reason = final
        status = STATE_MAP.get(state, FAILED if state in TERMINAL_STATES else RUNNING)
        if status == RUNNING and raw in TERMINAL_STATES:
            status = STATE_MAP[raw]
        detail = state + (f' ({reason})' if reason else '') + (f', exit code {code}' if code is not None else '')
        return JobState(status, code, detail)

    # -- output ---------------------------------------------------------------------------
    def follow_logs(self, ended: threading.Event) -> None:
        out = getattr(sys.stdout, 'buffer', None)
        pos = 0
        settled = 0
        while True:
            last = ended.is_set()
            try:
                with open(self.output, 'rb') as f:
                    f.seek(pos)
                    data = f.read()
            except FileNotFoundError:
                data = b''
            if data:
                pos += len(data)
                if out is not None:
                    out.write(data)
                else:
                    sys.stdout.write(data.decode('utf-8', 'replace'))
                sys.stdout.flush()
            if last:
                settled += 1
                if settled >= 3 or (data == b'' and settled >= 2):  # shared filesystems lag a little
                    return
                time.sleep(0.2)
            else:
                ended.wait(0.1)

    # -- cancellation ---------------------------------------------------------------------
    def stop(self) -> None:
        proc = _call([_tool('scancel'), self.job_id])
        if proc.returncode != 0:
            raise BackendError(f'scancel failed: {_last_error(proc)}')

    def kill(self) -> None:
        proc = _call([_tool('scancel'), '--signal=KILL', '--full', self.job_id])
        if proc.returncode != 0:
            self.stop()


class SlurmSubmittedRun(RemoteSubmittedRun):
    def __init__(self, launch: Launch, job: SlurmJob, *, job_dir: Path, keep_project: bool, poll: float) -> None:
        super().__init__(launch, job, poll_interval=poll)
        self.job_dir = job_dir
        self.keep_project = keep_project

    def on_finished(self, state: JobState) -> None:
        if not self.keep_project:
            shutil.rmtree(self.job_dir / 'project', ignore_errors=True)


# --------------------------------------------------------------------------------------------
# submission


def _copy_project(src: Path, dst: Path, tracking_uri: str) -> None:
    from urllib.parse import unquote, urlparse

    store: Path | None = None
    if tracking_uri.startswith('sqlite:///'):
        store = Path(tracking_uri[len('sqlite:///'):])
    elif tracking_uri.startswith('file:'):
        store = Path(unquote(urlparse(tracking_uri).path))

    def ignore(directory: str, names: list[str]) -> set[str]:
        skip = {n for n in names if n in ('.git', 'mlruns', '__pycache__')}
        if store is not None:
            skip |= {n for n in names if os.path.join(directory, n) == str(store)}
        return skip

    try:
        shutil.copytree(src, dst, symlinks=True, ignore=ignore)
    except (OSError, shutil.Error) as e:
        raise BackendError(f'cannot copy the project to the shared directory: {one_line(e)}', str(dst)) from None


def _job_name(launch: Launch) -> str:
    raw = launch.project.name or launch.project_dir.name or 'project'
    return 'mlproj-' + (re.sub(r'[^A-Za-z0-9_.+-]+', '-', raw).strip('-') or 'project')[:100]


def submit(launch: Launch) -> SlurmSubmittedRun:
    from mlproj.backends.local import child_environment
    from mlproj.envs import EnvContext, prepare

    config = validate_config(launch.request.backend_config, CONFIG_KEYS, 'slurm')
    if launch.project.env.kind == 'docker' or launch.env_manager == 'docker':
        raise BackendError('docker_env projects cannot run on Slurm; use -b kubernetes, or run the image '
                           'yourself from a setup line', WHERE)
    sbatch = _tool('sbatch')
    root = shared_dir(config)
    job_dir = root / launch.run_id
    if job_dir.exists():  # a resumed run (--run-id) submitted again
        job_dir = root / f'{launch.run_id}-{int(time.time())}'
    project_copy = job_dir / 'project'
    try:
        job_dir.mkdir(parents=True, mode=0o700)
    except OSError as e:
        raise BackendError(f'cannot create the job directory: {e.strerror}', str(job_dir)) from None
    submitted = False
    try:
        _copy_project(launch.project_dir, project_copy, launch.tracking_uri)
        ctx = EnvContext(docker_args=launch.request.docker_args, build_image=launch.request.build_image,
                         tracking_uri=launch.tracking_uri, run_id=launch.run_id, experiment_id=launch.experiment_id)
        environment = prepare(launch.project, launch.env_manager, ctx)
        base = child_environment(launch)
        argv, env = environment.argv(launch.command, dict(base), project_copy)
        script = render_script(config=config, job_name=_job_name(launch), job_dir=job_dir, project_dir=project_copy,
                               exports=export_lines(base, env, dict(launch.run_env)), argv=argv,
                               run_id=launch.run_id, source=launch.source.source_name or launch.source.uri)
        script_path = job_dir / 'job.sbatch'
        script_path.write_text(script, encoding='utf-8')
        tags = {SLURM_SCRIPT: str(script_path)}
        if environment.tag:
            tags[PROJECT_ENV] = environment.tag
        if environment.hash:
            tags[ENV_HASH] = environment.hash
        say(f"=== Submitting {script_path} to Slurm for run with ID '{launch.run_id}' ===")
        proc = _call([sbatch, '--parsable', str(script_path)], timeout=120, env=base)
        if proc.returncode != 0:
            raise BackendError(f'sbatch failed: {_last_error(proc)}', str(script_path))
        job_id = proc.stdout.strip().splitlines()[-1].split(';')[0].strip() if proc.stdout.strip() else ''
        if not job_id.isdigit():
            raise BackendError(f'sbatch printed no job id: {proc.stdout.strip()[:200]!r}', str(script_path))
        submitted = True
        started()  # the job is queued: a signal from here on cancels it (mlproj.backends.signals)
    finally:
        if not submitted:
            shutil.rmtree(job_dir, ignore_errors=True)
    launch.source.cleanup()  # the job runs from the copy
    output = job_dir / f'slurm-{job_id}.out'
    say(f'=== Slurm job {job_id} submitted; output: {output} ===')
    try:  # one tracking call for all tags (a remote tracking server is the slowest part of submitting)
        launch.tracker.set_tags(launch.run_id, {**tags, SLURM_JOB_ID: job_id,
                                                SLURM_OUTPUT: str(output)})
    except BaseException:
        _call([_tool('scancel'), job_id])
        raise
    run = SlurmSubmittedRun(launch, SlurmJob(job_id, output), job_dir=job_dir,
                            keep_project=bool(config.get('keep_project', False)),
                            poll=float(config.get('poll_interval', 1.0)))
    if launch.request.synchronous:
        run.start()
    return run



def cancel_recorded(tags: Mapping[str, str]) -> str | None:
    """``scancel`` the job recorded in ``mlproj.slurm.job_id`` (``mlproj ci cancel``)."""
    job_id = tags.get(SLURM_JOB_ID, '')
    if not job_id.isdigit():
        return None
    return cancel_job(SlurmJob(job_id, Path(tags.get(SLURM_OUTPUT, ''))))
