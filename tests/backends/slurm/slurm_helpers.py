"""A real single-node Slurm cluster (munged + slurmctld + slurmd from Debian's slurm-wlm and munge).

Everything lives in a private temp dir: its own munge key and socket (``AuthInfo=socket=...``), its
own state/spool dirs and pid files, and free ports above 20000, so it clashes with no system Slurm
or munge.  The daemons run in the foreground (``-D`` / ``-F``) as children of the fixture, each in
its own session, and are stopped by pid.  The node name is ``hostname -s`` as Slurm requires.
Nothing here skips: missing binaries make the tests fail (CI installs ``slurm-wlm munge``).
"""
from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.helpers import free_port as _free_port

TOOLS = ('munged', 'slurmctld', 'slurmd', 'sbatch', 'squeue', 'scontrol', 'scancel', 'sinfo')


def free_port() -> int:
    return _free_port(above=20000)


def _stop(proc: subprocess.Popen | None, timeout: float = 10.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


class SlurmCluster:
    def __init__(self) -> None:
        missing = [t for t in TOOLS if not shutil.which(t)]
        if missing:
            raise RuntimeError('Slurm/munge tools missing: ' + ', '.join(missing) +
                               ' (apt-get install slurm-wlm munge)')
        if os.geteuid() != 0:
            raise RuntimeError('the Slurm fixture runs slurmd as root')
        self.dir = Path(tempfile.mkdtemp(prefix='mlpslurm-', dir='/tmp'))
        self.dir.chmod(0o755)
        self.host = socket.gethostname().split('.')[0]
        self.conf = self.dir / 'slurm.conf'
        self.env = {**os.environ, 'SLURM_CONF': str(self.conf)}
        self.procs: list[subprocess.Popen] = []
        self.logs: list = []

    # -- munge ----------------------------------------------------------------------------
    def _start_munge(self) -> None:
        munge = pwd.getpwnam('munge')
        etc, run = self.dir / 'munge-etc', self.dir / 'munge-run'
        for d, mode in ((etc, 0o700), (run, 0o755)):
            d.mkdir()
            os.chown(d, munge.pw_uid, munge.pw_gid)
            d.chmod(mode)
        key = etc / 'munge.key'
        key.write_bytes(os.urandom(1024))
        os.chown(key, munge.pw_uid, munge.pw_gid)
        key.chmod(0o400)
        self.munge_socket = run / 'munge.sock'
        argv = ['munged', '--foreground', f'--socket={self.munge_socket}', f'--key-file={key}',
                f'--pid-file={run / "munged.pid"}', f'--log-file={etc / "munged.log"}', f'--seed-file={etc / "seed"}']
        log = open(self.dir / 'munged.out', 'wb')
        self.logs.append(log)
        self.procs.append(subprocess.Popen(argv, user=munge.pw_uid, group=munge.pw_gid, extra_groups=[],
                                           stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                           cwd=run))
        self._wait(lambda: self.munge_socket.exists(), 'munged socket', self.dir / 'munged.out')

    # -- slurm ----------------------------------------------------------------------------
    def config_text(self, ctld_port: int, d_port: int, extra: str = '') -> str:
        d = self.dir
        return f'''ClusterName=mlprojtest
SlurmctldHost={self.host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={self.munge_socket}
CredType=cred/munge
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
KillWait=5
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd.log
{extra}NodeName={self.host} NodeAddr=127.0.0.1 CPUs=2 RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
'''

    def start(self) -> None:
        self._start_munge()
        for sub in ('state', 'spool'):
            (self.dir / sub).mkdir()
        self.ctld_port, self.d_port = free_port(), free_port()
        self.conf.write_text(self.config_text(self.ctld_port, self.d_port))
        for argv, name in ((['slurmctld', '-D', '-i', '-f', str(self.conf)], 'slurmctld'),
                           (['slurmd', '-D', '-f', str(self.conf)], 'slurmd')):
            log = open(self.dir / f'{name}.out', 'wb')
            self.logs.append(log)
            self.procs.append(subprocess.Popen(argv, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                               start_new_session=True, cwd=self.dir))
        self._wait(self._node_idle, 'an idle Slurm node', self.dir / 'slurmctld.log')

    def _node_idle(self) -> bool:
        proc = subprocess.run(['sinfo', '--noheader', '--format=%t'], env=self.env, capture_output=True, text=True)
        return proc.returncode == 0 and proc.stdout.strip() == 'idle'

    def _wait(self, ready, what: str, log: Path, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return
            for p in self.procs:
                if p.poll() is not None:
                    raise RuntimeError(f'{p.args[0]} exited ({p.returncode}) waiting for {what}: '
                                       + _tail(log))
            time.sleep(0.2)
        raise RuntimeError(f'timed out waiting for {what}: ' + _tail(log))

    def dead_config(self) -> Path:
        """A config naming a controller port where nothing listens (short client timeouts)."""
        path = self.dir / 'dead.conf'
        path.write_text(self.config_text(free_port(), free_port(), 'MessageTimeout=2\nTCPTimeout=1\n'))
        return path

    def run(self, *argv: str) -> subprocess.CompletedProcess:
        return subprocess.run(list(argv), env=self.env, capture_output=True, text=True, timeout=60)

    def job_field(self, job_id: str, name: str) -> str:
        out = self.run('scontrol', 'show', 'job', '--oneliner', job_id).stdout
        fields = dict(f.split('=', 1) for f in out.split() if '=' in f)
        return fields.get(name, '')

    def stop(self) -> None:
        try:
            if len(self.procs) == 3 and all(p.poll() is None for p in self.procs):
                jobs = self.run('squeue', '--noheader', '--format=%i').stdout.split()
                if jobs:
                    self.run('scancel', *jobs)
        finally:
            for p in reversed(self.procs):  # slurmd, slurmctld, then munged
                _stop(p)
            for log in self.logs:
                log.close()
            shutil.rmtree(self.dir, ignore_errors=True)


def _tail(path: Path) -> str:
    try:
        return ' | '.join(path.read_text(errors='replace').splitlines()[-5:])
    except OSError:
        return '(no log)'


def run_id_of(mlflow_client, value: str = 'slurm') -> str:
    runs = mlflow_client.search_runs(['0'], filter_string=f"tags.`mlflow.project.backend` = '{value}'")
    assert len(runs) == 1, [r.info.run_id for r in runs]
    return runs[0].info.run_id
