"""Fixtures for the environment managers: isolated stores, a local wheelhouse, a real dockerd, a fake conda.

Their plain helpers (wheels, projects, containers, conda calls): ``tests.helpers.envs``.
"""
from __future__ import annotations

import http.server
import io
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import pytest

from tests.helpers.envs import BUSYBOX_IMAGE, make_wheel

# A stable place for the busybox rootfs tarball, so reruns do not rebuild it (it is tiny anyway).
IMAGE_CACHE = Path(os.environ.get('MLPROJ_TEST_IMAGE_CACHE', '/var/tmp/mlproj-test-images'))


@pytest.fixture(scope='session')
def uv_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp('uv-cache')


@pytest.fixture(autouse=True)
def _env_isolation(tmp_path, uv_cache, monkeypatch):
    """Every test gets its own env store; uv's cache is shared by the session; no Python downloads."""
    monkeypatch.setenv('MLPROJ_ENV_ROOT', str(tmp_path / 'envs'))
    monkeypatch.setenv('UV_CACHE_DIR', str(uv_cache))
    monkeypatch.setenv('UV_PYTHON_DOWNLOADS', 'never')
    monkeypatch.setenv('PIP_CONFIG_FILE', os.devnull)   # this machine's global pip config adds constraints
    monkeypatch.setenv('PIP_DISABLE_PIP_VERSION_CHECK', '1')
    for name in ('UV_INDEX_URL', 'UV_EXTRA_INDEX_URL', 'UV_FIND_LINKS', 'UV_NO_INDEX', 'PIP_FIND_LINKS',
                 'PIP_NO_INDEX', 'PIP_INDEX_URL', 'VIRTUAL_ENV', 'CONDA_EXE', 'MLFLOW_CONDA_HOME',
                 'MLFLOW_CONDA_CREATE_ENV_CMD', 'MLPROJ_CONTAINER_ENGINE'):
        monkeypatch.delenv(name, raising=False)


# --------------------------------------------------------------------------------------------
# a local wheelhouse: tiny pure-Python wheels written by hand (no network, no build backend)


@pytest.fixture(scope='session')
def wheelhouse(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp('wheels')
    make_wheel(d, 'mlproj-tiny-a', '1.0')
    make_wheel(d, 'mlproj-tiny-a', '2.0')
    make_wheel(d, 'mlproj-tiny-b', '1.0', ('mlproj-tiny-a>=2',))
    # conda-style names mapped onto PyPI by conda-to-uv resolve here too
    make_wheel(d, 'mlproj-tiny-pandas', '2.1')
    return d


@pytest.fixture
def offline_index(wheelhouse, monkeypatch) -> Path:
    """uv and pip install only from the local wheelhouse."""
    monkeypatch.setenv('UV_NO_INDEX', '1')
    monkeypatch.setenv('UV_FIND_LINKS', str(wheelhouse))
    monkeypatch.setenv('PIP_NO_INDEX', '1')
    monkeypatch.setenv('PIP_FIND_LINKS', str(wheelhouse))
    return wheelhouse


class _HangingIndex(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self):  # noqa: N802
        type(self).hits.append(self.path)
        time.sleep(120)  # never answer in time: the build hangs here until it is killed

    def log_message(self, *args):
        pass


@pytest.fixture
def hanging_index():
    """A package index on loopback that accepts requests and never answers (to interrupt a build)."""
    handler = type('Handler', (_HangingIndex,), {'hits': []})
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f'http://127.0.0.1:{server.server_address[1]}/simple', handler.hits
    finally:
        server.shutdown()
        server.server_close()


# --------------------------------------------------------------------------------------------
# a real Docker engine (Debian docker.io), started for the session on a private socket


def _busybox_tar() -> Path:
    IMAGE_CACHE.mkdir(parents=True, exist_ok=True)
    tar_path = IMAGE_CACHE / 'busybox-rootfs.tar'
    if tar_path.exists():
        return tar_path
    busybox = shutil.which('busybox')
    assert busybox, 'busybox is missing: .ci/run installs the Debian package busybox-static'
    applets = subprocess.run([busybox, '--list'], capture_output=True, text=True, check=True).stdout.split()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode='w') as tar:
        for d in ('bin', 'tmp', 'etc', 'root'):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if d == 'tmp' else 0o755
            tar.addfile(info)
        tar.add(busybox, 'bin/busybox')
        for a in applets:
            if a != 'busybox':
                info = tarfile.TarInfo(f'bin/{a}')
                info.type, info.linkname = tarfile.SYMTYPE, 'busybox'
                tar.addfile(info)
        passwd = b'root:x:0:0:root:/root:/bin/sh\n'
        info = tarfile.TarInfo('etc/passwd')
        info.size = len(passwd)
        tar.addfile(info, io.BytesIO(passwd))
    tmp = tar_path.with_suffix('.tmp')
    tmp.write_bytes(buf.getvalue())
    os.replace(tmp, tar_path)
    return tar_path


def _short_tmp() -> Path:
    # unix socket paths are limited to ~108 bytes: keep dockerd's dirs short
    import tempfile

    return Path(tempfile.mkdtemp(prefix='mlpd-', dir='/tmp'))


@pytest.fixture(scope='session')
def docker_engine():
    """dockerd on a private socket (flags from test-infrastructure.md §5) with a busybox image."""
    dockerd = shutil.which('dockerd')
    assert dockerd, 'dockerd is missing: .ci/run installs the Debian package docker.io'
    base = _short_tmp()
    sock = base / 'd.sock'
    log = open(base / 'dockerd.log', 'wb')
    proc = subprocess.Popen(
        [dockerd, '--host', f'unix://{sock}', '--data-root', str(base / 'data'), '--exec-root', str(base / 'x'),
         '--pidfile', str(base / 'd.pid'), '--iptables=false', '--bridge=none',
         '--default-ulimit', 'nofile=1024:1024'],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    host = f'unix://{sock}'
    env = dict(os.environ, DOCKER_HOST=host)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f'dockerd exited: {(base / "dockerd.log").read_text()[-2000:]}')
            if subprocess.run(['docker', 'info'], env=env, capture_output=True).returncode == 0:
                break
            if time.monotonic() > deadline:
                raise RuntimeError('dockerd not ready after 60 s')
            time.sleep(0.3)
        with open(_busybox_tar(), 'rb') as f:
            subprocess.run(['docker', 'import', '-', BUSYBOX_IMAGE], stdin=f, env=env, check=True,
                           capture_output=True)
        yield host
    finally:
        for cid in subprocess.run(['docker', 'ps', '-aq'], env=env, capture_output=True, text=True).stdout.split():
            subprocess.run(['docker', 'rm', '-f', cid], env=env, capture_output=True)
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        log.close()
        _unmount_under(base)
        shutil.rmtree(base, ignore_errors=True)


def _unmount_under(base: Path) -> None:
    """dockerd leaves mounts (e.g. the nsfs of netns/default) under its exec root: unmount them, deepest first."""
    try:
        with open('/proc/self/mounts') as f:
            points = [line.split()[1] for line in f]
    except OSError:
        return
    prefix = str(base) + '/'
    for point in sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True):
        subprocess.run(['umount', '-l', point], capture_output=True)


@pytest.fixture
def docker_host(docker_engine, monkeypatch) -> str:
    monkeypatch.setenv('DOCKER_HOST', docker_engine)
    return docker_engine


# --------------------------------------------------------------------------------------------
# a recording fake conda (no conda can be installed on these machines)

FAKE_CONDA = r'''#!{python}
"""A strict fake of the conda CLI: records argv, rejects anything it does not know."""
import json, os, sys
root = os.environ['FAKE_CONDA_ROOT']
log = os.path.join(root, 'calls.jsonl')
prog = os.path.basename(sys.argv[0])
args = sys.argv[1:]
with open(log, 'a') as f:
    f.write(json.dumps([prog] + args) + '\n')
envs = os.path.join(root, 'envs')
os.makedirs(envs, exist_ok=True)
def env_prefixes():
    return sorted(os.path.join(envs, n) for n in os.listdir(envs))
if args == ['env', 'list', '--json']:
    print(json.dumps({{'envs': [root] + env_prefixes()}}))
    sys.exit(0)
if args[:2] == ['env', 'create'] and len(args) in (6, 7) and args[2] == '-n' and args[4] == '--file':
    if len(args) == 7 and args[6] != '--yes':
        sys.exit('fake conda: unexpected ' + args[6])
    name, path = args[3], args[5]
    text = open(path).read()
    if 'FAIL' in text:
        os.makedirs(os.path.join(envs, name, 'conda-meta'), exist_ok=True)
        sys.exit('ResolvePackageNotFound: - nonexistent-package')
    prefix = os.path.join(envs, name)
    os.makedirs(os.path.join(prefix, 'conda-meta'), exist_ok=True)
    os.makedirs(os.path.join(prefix, 'bin'), exist_ok=True)
    py = os.path.join(prefix, 'bin', 'python')
    if not os.path.exists(py):
        os.symlink(sys.executable, py)
    deps = [ln.strip()[2:].strip() for ln in text.splitlines() if ln.startswith('  - ') and ':' not in ln]
    with open(os.path.join(prefix, 'conda-meta', 'fake-packages'), 'w') as f:
        f.write('\n'.join(deps))
    print('done')
    sys.exit(0)
explicit = (args[:5] == ['list', '--explicit', '--md5', '--prefix', args[4] if len(args) > 4 else '']
            and len(args) == 5 and prog != 'micromamba') or (
    args[:6] == ['env', 'export', '--explicit', '--md5', '--prefix', args[5] if len(args) > 5 else '']
    and len(args) == 6 and prog == 'micromamba')
if explicit:
    prefix = args[-1]
    if os.environ.get('FAKE_CONDA_LIST_FAIL'):
        sys.exit('CondaError: cannot list ' + prefix)
    import hashlib
    listed = os.path.join(prefix, 'conda-meta', 'fake-packages')
    names = open(listed).read().split() if os.path.exists(listed) else []
    print('# This file may be used to create an environment using:')
    print('# $ conda create --name <env> --file <this file>')
    print('# platform: linux-64')
    print('@EXPLICIT')
    for spec in names:
        name, _, version = spec.partition('=')
        print(f'https://conda.anaconda.org/conda-forge/linux-64/{{name}}-{{version or "1.0"}}-0.conda'
              f'#{{hashlib.md5(spec.encode()).hexdigest()}}')
    sys.exit(0)
if args[:4] == ['remove', '--yes', '--name', args[3] if len(args) > 3 else ''] and args[4:] == ['--all']:
    import shutil
    shutil.rmtree(os.path.join(envs, args[3]), ignore_errors=True)
    sys.exit(0)
if args[:1] == ['run'] and len(args) >= 4 and args[1] == '-n':
    prefix = os.path.join(envs, args[2])
    env = dict(os.environ, CONDA_PREFIX=prefix, CONDA_DEFAULT_ENV=args[2],
               PATH=os.path.join(prefix, 'bin') + os.pathsep + os.environ['PATH'])
    os.execvpe(args[3], args[3:], env)
sys.exit('fake conda: unexpected arguments ' + ' '.join(args))
'''

ACTIVATE = '''# sourced: `source <bin>/activate NAME`
export CONDA_DEFAULT_ENV="$1"
export CONDA_PREFIX="$FAKE_CONDA_ROOT/envs/$1"
export PATH="$CONDA_PREFIX/bin:$PATH"
echo "activate $1" >> "$FAKE_CONDA_ROOT/activations.log"
'''

CONDA_SH = '''# sourced: defines the conda shell function
conda() {
  if [ "$1" = activate ]; then
    export CONDA_DEFAULT_ENV="$2"
    export CONDA_PREFIX="$FAKE_CONDA_ROOT/envs/$2"
    export PATH="$CONDA_PREFIX/bin:$PATH"
    echo "conda.sh activate $2" >> "$FAKE_CONDA_ROOT/activations.log"
  else
    command conda "$@"
  fi
}
'''


@pytest.fixture
def fake_conda(tmp_path, monkeypatch):
    """A conda installation at tmp/conda with bin/{conda,mamba,activate} and etc/profile.d/conda.sh."""
    root = tmp_path / 'conda'
    (root / 'bin').mkdir(parents=True)
    (root / 'etc' / 'profile.d').mkdir(parents=True)
    script = FAKE_CONDA.format(python=sys.executable)
    for name in ('conda', 'mamba', 'micromamba'):
        p = root / 'bin' / name
        p.write_text(script)
        p.chmod(0o755)
    (root / 'bin' / 'activate').write_text(ACTIVATE)
    (root / 'etc' / 'profile.d' / 'conda.sh').write_text(CONDA_SH)
    monkeypatch.setenv('FAKE_CONDA_ROOT', str(root))
    return root


@pytest.fixture
def file_store(tmp_path, monkeypatch) -> str:
    """A fast MLflow file store (creating a sqlite schema costs seconds)."""
    monkeypatch.setenv('MLFLOW_ALLOW_FILE_STORE', 'true')
    return (tmp_path / 'mlruns').as_uri()


@pytest.fixture(scope='session')
def session_sqlite_store(tmp_path_factory) -> str:
    """One sqlite store for the whole envs session."""
    d = tmp_path_factory.mktemp('sqlite-store')
    return f'sqlite:///{d}/mlflow.db'
