"""Exact environment locks: recorded as a tag and an artifact (sqlite, a real server, a proxied
artifact store), reinstalled exactly by `mlproj reproduce`, one clear line when a pin is gone.

The lock format, the artifact URLs and the diff rendering are unit-tested in the fast lane
(``tests/unit/test_env_lock.py``)."""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mlproj.envs import lock as locks
from mlproj.tags import ENV_LOCK_SHA256
from tests.helpers import free_port, run_mlproj, start_mlflow_server, stop_group
from tests.helpers.envs import make_wheel, py_version, write_project
from tests.helpers.git import git

RUN_ID = re.compile(r"=== Run \(ID '([0-9a-f]+)'\) (succeeded|failed)")

# --------------------------------------------------------------------------------------------
# recorded for real


def _project(tmp_path: Path, deps: list[str], name: str = 'proj') -> Path:
    env = f'python: "{py_version()}"\ndependencies:\n' + ''.join(f'  - "{d}"\n' for d in deps)
    return write_project(tmp_path / name, {
        'MLproject': f'name: {name}\npython_env: python_env.yaml\nentry_points:\n  main:\n'
                     '    parameters:\n      alpha: {type: float, default: 0.5}\n'
                     '    command: "python show.py {alpha}"\n',
        'show.py': 'import sys, mlproj_tiny_a\nprint("tiny-a", mlproj_tiny_a.VERSION, "alpha", sys.argv[1])\n',
        'python_env.yaml': env,
    })


def _check_recorded(client, run_id: str, env_root: Path) -> str:
    run = client.get_run(run_id)
    digest = run.data.tags[ENV_LOCK_SHA256]
    listed = [f.path for f in client.list_artifacts(run_id, 'mlproj')]
    assert listed == [locks.ARTIFACT_PATH]
    got = Path(client.download_artifacts(run_id, locks.ARTIFACT_PATH, str(env_root.parent)))
    data = got.read_bytes()
    assert hashlib.sha256(data).hexdigest() == digest
    text = data.decode()
    assert text.startswith(locks.FORMAT_LINE + '\n')
    assert f'# python: {".".join(map(str, sys.version_info[:3]))} cpython\n' in text
    assert re.search(r'^mlproj-tiny-a==2\.0 \\\n    --hash=sha256:[0-9a-f]{64}$', text, re.M), text
    assert re.search(r'^mlproj-tiny-b==1\.0 \\\n    --hash=sha256:[0-9a-f]{64}$', text, re.M), text
    # the same bytes as the store entry's lock
    stored = [p for p in env_root.glob('.store/*/' + locks.LOCK_FILE)]
    assert [p.read_bytes() for p in stored] == [data]
    return text


@pytest.mark.slow
def test_lock_recorded_on_sqlite(tmp_path, offline_index, session_sqlite_store, monkeypatch):
    from mlflow import MlflowClient

    import mlproj

    monkeypatch.chdir(tmp_path)
    proj = _project(tmp_path, ['mlproj-tiny-b'])
    submitted = mlproj.run(str(proj), 'main', tracking_uri=session_sqlite_store, experiment_name='locks-sqlite')
    assert submitted.wait()
    client = MlflowClient(session_sqlite_store)
    _check_recorded(client, submitted.run_id, Path(os.environ['MLPROJ_ENV_ROOT']))
    # a second run reuses the environment and records the same lock without rebuilding it
    again = mlproj.run(str(proj), 'main', tracking_uri=session_sqlite_store, experiment_name='locks-sqlite')
    assert again.wait()
    assert client.get_run(again.run_id).data.tags[ENV_LOCK_SHA256] == client.get_run(submitted.run_id).data.tags[ENV_LOCK_SHA256]


@pytest.fixture(scope='module')
def proxy_server(tmp_path_factory):
    """A real `mlflow server` that proxies artifacts (runs get ``mlflow-artifacts:`` URIs)."""
    d = tmp_path_factory.mktemp('mlflow-proxy')
    port = free_port()
    proc = start_mlflow_server(d, port, '--serve-artifacts', '--artifacts-destination', str(d / 'store'))
    try:
        yield f'http://127.0.0.1:{port}', d / 'store'
    finally:
        stop_group(proc)


@pytest.mark.slow
@pytest.mark.parametrize('which', ['local-root', 'proxied'])
def test_lock_recorded_on_a_real_server(which, request, tmp_path, offline_index, monkeypatch):
    from mlflow import MlflowClient

    import mlproj
    from mlproj.artifacts import read_file
    from mlproj.tracking_rest import RestTracker

    if which == 'proxied':
        uri, store = request.getfixturevalue('proxy_server')
    else:
        uri, store = request.getfixturevalue('mlflow_server'), None
    monkeypatch.chdir(tmp_path)
    proj = _project(tmp_path, ['mlproj-tiny-b'])
    submitted = mlproj.run(str(proj), 'main', tracking_uri=uri, experiment_name=f'locks-{which}')
    assert submitted.wait()
    client = MlflowClient(uri)
    run = client.get_run(submitted.run_id)
    assert run.info.artifact_uri.startswith('mlflow-artifacts:') == (which == 'proxied')
    text = _check_recorded(client, submitted.run_id, Path(os.environ['MLPROJ_ENV_ROOT']))
    if store is not None:
        assert list(store.rglob('requirements.lock.txt'))
    # mlproj reads it back the way reproduce and runs diff do
    assert read_file(RestTracker(uri), submitted.run_id, locks.ARTIFACT_PATH) == text.encode()
    assert read_file(RestTracker(uri), submitted.run_id, 'mlproj/none.txt') is None


# --------------------------------------------------------------------------------------------
# reproduce installs the recorded set


def mlproj_cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return run_mlproj(*args, cwd=cwd, env=env, timeout=300)


def run_id_of(proc: subprocess.CompletedProcess) -> str:
    found = RUN_ID.findall(proc.stderr)
    assert found, proc.stderr
    return found[-1][0]


@pytest.fixture
def served(tmp_path, monkeypatch) -> Path:
    """A wheel directory that is the only package source, holding mlproj-tiny-a 1.0 for now."""
    wheels = tmp_path / 'wheels'
    wheels.mkdir()
    make_wheel(wheels, 'mlproj-tiny-a', '1.0')
    for k, v in (('UV_NO_INDEX', '1'), ('UV_FIND_LINKS', str(wheels)), ('PIP_NO_INDEX', '1'),
                 ('PIP_FIND_LINKS', str(wheels))):
        monkeypatch.setenv(k, v)
    monkeypatch.setenv('UV_CACHE_DIR', str(tmp_path / 'uv-cache'))   # this test's own: what is "cached" matters
    return wheels


@pytest.mark.slow
@pytest.mark.parametrize('manager', ['uv', 'virtualenv'])
def test_reproduce_installs_the_recorded_older_version(manager, tmp_path, served, session_sqlite_store,
                                                       monkeypatch):
    monkeypatch.setenv('MLFLOW_TRACKING_URI', session_sqlite_store)
    proj = _project(tmp_path, ['mlproj-tiny-a'])
    git('init', '-q', '.', cwd=proj)
    git('add', '-A', cwd=proj)
    git('commit', '-qm', 'one', cwd=proj)
    first = mlproj_cli('run', str(proj), '--env-manager', manager, '--experiment-name', f'repro-{manager}', cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert 'tiny-a 1.0' in first.stdout
    original = run_id_of(first)

    # a newer release appears; a fresh environment store
    make_wheel(served, 'mlproj-tiny-a', '2.0')
    monkeypatch.setenv('MLPROJ_ENV_ROOT', str(tmp_path / 'envs-2'))
    plain = mlproj_cli('run', str(proj), '--env-manager', manager, '--experiment-name', f'repro-{manager}',
                       cwd=tmp_path)
    assert plain.returncode == 0, plain.stderr
    assert 'tiny-a 2.0' in plain.stdout

    again = mlproj_cli('reproduce', original, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert 'tiny-a 1.0 alpha 0.5' in again.stdout
    assert 'from the recorded lock' in again.stderr
    from mlflow import MlflowClient

    client = MlflowClient(session_sqlite_store)
    a, b, c = (client.get_run(r) for r in (original, run_id_of(plain), run_id_of(again)))
    assert c.data.tags[ENV_LOCK_SHA256] == a.data.tags[ENV_LOCK_SHA256] != b.data.tags[ENV_LOCK_SHA256]
    assert c.data.tags['mlproj.reproduced_from'] == original
    # a second reproduce reuses the environment built from the lock
    twice = mlproj_cli('reproduce', original, cwd=tmp_path)
    assert twice.returncode == 0 and 'tiny-a 1.0' in twice.stdout
    assert 'Creating' not in twice.stderr
    # --no-lock rebuilds from the spec: the newer release
    unlocked = mlproj_cli('reproduce', original, '--no-lock', cwd=tmp_path)
    assert unlocked.returncode == 0, unlocked.stderr
    assert 'tiny-a 2.0' in unlocked.stdout


def _serve_index(wheels: Path, root: Path):
    """A PEP 503 simple index of ``wheels`` on loopback (thread); returns (url, server)."""
    import http.server
    import threading
    from functools import partial

    for whl in wheels.glob('*.whl'):
        project = root / 'simple' / whl.name.split('-')[0].replace('_', '-')
        project.mkdir(parents=True, exist_ok=True)
        shutil.copy(whl, project / whl.name)
    for project in (root / 'simple').iterdir():
        links = ''.join(f'<a href="{w.name}#sha256={hashlib.sha256(w.read_bytes()).hexdigest()}">{w.name}</a>\n'
                        for w in sorted(project.glob('*.whl')))
        (project / 'index.html').write_text(f'<!DOCTYPE html><html><body>{links}</body></html>\n')
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f'http://127.0.0.1:{server.server_address[1]}/simple', server


@pytest.mark.slow
def test_reproduce_offline_from_cache_then_one_line_when_gone(tmp_path, served, session_sqlite_store, monkeypatch):
    """Packages from an index that goes away: reproduce installs from uv's cache (--offline); with
    an empty cache, one line names the pinned package that cannot be found."""
    monkeypatch.setenv('MLFLOW_TRACKING_URI', session_sqlite_store)
    for k in ('UV_NO_INDEX', 'UV_FIND_LINKS'):
        monkeypatch.delenv(k)
    url, server = _serve_index(served, tmp_path / 'index')
    monkeypatch.setenv('UV_INDEX_URL', url)
    proj = _project(tmp_path, ['mlproj-tiny-a'])
    git('init', '-q', '.', cwd=proj)
    git('add', '-A', cwd=proj)
    git('commit', '-qm', 'one', cwd=proj)
    try:
        first = mlproj_cli('run', str(proj), '--experiment-name', 'repro-gone', cwd=tmp_path)
    finally:
        server.shutdown()
        server.server_close()
    assert first.returncode == 0, first.stderr
    original = run_id_of(first)
    # the index is gone (connections refused); the packages are in uv's cache
    monkeypatch.setenv('MLPROJ_ENV_ROOT', str(tmp_path / 'envs-2'))
    cached = mlproj_cli('reproduce', original, cwd=tmp_path)
    assert cached.returncode == 0, cached.stderr
    assert 'tiny-a 1.0' in cached.stdout
    # an index that no longer serves 1.0, and an empty cache: one line, exit code 68
    (served / 'mlproj_tiny_a-1.0-py3-none-any.whl').unlink()
    make_wheel(served, 'mlproj-tiny-a', '2.0')
    monkeypatch.delenv('UV_INDEX_URL')
    monkeypatch.setenv('UV_NO_INDEX', '1')
    monkeypatch.setenv('UV_FIND_LINKS', str(served))
    monkeypatch.setenv('MLPROJ_ENV_ROOT', str(tmp_path / 'envs-3'))
    monkeypatch.setenv('UV_CACHE_DIR', str(tmp_path / 'uv-cache-empty'))
    gone = mlproj_cli('reproduce', original, cwd=tmp_path)
    assert gone.returncode == 68, gone.stderr
    last = gone.stderr.strip().splitlines()[-1]
    assert last == ('mlproj: error: mlproj-tiny-a==1.0 from the environment lock is no longer available from the '
                    "package index; use --no-lock to rebuild from the project's environment spec"), gone.stderr
