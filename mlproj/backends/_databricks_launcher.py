"""mlproj launcher for Databricks: runs as the ``spark_python_task`` of a one-time job run.

Uploaded by ``mlproj.backends.databricks`` next to the project archives (named by its content
hash) and executed by the cluster's Python, so it uses the standard library only.  Usage::

    launcher.py ARCHIVE [--env NAME=VALUE]... -- RUN_ARGS...

1. ``ARCHIVE`` is where the project archive was uploaded (``dbfs:/...``, ``/Volumes/...`` or
   ``/Workspace/...``); it is read through the cluster's FUSE mounts (``dbfs:/x`` is ``/dbfs/x``).
   ``MLPROJ_DATABRICKS_FUSE_ROOT`` puts those mounts under another root.
2. The archive is extracted once per content hash into ``MLPROJ_PROJECTS_DIR`` (default
   ``/local_disk0/tmp/mlproj/projects``, or the temp dir), through an atomic rename.
3. ``python -m mlproj run <project> RUN_ARGS...`` runs with the ``--env`` variables added, as an
   argv list (no shell).  SIGTERM/SIGINT are forwarded to its process group; the launcher exits
   with its exit code, which decides the task's result.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time

GRACE_SECONDS = 20.0
ROOT = 'project'


def local_path(archive: str) -> str:
    """The FUSE path of an uploaded archive."""
    fuse_root = os.environ.get('MLPROJ_DATABRICKS_FUSE_ROOT', '')
    if archive.startswith('dbfs:/'):
        path = '/dbfs/' + archive[len('dbfs:/'):].lstrip('/')
    elif archive.startswith('/'):
        path = archive
    else:
        raise SystemExit(f'mlproj launcher: unsupported archive location {archive!r}')
    return os.path.join(fuse_root, path.lstrip('/')) if fuse_root else path


def projects_dir() -> str:
    configured = os.environ.get('MLPROJ_PROJECTS_DIR')
    if configured:
        return configured
    if os.path.isdir('/local_disk0/tmp'):
        return '/local_disk0/tmp/mlproj/projects'
    return os.path.join(tempfile.gettempdir(), 'mlproj', 'projects')


def _check_member(member: tarfile.TarInfo) -> None:
    name = member.name
    parts = name.split('/')
    if name.startswith('/') or '..' in parts or parts[0] != ROOT:
        raise SystemExit(f'mlproj launcher: unexpected archive entry {name!r}')
    if member.issym() or member.islnk():
        target = os.path.normpath(os.path.join(os.path.dirname(name), member.linkname))
        if member.linkname.startswith('/') or target.split('/')[0] != ROOT:
            raise SystemExit(f'mlproj launcher: archive link {name!r} leaves the project')
    elif not (member.isfile() or member.isdir()):
        raise SystemExit(f'mlproj launcher: unexpected archive entry type {name!r}')


def extract(archive_path: str) -> str:
    """Extract the archive once; returns the project directory."""
    digest = os.path.basename(archive_path).split('.')[0]
    base = projects_dir()
    target = os.path.join(base, digest)
    if os.path.isdir(target):
        return target
    os.makedirs(base, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix='.extract-', dir=base)
    try:
        with tarfile.open(archive_path, 'r:gz') as tar:
            members = tar.getmembers()
            for member in members:
                _check_member(member)
            if hasattr(tarfile, 'data_filter'):
                tar.extractall(tmp, members=members, filter='data')
            else:  # pragma: no cover - Python without extraction filters
                tar.extractall(tmp, members=members)
        try:
            os.rename(os.path.join(tmp, ROOT), target)
        except OSError:
            if not os.path.isdir(target):  # lost a race to another run: theirs is identical
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def parse(argv: list[str]) -> tuple[str, dict[str, str], list[str]]:
    if not argv or argv[0].startswith('-'):
        raise SystemExit('usage: launcher.py ARCHIVE [--env NAME=VALUE]... -- RUN_ARGS...')
    archive, rest = argv[0], argv[1:]
    env: dict[str, str] = {}
    while rest and rest[0] != '--':
        if rest[0] == '--env' and len(rest) > 1 and '=' in rest[1]:
            name, _, value = rest[1].partition('=')
            env[name] = value
            rest = rest[2:]
        else:
            raise SystemExit(f'mlproj launcher: unexpected argument {rest[0]!r}')
    return archive, env, rest[1:]


def main(argv: list[str] | None = None) -> int:
    archive, extra_env, run_args = parse(list(sys.argv[1:] if argv is None else argv))
    if importlib.util.find_spec('mlproj') is None:
        print('mlproj launcher: mlproj is not installed on this cluster; add it as a library '
              '(backend config "mlproj_package" or "mlproj_wheel")', file=sys.stderr)
        return 2
    path = local_path(archive)
    if not os.path.isfile(path):
        print(f'mlproj launcher: project archive not found at {path}', file=sys.stderr)
        return 2
    project = extract(path)
    env = dict(os.environ)
    env.pop('MLFLOW_EXPERIMENT_NAME', None)
    env.update(extra_env)
    argv_run = [sys.executable, '-m', 'mlproj', 'run', project, *run_args]
    print(f'mlproj launcher: running mlproj in {project}', flush=True)
    sys.stderr.flush()
    proc = subprocess.Popen(argv_run, cwd=project, env=env, start_new_session=True)
    state = {'signal': None}

    def forward(signum, frame):  # noqa: ARG001
        state['signal'] = signum
        try:
            os.killpg(proc.pid, signum)
        except OSError:
            pass

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, forward)
    code = proc.wait()
    if state['signal'] is not None:
        deadline = time.monotonic() + GRACE_SECONDS
        while time.monotonic() < deadline:
            try:
                os.killpg(proc.pid, 0)
            except OSError:
                break
            time.sleep(0.1)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
    return code if code >= 0 else 128 - code


if __name__ == '__main__':
    sys.exit(main())
