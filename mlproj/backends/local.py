"""The local backend: prepare the environment, run the command under a supervisor.

* The prepared environment's tags (``mlflow.project.env``, ``mlproj.env.hash``, the manager's
  ``extra_tags`` such as ``mlproj.env.lock_sha256``) are set before the command starts, and its
  ``artifacts`` (the exact lock, ``mlproj/requirements.lock.txt``) are logged through
  ``mlproj.artifacts`` (a failure there is a warning: the run goes on).
* The child runs in the project directory, in a new session/process group, with the run's
  ``MLFLOW_*`` variables and the environment ``mlproj.childenv`` allows (``--pass-env`` adds
  names); its output goes straight to our stdout/stderr (no buffering).
* It is started by ``mlproj.supervisor`` (a stdlib process, a child subreaper on Linux, started
  ahead while the run is being created: ``prestart``):
  when mlproj dies, even by SIGKILL, the supervisor sees its control pipe close and kills every
  process of the run, ``setsid`` escapees included; when the command exits, what it left behind
  is terminated too.
* ``cancel()`` has the supervisor forward SIGTERM (or the signal we received) to the command's
  group and to any descendant outside it, waits a grace period (``MLPROJ_KILL_GRACE``, default
  10 s), then has it SIGKILL everything; the run ends KILLED.
* A monitor thread ends the run through ``mlproj.backends.lifecycle`` even if nobody calls
  ``wait()``: status, retries of a failing store (``mlproj.tracking.record_terminal_status``),
  the checkout's clean-up; if the store still fails,
  ``tracking_problem`` says so and the CLI exits 70.  While the command runs, a background thread
  ends runs left RUNNING by dead launchers of this host (``mlproj.stale``).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping

from mlproj.backends import FAILED, FINISHED, KILLED, Launch
from mlproj.backends.lifecycle import JobState, Lifecycle, checked_at_submit
from mlproj.backends.signals import started
from mlproj.envs import EnvContext, prepare
from mlproj.errors import BackendError, EnvError
from mlproj.tags import ENV_HASH, PROJECT_ENV

DEFAULT_GRACE = 10.0

validate = checked_at_submit


def _grace() -> float:
    from mlproj.settings import env_value

    return float(env_value('MLPROJ_KILL_GRACE'))


def child_environment(launch: Launch) -> dict[str, str]:
    """The run phase of the child-environment policy (``mlproj.childenv``) plus the run's variables."""
    from mlproj import childenv

    env = childenv.environment('run', tracking_uri=launch.tracking_uri, pass_env=launch.request.pass_env)
    # The run's own experiment id is authoritative; a leftover name would contradict it.
    env.pop('MLFLOW_EXPERIMENT_NAME', None)
    env.update(launch.run_env)
    return env


SUPERVISOR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'supervisor.py')


class Supervised:
    """The supervisor process of one run and the write end of its control pipe."""

    def __init__(self, proc: subprocess.Popen, ctl: int, command_pid: int) -> None:
        self.proc, self.ctl, self.command_pid = proc, ctl, command_pid
        self._lock = threading.Lock()

    def send(self, sig: int) -> None:
        with self._lock:
            if self.ctl < 0:
                return
            try:
                os.write(self.ctl, bytes([sig]))
            except OSError:
                pass

    def close(self) -> None:
        with self._lock:
            if self.ctl >= 0:
                os.close(self.ctl)
                self.ctl = -1


class LocalSubmittedRun(Lifecycle):
    """The command's supervisor, watched by a monitor thread; the end goes through ``Lifecycle.end``."""

    cancel_overrides_success = True  # a command that exits 0 on our SIGTERM was still cancelled

    def __init__(self, launch: Launch, supervised: Supervised, env_tag: str | None) -> None:
        super().__init__(launch)
        self.supervised = supervised
        self.command_proc = supervised.proc    # exits with the command's status
        self.command_pid = supervised.command_pid
        self.child_exit_code: int | None = None
        self._cancelled = threading.Event()  # set once a cancel has finished killing the group
        self._sweep_stop, self._sweep_lock = threading.Event(), threading.Lock()
        self._sweeper = _start_sweep(launch, self._sweep_stop, self._sweep_lock)
        self._monitor = threading.Thread(target=self._watch, name=f'mlproj-run-{launch.run_id}', daemon=True)
        self._monitor.start()

    # -- status ---------------------------------------------------------------------------
    def _watch(self) -> None:
        code = self.command_proc.wait()
        self.supervised.close()
        self.child_exit_code = code if code >= 0 else 128 - code
        if self._sweeper is not None:
            # a sweep still searching (a slow server) is abandoned, not waited for: it is
            # housekeeping and the next run repeats it; one in the middle of ending a stale run
            # finishes that run first (the write lock).
            self._sweep_stop.set()
            with self._sweep_lock:
                pass
        self.end(JobState(FINISHED if code == 0 else FAILED, self.child_exit_code))

    def ended_text(self, status: str) -> str:
        cancelled = ' (cancelled)' if status == KILLED else ''
        return f"the run's command exited with code {self.child_exit_code}{cancelled}"

    def wait(self, timeout: float | None = None) -> bool:
        self._done.wait(timeout)
        if self._done.is_set() and self.cancelled:
            self._cancelled.wait(timeout)  # leftovers of the group must be gone before we return
        return self._status == FINISHED

    # -- cancellation ---------------------------------------------------------------------
    def cancel(self, sig: int = signal.SIGTERM) -> None:
        if self._done.is_set() and not self.cancelled:
            return
        self.note_cancel(sig, kill_counts_as_term=False)
        try:
            # the supervisor exits once the command and everything it started are gone
            self.supervised.send(sig)
            deadline = time.monotonic() + (0 if sig == signal.SIGKILL else _grace())
            while time.monotonic() < deadline:
                if self.command_proc.poll() is not None:
                    break
                time.sleep(0.05)
            self.supervised.send(signal.SIGKILL)
            self._done.wait()
        finally:
            self._cancelled.set()


SERVER_SWEEP_DELAY = 1.0


def _start_sweep(launch: Launch, stop: threading.Event, write_lock: threading.Lock) -> threading.Thread | None:
    """End runs of this experiment left RUNNING by dead launchers, while the command runs.

    On a local sqlite store (the fast path) the search costs a millisecond and starts at once.
    On a tracking server it waits until the command has run ``SERVER_SWEEP_DELAY`` seconds: a
    search there costs ~0.1 s of the server's time, and a server with one worker would make a
    short run's own end-status call queue behind it."""
    from mlproj import stale

    if not stale.enabled():
        return None
    if launch.prepared is not None:  # a sweep's points share one experiment: its first point checks
        if launch.prepared.get('stale-checked'):
            return None
        launch.prepared['stale-checked'] = True
    delay = 0.0 if getattr(launch.tracker, 'fast', False) else SERVER_SWEEP_DELAY

    def sweep() -> None:
        if delay and stop.wait(delay):
            return  # the run ended first: nothing to do beside it
        try:
            for ended in stale.sweep(launch.tracker, [launch.experiment_id], exclude=launch.run_id, stop=stop,
                                     write_lock=write_lock):
                print(f'mlproj: ended stale run {ended.run_id} FAILED: {ended.reason}', file=sys.stderr, flush=True)
        except Exception as e:  # housekeeping must never disturb the run
            from mlproj.settings import env_value

            if env_value('MLPROJ_DEBUG'):
                print(f'mlproj: debug: stale-run check failed: {e}', file=sys.stderr)

    t = threading.Thread(target=sweep, name='mlproj-stale-sweep', daemon=True)
    t.start()
    return t


class Prestarted:
    """A supervisor started before its command is known (``mlproj.supervisor``): the runner starts
    one as a local run is being created in MLflow, so the supervisor's interpreter start-up runs
    beside the tracking calls instead of after them.  ``start`` hands it the command once;
    ``abort`` (a no-op after ``start``) lets it exit when the launch is given up."""

    def __init__(self) -> None:
        stdin = subprocess.DEVNULL if sys.stdin is None or _isatty(sys.stdin) else None
        ctl_r, self.ctl_w = os.pipe()
        self.status_r, status_w = os.pipe()
        cmd_r, self.cmd_w = os.pipe()
        argv = [sys.executable, '-I', '-S', SUPERVISOR, str(ctl_r), str(status_w), str(cmd_r), str(_grace())]
        try:
            # an empty environment: the command's own comes with it, as mlproj's policy filters it
            self.proc: subprocess.Popen | None = subprocess.Popen(
                argv, cwd='/', env={}, start_new_session=True, stdin=stdin, pass_fds=(ctl_r, status_w, cmd_r))
        except OSError:
            self.proc = None
            self._close()
            raise
        finally:
            for fd in (ctl_r, status_w, cmd_r):
                os.close(fd)

    def _close(self) -> None:
        for name in ('ctl_w', 'status_r', 'cmd_w'):
            fd = getattr(self, name)
            if fd >= 0:
                os.close(fd)
                setattr(self, name, -1)

    def abort(self) -> None:
        """Let the supervisor exit without a command (end of file on its pipes) and reap it."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        self._close()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def start(self, cwd: str, argv: list[str], env: Mapping[str, str], cleanup: list[str]) -> Supervised:
        """Send the command; its pid once it started, else EnvError (the supervisor is reaped)."""
        proc = self.proc
        if proc is None:
            raise EnvError(f'cannot start {argv[0]!r}: the supervisor is gone', cwd)
        fields = [os.fsencode(cwd), str(len(cleanup)).encode(), *map(os.fsencode, cleanup),
                  str(len(argv)).encode(), *map(os.fsencode, argv),
                  *(os.fsencode(k) + b'=' + os.fsencode(v) for k, v in env.items()), b'.']
        if any(b'\0' in f for f in fields):  # as subprocess refuses them ("embedded null byte")
            self.abort()
            raise EnvError(f'cannot start {argv[0]!r}: an argument or environment value contains a NUL byte', cwd)
        message = memoryview(b'\0'.join(fields) + b'\0')
        try:
            while message:
                message = message[os.write(self.cmd_w, message):]
        except OSError:
            pass  # the supervisor is gone: its (empty) status says so below
        os.close(self.cmd_w)
        self.cmd_w = -1
        reply = b''
        while chunk := os.read(self.status_r, 64):
            reply += chunk
        os.close(self.status_r)
        self.status_r = -1
        words = reply.split()
        if len(words) == 2 and words[0] == b'ok':
            self.proc, ctl = None, self.ctl_w
            self.ctl_w = -1
            return Supervised(proc, ctl, int(words[1]))
        self.abort()
        try:
            reason = os.strerror(int(words[1]))
        except (IndexError, ValueError):
            reason = f'the supervisor exited with code {proc.returncode}'
        raise EnvError(f'cannot start {argv[0]!r}: {reason}', cwd)


def prestart() -> Prestarted | None:
    """A supervisor for the next local run, or None when it cannot be started now (``spawn``
    then tries again and reports why)."""
    try:
        return Prestarted()
    except OSError:
        return None


def spawn(launch: Launch, argv: list[str], env: Mapping[str, str], cleanup: list[str] | None = None,
          prestarted: Prestarted | None = None) -> Supervised:
    """Start ``argv`` under ``mlproj.supervisor`` (``prestarted``'s when given); raises EnvError
    when the command cannot start."""
    cwd = os.path.abspath(launch.project_dir)
    if prestarted is None:
        try:
            prestarted = Prestarted()
        except OSError as e:  # the interpreter itself (a removed venv, a directory one may not enter)
            raise EnvError(f"cannot start the run's supervisor {sys.executable!r}: {e.strerror}", cwd) from None
    return prestarted.start(cwd, argv, env, list(cleanup or []))


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (ValueError, AttributeError):
        return False


def _log_env_artifacts(launch: Launch, files: dict) -> None:
    """Log the environment's files (its exact lock) as run artifacts (``mlproj.artifacts``).

    A store that refuses them is reported and the run goes on: the lock's hash is already a tag,
    and the run's own result matters more than its record."""
    if not files:
        return
    from mlproj.artifacts import log_file

    for artifact_path, local in files.items():
        try:
            log_file(launch.tracker, launch.run_id, local, artifact_path)
        except Exception as e:  # a store's own exception (MlflowClient fallback) included
            print(f'mlproj: warning: the environment lock was not logged as artifact {artifact_path}: {e}',
                  file=sys.stderr, flush=True)


def submit(launch: Launch) -> LocalSubmittedRun:
    ctx = EnvContext(
        docker_args=launch.request.docker_args,
        build_image=launch.request.build_image,
        tracking_uri=launch.tracking_uri,
        run_id=launch.run_id,
        experiment_id=launch.experiment_id,
        pass_env=tuple(launch.request.pass_env),
        env_lock=launch.request.env_lock,
    )
    memo = launch.prepared
    # a sweep prepares each environment once; docker's depends on the run (its container args)
    environment = memo.get(launch.env_manager) if memo is not None and launch.env_manager != 'docker' else None
    if environment is None:
        environment = prepare(launch.project, launch.env_manager, ctx)
        if memo is not None and launch.env_manager != 'docker':
            memo[launch.env_manager] = environment
    tags = {}
    if environment.tag:
        tags[PROJECT_ENV] = environment.tag
    if environment.hash:
        tags[ENV_HASH] = environment.hash
    tags.update(getattr(environment, 'extra_tags', None) or {})  # e.g. docker image uri/id
    if tags:
        launch.tracker.set_tags(launch.run_id, tags)
    _log_env_artifacts(launch, getattr(environment, 'artifacts', None) or {})
    argv, env = environment.argv(launch.command, child_environment(launch), launch.project_dir)
    from mlproj.color import status

    print(status(f"=== Running command '{launch.command}' in run with ID '{launch.run_id}' ===", tone='plain'),
          file=sys.stderr, flush=True)
    sys.stdout.flush()
    started()  # a signal from here on cancels the running command (mlproj.backends.signals)
    supervised = spawn(launch, argv, env, list(getattr(environment, 'cleanup_argv', None) or []),
                       prestarted=launch.prestarted)
    return LocalSubmittedRun(launch, supervised, environment.tag)


def cancel_recorded(tags: Mapping[str, str]) -> str | None:
    """Signal the launcher recorded in ``tags`` (``mlproj.stale``) when it provably still runs on
    this host: it cancels its run as on Ctrl-C (the command's group, then KILLED).  Waits up to
    the kill grace period plus 5 s for it to exit."""
    from mlproj import stale

    if not stale.alive(tags):
        return None
    pid = int(tags[stale.PID])
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return None
    except PermissionError as e:
        raise BackendError(f'cannot signal the launcher pid {pid}: {e.strerror}') from None
    deadline = time.monotonic() + _grace() + 5.0
    while stale.alive(tags) and time.monotonic() < deadline:
        time.sleep(0.1)
    if stale.alive(tags):
        return f'sent SIGTERM to launcher pid {pid}, which is still running'
    return f'stopped launcher pid {pid} (its run ended KILLED)'
