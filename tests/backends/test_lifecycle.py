"""The shared run lifecycle (mlproj.backends.lifecycle), the remote run on it, the signal wait and
the dispatch of ``mlproj ci cancel`` -- in process, with fakes: no engine, no store, no server."""
from __future__ import annotations

import os
import signal
import threading
import time
from types import SimpleNamespace

import pytest

from mlproj.backends import FAILED, FINISHED, KILLED, RUNNING, SCHEDULED
from mlproj.backends.lifecycle import Backoff, JobState, Lifecycle, settle, watch
from mlproj.backends.remote import RemoteSubmittedRun
from mlproj.backends.signals import Interrupted, Signals, started
from mlproj.errors import BackendError
from mlproj.tracking import RunRecord


class FakeTracker:
    def __init__(self, failures: int = 0) -> None:
        self.runs: dict[str, RunRecord] = {}
        self.failures = failures
        self.statuses: list[tuple[str, str]] = []

    def add(self, run_id: str, tags: dict | None = None, status: str = RUNNING) -> str:
        self.runs[run_id] = RunRecord(run_id, '0', status, dict(tags or {}))
        return run_id

    def get_run(self, run_id: str) -> RunRecord:
        return self.runs[run_id]

    def set_status(self, run_id: str, status: str) -> None:
        if self.failures:
            self.failures -= 1
            raise OSError('store down')
        self.runs[run_id].status = status
        self.statuses.append((run_id, status))


class FakeSource:
    def __init__(self) -> None:
        self.cleanups = 0

    def cleanup(self) -> None:
        self.cleanups += 1


def fake_launch(tracker: FakeTracker | None = None, run_id: str = 'r1') -> SimpleNamespace:
    tracker = tracker or FakeTracker()
    tracker.add(run_id)
    return SimpleNamespace(run_id=run_id, tracker=tracker, source=FakeSource())


@pytest.mark.parametrize('status, code, cancel, override, expected', [
    (FINISHED, 0, None, False, (FINISHED, 0)),
    (FAILED, 3, None, False, (FAILED, 3)),
    (FAILED, None, None, False, (FAILED, 1)),
    (FAILED, 0, None, False, (FAILED, 1)),            # an engine that says FAILED with code 0 still failed
    (KILLED, None, None, False, (KILLED, 143)),       # cancelled by someone else
    (FAILED, 137, signal.SIGINT, False, (KILLED, 130)),
    (KILLED, None, signal.SIGTERM, False, (KILLED, 143)),
    (FINISHED, 0, signal.SIGTERM, False, (FINISHED, 0)),  # the job finished before the cancel landed
    (FINISHED, 0, signal.SIGTERM, True, (KILLED, 143)),   # local: a command exiting 0 on SIGTERM
    (FINISHED, 0, signal.SIGKILL, True, (KILLED, 137)),
])
def test_settle_maps_what_was_observed_to_status_and_exit_code(status, code, cancel, override, expected):
    assert settle(status, code, cancel, cancel_overrides_success=override) == expected


class Recorded(Lifecycle):
    def __init__(self, launch) -> None:
        super().__init__(launch)
        self.calls: list[str] = []

    def before_record(self, final, context):
        self.calls.append(f'before {final.status} {context}')

    def on_finished(self, final):
        self.calls.append('finished')
        super().on_finished(final)


def test_end_happens_once_in_order_whoever_gets_there_first():
    launch = fake_launch()
    run = Recorded(launch)
    barrier = threading.Barrier(4)

    def end(state):
        barrier.wait()
        run.end(state, 'ctx')

    threads = [threading.Thread(target=end, args=(JobState(s, 2),)) for s in (FAILED, FAILED, FAILED, FAILED)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert run.calls == ['before FAILED ctx', 'finished']
    assert launch.tracker.statuses == [('r1', FAILED)] and launch.source.cleanups == 1
    assert run.wait(0) is False and run.get_status() == FAILED and run.exit_code == 2
    run.end(JobState(FINISHED, 0))  # too late: nothing changes
    assert run.get_status() == FAILED and launch.tracker.statuses == [('r1', FAILED)]


def test_a_store_that_stays_down_is_a_tracking_problem_and_the_run_still_ends(monkeypatch):
    monkeypatch.setenv('MLPROJ_TRACKING_RETRY_SECONDS', '0')
    launch = fake_launch(FakeTracker(failures=100))
    run = Lifecycle(launch)
    run.end(JobState(FAILED, 3))
    assert run.tracking_problem is not None and run.tracking_problem.endswith('the job ended FAILED (exit code 3)')
    assert run.wait(0) is False and launch.source.cleanups == 1


def test_a_store_that_comes_back_is_retried(monkeypatch):
    monkeypatch.setenv('MLPROJ_TRACKING_RETRY_SECONDS', '5')
    launch = fake_launch(FakeTracker(failures=1))
    run = Lifecycle(launch)
    run.end(JobState(FINISHED, 0))
    assert run.tracking_problem is None and launch.tracker.statuses == [('r1', FINISHED)]


def test_watch_returns_the_terminal_state_and_reports_each_one():
    states = iter([JobState(SCHEDULED), JobState(RUNNING), JobState(FINISHED, 0)])
    seen: list[str] = []
    got = watch(lambda: next(states), lambda s: s.status == FINISHED, wake=threading.Event(),
                backoff=Backoff(0.01), on_state=lambda s: seen.append(s.status))
    assert got == JobState(FINISHED, 0) and seen == [SCHEDULED, RUNNING, FINISHED]


def test_watch_gives_up_after_the_lost_timeout_and_without_one_lets_the_error_out(capsys):
    def poll():
        raise OSError('connection refused')

    started = time.monotonic()
    got = watch(poll, lambda s: True, wake=threading.Event(), backoff=Backoff(0.02), lost_timeout=0.1,
                lost=lambda e, t: JobState(FAILED, 69, f'lost: {e}'), description='engine job 7')
    assert got == JobState(FAILED, 69, 'lost: connection refused') and time.monotonic() - started >= 0.1
    assert capsys.readouterr().err.count('cannot get the state of engine job 7: connection refused') == 1
    with pytest.raises(OSError):
        watch(poll, lambda s: True, wake=threading.Event(), backoff=Backoff(0.02))


def test_watch_stops_at_the_deadline_or_when_done():
    started = time.monotonic()
    assert watch(lambda: RUNNING, lambda s: False, wake=threading.Event(), backoff=Backoff(10.0),
                 deadline=time.monotonic() + 0.1) is None
    assert time.monotonic() - started < 2
    done = threading.Event()
    done.set()
    assert watch(lambda: RUNNING, lambda s: False, wake=threading.Event(), backoff=Backoff(10.0), done=done) is None


def test_backoff_grows_to_its_maximum_and_resets():
    b = Backoff(1.0, 2.0, 5.0)
    seen = []
    for _ in range(4):
        seen.append(b.current)
        b.grow()
    b.reset()
    assert seen == [1.0, 2.0, 4.0, 5.0] and b.current == 1.0


class FakeJob:
    """A remote engine's job: reports ``states`` in turn (the last one forever); ``stop`` makes it
    report ``after_stop`` when given."""

    description = 'fake job 1'

    def __init__(self, *states: JobState, after_stop: JobState | None = None) -> None:
        self.states = list(states)
        self.after_stop = after_stop
        self.calls: list[str] = []

    def state(self) -> JobState:
        if len(self.states) > 1:
            return self.states.pop(0)
        return self.states[0]

    def follow_logs(self, ended: threading.Event) -> None:
        ended.wait(5)

    def stop(self) -> None:
        self.calls.append('stop')
        if self.after_stop is not None:
            self.states = [self.after_stop]

    def kill(self) -> None:
        self.calls.append('kill')
        if self.after_stop is not None:
            self.states = [self.after_stop]


@pytest.fixture
def quick(monkeypatch):
    monkeypatch.setenv('MLPROJ_LOG_DRAIN_TIMEOUT', '1')
    monkeypatch.setenv('MLPROJ_CANCEL_TIMEOUT', '0.3')
    monkeypatch.setenv('MLPROJ_LOST_TIMEOUT', '0.2')


def test_remote_run_finishes_fails_or_is_lost(quick):
    launch = fake_launch()
    run = RemoteSubmittedRun(launch, FakeJob(JobState(SCHEDULED), JobState(RUNNING), JobState(FINISHED, 0)),
                             poll_interval=0.01)
    assert run.get_status() == SCHEDULED  # not watched yet: asks the engine
    assert run.wait() is True and run.exit_code == 0 and launch.tracker.statuses == [('r1', FINISHED)]

    launch = fake_launch()
    run = RemoteSubmittedRun(launch, FakeJob(JobState(FAILED, 3, 'FAILED (exit code 3)')), poll_interval=0.01)
    assert run.wait() is False and (run.get_status(), run.exit_code) == (FAILED, 3)

    class Unreachable(FakeJob):
        def state(self):
            raise BackendError('engine down')

    launch = fake_launch()
    run = RemoteSubmittedRun(launch, Unreachable(), poll_interval=0.02)
    assert run.wait(10) is False and (run.get_status(), run.exit_code) == (FAILED, 69)
    assert run.final is not None and 'lost contact with the engine' in run.final.detail
    assert launch.tracker.statuses == [('r1', FAILED)]


def test_remote_cancel_confirmed_unconfirmed_and_escalated(quick):
    launch = fake_launch()
    job = FakeJob(JobState(RUNNING), after_stop=JobState(KILLED, None, 'STOPPED'))
    run = RemoteSubmittedRun(launch, job, poll_interval=0.01).start()
    run.cancel(signal.SIGINT)
    assert job.calls == ['stop'] and (run.get_status(), run.exit_code) == (KILLED, 130)
    assert launch.tracker.statuses == [('r1', KILLED)]

    launch = fake_launch()
    job = FakeJob(JobState(RUNNING))  # the engine never confirms
    run = RemoteSubmittedRun(launch, job, poll_interval=0.01).start()
    started = time.monotonic()
    run.cancel(signal.SIGTERM)
    assert 0.3 <= time.monotonic() - started < 5
    assert (run.get_status(), run.exit_code) == (KILLED, 143) and run.final is not None
    assert run.final.detail == 'cancellation not confirmed by the engine'

    launch = fake_launch()
    job = FakeJob(JobState(RUNNING), after_stop=JobState(KILLED))
    run = RemoteSubmittedRun(launch, job, poll_interval=0.01).start()
    run.cancel(signal.SIGKILL)  # a first SIGKILL: no grace, recorded as a SIGTERM cancel
    assert job.calls == ['kill'] and (run.get_status(), run.exit_code) == (KILLED, 143)
    run.cancel(signal.SIGTERM)  # over: nothing more is asked of the engine
    assert job.calls == ['kill']


class FakeRun:
    run_id = 'r9'

    def __init__(self) -> None:
        self.cancels: list[int] = []
        self.status = RUNNING
        self.ended = threading.Event()

    def wait(self) -> bool:
        self.ended.wait(10)
        return self.status == FINISHED

    def get_status(self) -> str:
        return self.status

    def cancel(self, sig: int) -> None:
        self.cancels.append(sig)
        if sig == signal.SIGKILL:
            self.status = KILLED
            self.ended.set()


def test_signals_cancel_then_kill_and_restore_the_handlers(capsys):
    run = FakeRun()
    before = signal.getsignal(signal.SIGTERM)
    timers = [threading.Timer(0.2, os.kill, args=(os.getpid(), signal.SIGTERM)),
              threading.Timer(0.5, os.kill, args=(os.getpid(), signal.SIGTERM))]
    for t in timers:
        t.start()
    with Signals((signal.SIGINT, signal.SIGTERM)) as handling:
        assert handling.wait(run) is False
    assert run.cancels == [signal.SIGTERM, signal.SIGKILL] and handling.received == [signal.SIGTERM] * 2
    assert 'SIGTERM received, cancelling run r9' in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_signal_during_submission_interrupts_and_after_a_cancel_can_stay_ignored():
    with pytest.raises(Interrupted) as caught:
        with Signals((signal.SIGTERM,)):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # interrupted at once
    assert caught.value.signum == signal.SIGTERM
    before = signal.getsignal(signal.SIGHUP)
    try:
        run = FakeRun()
        threading.Timer(0.1, os.kill, args=(os.getpid(), signal.SIGHUP)).start()
        threading.Timer(0.3, os.kill, args=(os.getpid(), signal.SIGHUP)).start()
        with Signals((signal.SIGHUP,), ignore_after_cancel=True) as handling:
            handling.wait(run)
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, before)


def test_a_signal_once_the_command_started_is_held_and_cancels_the_run_first_thing(capsys):
    started()  # outside Signals: nothing to hold, nothing happens
    run = FakeRun()
    before = signal.getsignal(signal.SIGTERM)
    with Signals((signal.SIGINT, signal.SIGTERM)) as handling:
        started()
        os.kill(os.getpid(), signal.SIGTERM)  # the last steps of a submission: not interrupted
        time.sleep(0.05)
        assert handling.pending == [signal.SIGTERM] and run.cancels == []
        os.kill(os.getpid(), signal.SIGTERM)  # a second one before the wait: escalates there
        time.sleep(0.05)
        assert handling.wait(run) is False
    assert run.cancels == [signal.SIGTERM, signal.SIGKILL] and handling.pending == []
    assert 'SIGTERM received, cancelling run r9' in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) is before
    with pytest.raises(Interrupted):  # a new Signals does not inherit the hold
        with Signals((signal.SIGTERM,)):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)


def test_a_held_signal_keeps_the_ci_step_ignoring_further_ones():
    before = signal.getsignal(signal.SIGHUP)
    try:
        with Signals((signal.SIGHUP,), ignore_after_cancel=True) as handling:
            started()
            os.kill(os.getpid(), signal.SIGHUP)
            time.sleep(0.05)
        assert handling.pending == [signal.SIGHUP]
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, before)


# -- mlproj ci cancel: which backend stops what -------------------------------------------------

class RecordingBackend:
    def __init__(self, answer: str | None = None, fail: bool = False) -> None:
        self.answer, self.fail = answer, fail
        self.asked: list[dict] = []

    def cancel_recorded(self, tags):
        self.asked.append(dict(tags))
        if self.fail:
            raise BackendError('scancel failed: access denied')
        return self.answer


@pytest.fixture
def ci_cancel(tmp_path, monkeypatch):
    from mlproj import backends, tracking
    from mlproj.ci import state

    tracker = FakeTracker()
    registry: dict[str, RecordingBackend] = {}

    def get_backend(name):
        if name not in registry:
            raise BackendError(f'unknown backend {name!r}')
        return registry[name]

    monkeypatch.setattr(tracking, 'get_tracker', lambda uri: tracker)
    monkeypatch.setattr(backends, 'get_backend', get_backend)
    path = str(tmp_path / 'state.json')

    def start(tags, **st):
        tracker.add('r1', tags)
        state.update(path, run_id='r1', tracking_uri='sqlite:////x.db', status='RUNNING', **st)
        return path

    return SimpleNamespace(tracker=tracker, registry=registry, start=start)


def test_ci_cancel_asks_the_runs_backend_then_ends_the_run_killed(ci_cancel):
    from mlproj.ci.cancel import cancel_from_state

    ci_cancel.registry['slurm'] = RecordingBackend('cancelled Slurm job 12')
    path = ci_cancel.start({'mlflow.project.backend': 'slurm', 'mlproj.slurm.job_id': '12'})
    assert cancel_from_state(path) == 'cancelled Slurm job 12; marked MLflow run r1 KILLED'
    assert ci_cancel.registry['slurm'].asked[0]['mlproj.slurm.job_id'] == '12'
    assert ci_cancel.tracker.runs['r1'].status == KILLED


def test_ci_cancel_databricks_tags_win_and_state_backend_is_the_fallback(ci_cancel):
    from mlproj.ci.cancel import cancel_from_state

    ci_cancel.registry['databricks'] = RecordingBackend('cancelled Databricks job run 7')
    ci_cancel.registry['ray'] = RecordingBackend(None)
    path = ci_cancel.start({'mlflow.project.backend': 'local', 'mlflow.databricks.shellJobRunID': '7'})
    assert cancel_from_state(path) == 'cancelled Databricks job run 7; marked MLflow run r1 KILLED'
    del ci_cancel.tracker.runs['r1']
    path = ci_cancel.start({}, backend='ray')  # no backend tag: the state file says
    assert cancel_from_state(path) == 'marked MLflow run r1 KILLED' and len(ci_cancel.registry['ray'].asked) == 1


def test_ci_cancel_refused_leaves_the_run_and_unknown_backend_still_ends_it(ci_cancel):
    from mlproj.ci.cancel import cancel_from_state

    ci_cancel.registry['slurm'] = RecordingBackend(fail=True)
    path = ci_cancel.start({'mlflow.project.backend': 'slurm'})
    with pytest.raises(BackendError, match='scancel failed'):
        cancel_from_state(path)
    assert ci_cancel.tracker.runs['r1'].status == RUNNING
    del ci_cancel.tracker.runs['r1']
    path = ci_cancel.start({'mlflow.project.backend': 'gone-plugin'})
    assert cancel_from_state(path) == ("cannot stop its job (unknown backend 'gone-plugin'); "
                                       'marked MLflow run r1 KILLED')


def test_ci_cancel_reports_a_run_its_launcher_ended(ci_cancel):
    from mlproj.ci.cancel import cancel_from_state

    class Launcher(RecordingBackend):
        def cancel_recorded(self, tags):
            ci_cancel.tracker.runs['r1'].status = KILLED  # the launcher ended its own run
            return 'stopped launcher pid 42 (its run ended KILLED)'

    ci_cancel.registry['local'] = Launcher()
    path = ci_cancel.start({'mlflow.project.backend': 'local'})
    assert cancel_from_state(path) == 'stopped launcher pid 42 (its run ended KILLED); run r1 ended KILLED'
    assert ci_cancel.tracker.statuses == []  # nothing recorded twice
