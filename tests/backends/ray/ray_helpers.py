"""Helpers for the ray backend tests: a real local Ray head, projects, the CLI.

Ray runs from its own venv (``MLPROJ_TEST_RAY_VENV``, default ``/tmp/mlproj-test-ray-venv``), created
once with uv and reused: it holds ``ray[default]`` at the version installed in the dev venv, which is
what a real cluster looks like (the cluster's Python is not the submitter's).  The head is started with
``ray start --head --block`` in its own session, on 127.0.0.1, with every port chosen free outside
Ray's worker range (10002-19999) and ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` so nothing binds to
another interface; it is stopped by signalling that process and then every process left in its
session.  Nothing here skips: a missing Ray makes the tests fail.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from tests.helpers import free_port as _free_port

RAY_VENV = Path(os.environ.get('MLPROJ_TEST_RAY_VENV', '/tmp/mlproj-test-ray-venv'))


def free_port() -> int:
    return _free_port(above=20000)


def session_pids(sid: int) -> list[int]:
    pids = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open(f'/proc/{entry}/stat') as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat.rsplit(')', 1)[1].split()
        if fields[0] != 'Z' and int(fields[3]) == sid:  # state, ppid, pgrp, session
            pids.append(int(entry))
    return pids


def kill_session(sid: int, timeout: float = 10.0) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in session_pids(sid):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout
        while session_pids(sid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not session_pids(sid):
            return


def _ray_version() -> str:
    import ray  # the dev venv must have mlproj[ray]; failing here is the point

    return ray.__version__


def ensure_ray_venv() -> Path:
    from filelock import FileLock
    from uv import find_uv_bin

    version = _ray_version()
    python = RAY_VENV / 'bin' / 'python'
    with FileLock(str(RAY_VENV) + '.lock'):
        # pip too: Ray's pip runtime_env clones this venv and runs `python -m pip` in the clone
        check = [str(python), '-c', 'import pip, ray, sys; sys.exit(ray.__version__ != sys.argv[1])', version]
        if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
            return RAY_VENV
        uv = find_uv_bin()
        base = getattr(sys, '_base_executable', sys.executable)
        subprocess.run([uv, 'venv', '-q', '--seed', '--allow-existing', '--python', base, str(RAY_VENV)], check=True)
        subprocess.run([uv, 'pip', 'install', '-q', '--python', str(python), f'ray[default]=={version}'],
                       check=True)
        subprocess.run(check, check=True)
    return RAY_VENV


class RayHead:
    def __init__(self, venv: Path) -> None:
        self.venv = venv
        self.tmp = Path(tempfile.mkdtemp(prefix='mlpray-', dir='/tmp'))  # short: Ray's unix socket paths
        self.dashboard_port = free_port()
        self.address = f'http://127.0.0.1:{self.dashboard_port}'
        self.env = {
            **os.environ,
            'PATH': f"{venv / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            'RAY_USAGE_STATS_ENABLED': '0',
            'RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER': '0',
        }
        for k in ('RAY_ADDRESS', 'VIRTUAL_ENV', 'PYTHONPATH'):
            self.env.pop(k, None)
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        argv = [
            str(self.venv / 'bin' / 'ray'), 'start', '--head', '--block', '--disable-usage-stats',
            '--node-ip-address=127.0.0.1', f'--port={free_port()}',
            '--dashboard-host=127.0.0.1', f'--dashboard-port={self.dashboard_port}', '--include-dashboard=true',
            f'--ray-client-server-port={free_port()}', f'--dashboard-agent-listen-port={free_port()}',
            f'--dashboard-agent-grpc-port={free_port()}', f'--runtime-env-agent-port={free_port()}',
            f'--metrics-export-port={free_port()}', f'--object-manager-port={free_port()}',
            f'--node-manager-port={free_port()}', '--num-cpus=2', f'--temp-dir={self.tmp}',
        ]
        self.log = open(self.tmp / 'ray-start.log', 'wb')
        self.proc = subprocess.Popen(argv, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True, cwd=self.tmp)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError('ray start exited: ' + (self.tmp / 'ray-start.log').read_text()[-2000:])
            try:
                with urllib.request.urlopen(f'{self.address}/api/version', timeout=2) as r:
                    json.load(r)
                break
            except OSError:
                time.sleep(0.3)
        else:
            raise RuntimeError('the Ray dashboard did not come up in 90 s')
        self.warm_up(deadline)

    def warm_up(self, deadline: float) -> None:
        """Run one trivial job: the head accepts jobs only once its job agent registered."""
        from ray.job_submission import JobSubmissionClient

        client = JobSubmissionClient(self.address)
        while True:
            try:
                job = client.submit_job(entrypoint='true')
                break
            except RuntimeError as e:
                if 'No available agent' not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        while not client.get_job_status(job).is_terminal():
            if time.monotonic() > deadline:
                raise RuntimeError('the Ray warm-up job did not finish')
            time.sleep(0.2)
        assert client.get_job_status(job) == 'SUCCEEDED', client.get_job_logs(job)

    def stop(self) -> None:
        if self.proc is None:
            return
        sid = self.proc.pid
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # --block: ray tears its processes down
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                pass
        kill_session(sid)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self.log.close()
        subprocess.run(['rm', '-rf', str(self.tmp)], check=False)


def run_id_of(mlflow_client, tag: str = 'mlflow.project.backend', value: str = 'ray') -> str:
    runs = mlflow_client.search_runs(['0'], filter_string=f"tags.`{tag}` = '{value}'")
    assert len(runs) == 1, [r.info.run_id for r in runs]
    return runs[0].info.run_id
