"""Runs left RUNNING by a launcher that died: recorded who launched a run, found, ended FAILED.

A local run lives exactly as long as the mlproj process that launched it (the supervisor kills
the run's processes when mlproj dies, ``mlproj.supervisor``), so a RUNNING local run whose
launcher is gone will never be ended by anyone.  At run creation the runner adds::

    mlproj.launcher.host     the host name (gethostname(2), read as the uname nodename)
    mlproj.launcher.pid      os.getpid()
    mlproj.launcher.start    the process start time (field 22 of /proc/self/stat, clock ticks)
    mlproj.launcher.boot_id  /proc/sys/kernel/random/boot_id
    mlproj.launcher.pidns    the pid namespace (readlink /proc/self/ns/pid)

Only for the ``local`` backend: a remote backend's run legitimately outlives its submitter
(``--no-wait``), and the cluster side's ``mlproj run --run-id`` re-tags it as its own launcher.

A launcher is **provably dead** only when it ran on this host (same host name and pid
namespace) and either the machine rebooted since (another boot id) or no process with that pid
and start time exists.  Everything else (another host, another pid namespace, a platform without
``/proc``, a run without the tags, e.g. one made by ``mlflow run``) is left alone: "can't tell"
never ends a run.

Sweeping costs one search query (RUNNING runs of the experiment tagged with this host).  The local
backend runs it in a background thread while the run's command runs, so it adds nothing to a run
that lasts longer than the query; ``mlproj runs gc`` sweeps every experiment on demand.
``MLPROJ_STALE_CHECK=0`` turns the automatic sweep off.
"""
from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from mlproj.tags import FAILED, LAUNCHER_PREFIX, RUNNING, STALE_REASON

PREFIX = LAUNCHER_PREFIX
HOST, PID, START, BOOT, PIDNS = (PREFIX + k for k in ('host', 'pid', 'start', 'boot_id', 'pidns'))


def _read(path: str) -> str:
    try:
        with open(path, 'rb') as f:  # bytes.decode('ascii') needs no codec module imported
            return f.read().decode('ascii', 'replace').strip()
    except OSError:
        return ''


def boot_id() -> str:
    return _read('/proc/sys/kernel/random/boot_id')


def pid_namespace() -> str:
    try:
        return os.readlink('/proc/self/ns/pid')
    except OSError:
        return ''


def start_time(pid: int | str) -> str:
    """Start time of ``pid`` in clock ticks since boot, '' when there is no such process."""
    data = _read(f'/proc/{pid}/stat')
    if not data or ')' not in data:
        return ''
    fields = data[data.rindex(')') + 2:].split()
    return fields[19] if len(fields) > 19 else ''


def hostname() -> str:
    """``socket.gethostname()`` without importing ``socket`` (~5 ms on the run path): the same
    ``gethostname(2)`` value, which is the kernel's ``uname`` nodename."""
    return os.uname().nodename


def launcher_tags() -> dict[str, str]:
    """The tags that identify this process as the launcher of a run (empty without /proc)."""
    pid = os.getpid()
    started = start_time(pid)
    if not started:
        return {}
    return {HOST: hostname(), PID: str(pid), START: started, BOOT: boot_id(), PIDNS: pid_namespace()}


def why_dead(tags: dict[str, str]) -> str | None:
    """A sentence saying why the launcher recorded in ``tags`` is provably dead, else None."""
    host, pid, started = tags.get(HOST), tags.get(PID), tags.get(START)
    if not (host and pid and started and pid.isdigit()) or host != hostname():
        return None
    if not sys.platform.startswith('linux') or tags.get(PIDNS, '') != pid_namespace():
        return None
    recorded_boot, current_boot = tags.get(BOOT, ''), boot_id()
    if recorded_boot and current_boot and recorded_boot != current_boot:
        return f'launcher pid {pid} on {host} did not survive a reboot (boot id {recorded_boot})'
    if start_time(pid) != started:
        return f'launcher pid {pid} on {host} is no longer running'
    return None


def alive(tags: Mapping[str, str]) -> bool:
    """True when the launcher recorded in ``tags`` provably still runs on this host (the same
    host, pid namespace and boot, and a live, not zombie, process with that pid and start time): the only case in
    which ``mlproj ci cancel`` signals it."""
    host, pid, started = tags.get(HOST), tags.get(PID), tags.get(START)
    if not (host and pid and started and pid.isdigit()) or host != hostname():
        return False
    if not sys.platform.startswith('linux') or tags.get(PIDNS, '') != pid_namespace():
        return False
    recorded_boot, current_boot = tags.get(BOOT, ''), boot_id()
    if recorded_boot and current_boot and recorded_boot != current_boot:
        return False
    if start_time(pid) != started:
        return False
    data = _read(f'/proc/{pid}/stat')  # a zombie has exited: only its parent has not reaped it yet
    return not data[data.rindex(')') + 2:].startswith('Z') if ')' in data else False


@dataclass
class Ended:
    """A stale run this launcher ended, and why."""

    run_id: str
    experiment_id: str
    reason: str


def sweep(tracker, experiment_ids: list[str], *, exclude: str | None = None, dry_run: bool = False,
          stop=None, write_lock=None) -> list[Ended]:
    """End FAILED every RUNNING run of ``experiment_ids`` whose launcher on this host is dead.

    ``stop`` (a ``threading.Event``) abandons the sweep before its next write once set;
    ``write_lock`` is held around each stale run's two writes, so a caller that sets ``stop`` and
    then takes the lock never leaves a run half-ended (tagged but still RUNNING)."""
    if not experiment_ids:
        return []
    ended: list[Ended] = []
    for record in tracker.search_running_with_tag(experiment_ids, HOST, hostname()):
        if record.run_id == exclude or record.status != RUNNING:
            continue
        reason = why_dead(record.tags)
        if reason is None:
            continue
        if not dry_run:
            with write_lock if write_lock is not None else contextlib.nullcontext():
                if stop is not None and stop.is_set():
                    break
                tracker.set_tags(record.run_id, {STALE_REASON: f'ended FAILED by mlproj: {reason}'})
                tracker.set_status(record.run_id, FAILED)
        ended.append(Ended(record.run_id, record.experiment_id, reason))
    return ended



def enabled() -> bool:
    from mlproj.settings import env_value

    return bool(env_value('MLPROJ_STALE_CHECK'))
