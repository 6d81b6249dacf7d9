"""The run cache: what changes the key (in process) and --reuse/--force end to end on real stores."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlproj import runcache, runner
from mlproj.request import RunRequest
from tests.helpers import mlproj_bin, write_project
from tests.helpers.git import git

PY = sys.executable
MLPROJECT = (
    'name: cached\n'
    'python_env: python_env.yaml\n'
    'entry_points:\n'
    '  main:\n'
    '    parameters:\n'
    '      alpha: {type: float, default: 0.5}\n'
    '      data: {type: path, default: data.csv}\n'
    '      counter: {type: string, default: ""}\n'
    f'    command: "{PY} -c \\"import sys; open(sys.argv[1], \\x27a\\x27).write(\\x27ran\\\\n\\x27) if sys.argv[1] '
    'else None; sys.exit(int(sys.argv[2] == \\x27-1\\x27))\\" {counter} {alpha}"\n'
)


@pytest.fixture
def repo(tmp_path):
    d = write_project(tmp_path / 'repo', MLPROJECT, {'data.csv': 'a,b\n1,2\n',
                                                      'python_env.yaml': 'dependencies: []\n',
                                                      '.gitignore': 'mlflow.db\nmlruns/\n'})
    git('init', '-q', cwd=d)
    git('add', '-A', cwd=d)
    git('commit', '-qm', 'one', cwd=d)
    return d


def key(d: Path, **kw) -> str | None:
    params = kw.pop('params', {})
    p = runner.plan(RunRequest(uri=str(d), parameters=params, cwd=str(d), env_manager=kw.pop('env', 'local'),
                               **kw), warn=lambda m: None)
    try:
        return p.cache_key
    finally:
        p.source.cleanup()


def test_what_changes_the_key(repo, tmp_path):
    base = key(repo)
    assert base and len(base) == 64
    assert key(repo) == base                                      # deterministic
    assert key(repo, params={'alpha': '0.7'}) != base             # a parameter
    assert key(repo, params={'alpha': '0.5'}) == base             # the default, given explicitly
    assert key(repo, params={'extra': '1'}) != base               # an undeclared parameter
    assert key(repo, env='uv') != base                            # the env manager
    assert key(repo, backend_config={'x': 1}) != base             # the backend config
    # a path parameter is named by its content, not its name
    copy = tmp_path / 'elsewhere.csv'
    copy.write_text('a,b\n1,2\n')
    assert key(repo, params={'data': str(copy)}) == base
    copy.write_text('a,b\n1,3\n')
    assert key(repo, params={'data': str(copy)}) != base
    folder = tmp_path / 'dir'
    (folder / 'sub').mkdir(parents=True)
    (folder / 'sub' / 'f').write_text('1')
    k_dir = key(repo, params={'data': str(folder)})
    (folder / 'sub' / 'g').write_text('2')
    assert key(repo, params={'data': str(folder)}) != k_dir
    # the tree: an uncommitted change gets a key of its own, the same change the same key
    (repo / 'data.csv').write_text('changed\n')
    dirty = key(repo)
    assert dirty not in (None, base)
    assert key(repo) == dirty
    (repo / 'python_env.yaml').write_text('dependencies: [six]\n')
    assert key(repo) not in (dirty, base)                         # the environment file
    git('commit', '-qam', 'two', cwd=repo)
    assert key(repo) not in (dirty, base)                         # a new commit


def test_a_directory_that_is_not_a_git_checkout_has_no_key(tmp_path):
    d = write_project(tmp_path / 'plain', MLPROJECT, {'data.csv': '1\n', 'python_env.yaml': 'dependencies: []\n'})
    p = runner.plan(RunRequest(uri=str(d), cwd=str(d), env_manager='local'), warn=lambda m: None)
    assert p.cache_key is None and 'not a Git checkout' in p.cache_miss_reason
    assert runcache.CACHE_KEY not in p.tags


def test_a_path_too_large_to_fingerprint_has_no_key(repo, tmp_path, monkeypatch):
    big = tmp_path / 'big.bin'
    big.write_bytes(b'x' * 4096)
    monkeypatch.setattr(runcache, 'MAX_BYTES', 1024)
    p = runner.plan(RunRequest(uri=str(repo), parameters={'data': str(big)}, cwd=str(repo), env_manager='local'),
                    warn=lambda m: None)
    p.source.cleanup()
    assert p.cache_key is None and 'too large' in p.cache_miss_reason


def run(d: Path, store: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, 'MLFLOW_TRACKING_URI': store}
    return subprocess.run([mlproj_bin(), 'run', str(d), '--env-manager', 'local', *args], cwd=d, env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=240)


@pytest.mark.slow
@pytest.mark.parametrize('store_kind', ['sqlite', 'server'])
def test_reuse_hit_miss_and_force(repo, tmp_path, store_kind, request):
    store = f'sqlite:///{tmp_path}/mlflow.db' if store_kind == 'sqlite' else request.getfixturevalue('mlflow_server')
    counter = tmp_path / 'counter'
    c = f'counter={counter}'
    exp = f'cache-{store_kind}'

    def ran() -> int:
        return counter.read_text().count('ran') if counter.exists() else 0

    first = run(repo, store, '-P', c, '--reuse', '--experiment-name', exp)
    assert first.returncode == 0, first.stderr and ran() == 1
    run_id = first.stderr.split("run with ID '")[1].split("'")[0]
    hit = run(repo, store, '-P', c, '--reuse', '--experiment-name', exp)
    assert hit.returncode == 0 and ran() == 1, hit.stderr
    assert f'reused run {run_id}, finished 20' in hit.stderr
    assert run(repo, store, '-P', c, '--experiment-name', exp).returncode == 0 and ran() == 2   # no --reuse
    assert run(repo, store, '-P', c, '--reuse', '--force', '--experiment-name', exp).returncode == 0 and ran() == 3
    assert run(repo, store, '-P', c, '-P', 'alpha=0.9', '--reuse', '--experiment-name', exp).returncode == 0
    assert ran() == 4                                              # another parameter value: a miss
    # a failed run is never reused
    assert run(repo, store, '-P', c, '-P', 'alpha=-1', '--reuse', '--experiment-name', exp).returncode == 1
    assert run(repo, store, '-P', c, '-P', 'alpha=-1', '--reuse', '--experiment-name', exp).returncode == 1
    assert ran() == 6
    # another experiment does not share the cache
    assert run(repo, store, '-P', c, '--reuse', '--experiment-name', exp + '-2').returncode == 0 and ran() == 7
    # a dirty tree misses, then hits with the same diff
    (repo / 'data.csv').write_text('edited\n')
    assert run(repo, store, '-P', c, '--reuse', '--experiment-name', exp).returncode == 0 and ran() == 8
    again = run(repo, store, '-P', c, '--reuse', '--experiment-name', exp)
    assert again.returncode == 0 and ran() == 8 and 'reused run' in again.stderr
    # committing the same change is a new commit: a miss
    git('commit', '-qam', 'edit', cwd=repo)
    assert run(repo, store, '-P', c, '--reuse', '--experiment-name', exp).returncode == 0 and ran() == 9
    # MLPROJ_REUSE=1 makes --reuse the default
    env_default = subprocess.run([mlproj_bin(), 'run', str(repo), '--env-manager', 'local', '-P', c,
                                  '--experiment-name', exp], cwd=repo, capture_output=True, text=True,
                                 env={**os.environ, 'MLFLOW_TRACKING_URI': store, 'MLPROJ_REUSE': '1'}, timeout=240)
    assert env_default.returncode == 0 and ran() == 9 and 'reused run' in env_default.stderr


def test_a_file_is_read_once_per_process_while_it_is_unchanged(tmp_path):
    import hashlib
    import time

    f = tmp_path / 'data.bin'
    f.write_bytes(b'x' * 1000)
    old = time.time() - 60
    os.utime(f, (old, old))
    if time.time_ns() - f.stat().st_ctime_ns <= runcache._RACY_NS:   # ctime is now: wait until it is not racy
        time.sleep(2.1)
    first = runcache.fingerprint_path(str(f))
    assert first == 'file:' + hashlib.sha256(b'x' * 1000).hexdigest()
    ident = next(k for k in runcache._digests if k[0] == str(f))
    runcache._digests[ident] = 'remembered'
    assert runcache.fingerprint_path(str(f)) == 'file:remembered'     # not read again
    # same size, mtime put back: the ctime still tells the content changed
    f.write_bytes(b'y' * 1000)
    os.utime(f, (old, old))
    assert runcache.fingerprint_path(str(f)) == 'file:' + hashlib.sha256(b'y' * 1000).hexdigest()
    # a file changed just now is never remembered
    g = tmp_path / 'fresh.bin'
    g.write_bytes(b'z')
    runcache.fingerprint_path(str(g))
    assert not [k for k in runcache._digests if k[0] == str(g)]
