"""The clone cache: one clone for concurrent runs, offline pinned reruns, recovery from killed fetches, prune."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from mlproj import source
from mlproj.cli import main
from mlproj.errors import SourceError
from mlproj.source.cache import CloneCache, mirror_name
from tests.helpers import MLPROJ, run_mlproj
from tests.helpers.git import git
from tests.helpers.source import assert_worktree, resolve_process, start_daemon, start_http, stop


def _mirrors(cache: Path) -> list[Path]:
    git_dir = cache / 'git'
    return sorted(p for p in git_dir.iterdir() if p.is_dir()) if git_dir.exists() else []


def _checkout_dirs(cache: Path) -> list[Path]:
    d = cache / 'checkouts'
    return [p for p in d.iterdir() if p.is_dir()] if d.exists() else []


def _fsck(path: Path, home: Path) -> None:
    git('fsck', '--full', '--no-dangling', cwd=path, home=home)


def test_eight_concurrent_runs_clone_once(repos, tmp_path, cache_dir):
    log = tmp_path / 'http.log'
    proc, port = start_http(repos, log=log)
    try:
        uri = f'http://127.0.0.1:{port}/proj.git#sub/folder'
        out = tmp_path / 'out.jsonl'
        # the whole tree (MLPROJ_SPARSE_CHECKOUT=0): the project reads vendor/lib, outside its cone
        env = {'MLFLOW_TRACKING_URI': (tmp_path / 'mlruns').as_uri(), 'MLPROJ_TEST_OUT': str(out),
               'MLPROJ_SPARSE_CHECKOUT': '0'}
        procs = [subprocess.Popen([MLPROJ, 'run', uri, '-v', repos.sha['C'], '-P', f'alpha={i}', '--env-manager',
                                   'local'], env={**os.environ, **env}, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
                 for i in range(8)]
        results = [(p.wait(180), p.stderr.read()) for p in procs]
        for p in procs:
            p.stdout.close()
            p.stderr.close()
    finally:
        stop(proc)
    assert [code for code, _ in results] == [0] * 8, results
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 8
    assert all(x['version'] == 'C' and x['lib'] and x['leaf'] for x in lines)
    assert sorted(x['args'][0] for x in lines) == [str(i) for i in range(8)]
    # one fetch (one ref advertisement) per repository (proj and its two submodules), not one per run
    fetches = [line for line in log.read_text().splitlines() if line.startswith('GET ')]
    assert sorted(fetches) == ['GET /leaf.git/info/refs 200', 'GET /lib.git/info/refs 200',
                               'GET /proj.git/info/refs 200']
    assert len(_mirrors(cache_dir)) == 3
    assert _checkout_dirs(cache_dir) == []


def test_concurrent_unpinned_resolves_share_one_mirror(repos, url_for, cache_dir):
    uri = url_for('git') + '#sub/folder'
    procs = [resolve_process(uri, 'feature') for _ in range(8)]
    outs = [p.communicate(60) for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, outs
    assert {o.strip() for o, _ in outs} == {repos.sha['D']}
    mirrors = _mirrors(cache_dir)
    assert [m.name for m in mirrors] == [mirror_name(url_for('git'))]
    assert not [p for p in (cache_dir / 'git').iterdir() if '.tmp-' in p.name]
    _fsck(mirrors[0], repos.home)


def test_pinned_rerun_needs_no_server(repos, tmp_path, cache_dir):
    proc, port = start_daemon(repos.srv, repos.home, tmp_path / 'daemon.log')
    uri = f'git://127.0.0.1:{port}/proj.git#sub/folder'
    try:
        first = source.resolve(uri, repos.sha['B'])
        first.cleanup()
    finally:
        stop(proc)
    # the server is gone: a pinned full SHA comes from the cache, in process and via `mlproj run`
    src = source.resolve(uri, repos.sha['B'])
    try:
        assert src.commit == repos.sha['B'] and (src.root / 'VERSION').read_text() == 'B\n'
    finally:
        src.cleanup()
    out = tmp_path / 'out.jsonl'
    run = run_mlproj('run', uri, '-v', repos.sha['A'], '--env-manager', 'local',
                     env={'MLFLOW_TRACKING_URI': (tmp_path / 'mlruns').as_uri(), 'MLPROJ_TEST_OUT': str(out)})
    assert run.returncode == 0, run.stderr
    assert json.loads(out.read_text())['version'] == 'A'
    # an unpinned revision needs the server, and the error says how to run offline
    with pytest.raises(SourceError) as e:
        source.resolve(uri, 'v1.0')
    assert 'cannot fetch' in str(e.value) and f'run with -v {repos.sha["B"]}' in str(e.value)
    # a commit that is not cached cannot be had without the server
    os.environ['MLPROJ_CACHE_DIR'] = str(tmp_path / 'other-cache')
    with pytest.raises(SourceError) as e:
        source.resolve(uri, repos.sha['B'])
    assert f'commit {repos.sha["B"][:12]} is not in the cache' in str(e.value)


@pytest.fixture
def big_repo(repos, tmp_path):
    """A bare repo with a 3 MiB incompressible blob, served by a throttled HTTP server."""
    srv = tmp_path / 'bigsrv'
    work = tmp_path / 'bigwork'
    git('init', '-q', str(work), home=repos.home)
    (work / 'MLproject').write_text('name: big\nentry_points:\n  main:\n    command: "true"\n')
    (work / 'blob1.bin').write_bytes(os.urandom(3 << 20))
    git('add', '-A', cwd=work, home=repos.home)
    git('commit', '-qm', 'one', cwd=work, home=repos.home)
    srv.mkdir()
    git('clone', '-q', '--bare', str(work), str(srv / 'big.git'), home=repos.home)
    throttle = tmp_path / 'throttle'
    log = tmp_path / 'http.log'
    proc, port = start_http(repos, log=log, throttle=throttle, root=srv)
    yield {'work': work, 'srv': srv, 'throttle': throttle, 'log': log, 'url': f'http://127.0.0.1:{port}/big.git'}
    stop(proc)


def _kill_mid_transfer(child: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and 'PACK-START' not in (log.read_text() if log.exists() else ''):
        assert child.poll() is None, child.communicate()
        time.sleep(0.02)
    time.sleep(0.4)  # some of the pack has arrived, most has not
    assert child.poll() is None, 'the fetch finished before it could be killed'
    os.killpg(child.pid, signal.SIGKILL)
    child.communicate()


def test_killed_fetches_never_corrupt_the_mirror(repos, big_repo, cache_dir):
    url = big_repo['url']
    mirror = cache_dir / 'git' / mirror_name(url)
    # 1. first clone killed mid-way: only a staging dir is left, never a mirror that looks valid
    big_repo['throttle'].touch()
    _kill_mid_transfer(resolve_process(url), big_repo['log'])
    assert not (mirror / 'mlproj-mirror.json').exists()
    assert [p for p in (cache_dir / 'git').iterdir() if '.tmp-' in p.name]
    big_repo['throttle'].unlink()
    src = source.resolve(url)
    src.cleanup()
    assert not [p for p in (cache_dir / 'git').iterdir() if '.tmp-' in p.name]
    _fsck(mirror, repos.home)
    # 2. an incremental fetch killed mid-way (plus a stale ref lock): the next run recovers
    work = big_repo['work']
    (work / 'blob2.bin').write_bytes(os.urandom(3 << 20))
    git('add', '-A', cwd=work, home=repos.home)
    git('commit', '-qm', 'two', cwd=work, home=repos.home)
    git('push', '-q', str(big_repo['srv'] / 'big.git'), 'HEAD:main', cwd=work, home=repos.home)
    head = git('rev-parse', 'HEAD', cwd=work, home=repos.home)
    big_repo['throttle'].touch()
    big_repo['log'].write_text('')
    _kill_mid_transfer(resolve_process(url, 'main'), big_repo['log'])
    (mirror / 'refs' / 'heads' / 'main.lock').write_text('junk')
    _fsck(mirror, repos.home)
    big_repo['throttle'].unlink()
    src = source.resolve(url, 'main')
    try:
        assert src.commit == head and (src.root / 'blob2.bin').stat().st_size == 3 << 20
    finally:
        src.cleanup()
    assert not (mirror / 'refs' / 'heads' / 'main.lock').exists()
    _fsck(mirror, repos.home)


def test_lock_timeout_is_a_clear_error(repos, url_for, cache_dir, monkeypatch):
    from mlproj.cachedir import FileLock

    url = url_for('git')
    source.resolve(url).cleanup()
    lock = FileLock(cache_dir / 'git' / (mirror_name(url) + '.lock'))
    assert lock.acquire(0)
    try:
        child = resolve_process(url, None, env={'MLPROJ_LOCK_TIMEOUT': '2'})
        out, err = child.communicate(30)
    finally:
        lock.release()
    assert child.returncode != 0
    assert 'waiting for another mlproj process' in err
    assert 'timed out after 2s waiting for the cache lock' in err


def test_cache_list_and_prune(repos, url_for, cache_dir, capsys):
    url = url_for('http')
    source.resolve(url + '#sub/folder', 'v1.0').cleanup()
    kept = source.resolve(url, 'v1.0', keep_checkout=True)
    kept.cleanup()
    live = source.resolve(url, 'feature')  # still in use by this (live) process
    capsys.readouterr()
    assert main(['cache', 'list', '--json']) == 0
    listing = json.loads(capsys.readouterr().out)
    assert listing['root'] == str(cache_dir)
    assert [r['url'] for r in listing['repositories']] == [url]
    assert {c['path'] for c in listing['checkouts']} == {str(kept.root), str(live.root)}
    assert main(['cache', 'list']) == 0
    assert url in capsys.readouterr().out
    assert main(['cache', 'prune', '--older-than', '1d']) == 0
    assert '0 cache entries removed' in capsys.readouterr().out
    assert main(['cache', 'prune', '--dry-run']) == 0
    assert f'would remove {url}' in capsys.readouterr().out
    assert main(['cache', 'prune']) == 0
    out = capsys.readouterr().out
    # the live checkout borrows the mirror's objects (alternates): the mirror stays while it runs
    assert f'removed {url}' not in out and f'removed {kept.root}' in out
    assert not kept.root.exists() and live.root.exists()
    assert [m.url for m in CloneCache().mirrors()] == [url]
    assert_worktree(live.root, live.commit)
    live.cleanup()
    assert main(['cache', 'prune']) == 0
    assert f'removed {url}' in capsys.readouterr().out
    assert CloneCache().mirrors() == []
    assert main(['cache', 'prune', '--older-than', 'soon']) == 64


def test_first_clone_is_shallow_and_deepens_on_demand(repos, url_for, cache_dir, monkeypatch):
    url = url_for('http')
    mirror = cache_dir / 'git' / mirror_name(url)
    source.resolve(url, 'feature').cleanup()
    assert (mirror / 'shallow').is_file()           # depth 1: as cheap as MLflow's clone
    src = source.resolve(url, 'HEAD~2')              # needs history: fetched once, then local
    assert src.commit == repos.sha['A']
    src.cleanup()
    assert not (mirror / 'shallow').exists()
    _fsck(mirror, repos.home)
    # the opt-out: a full first clone
    monkeypatch.setenv('MLPROJ_CACHE_DIR', str(cache_dir / 'full'))
    monkeypatch.setenv('MLPROJ_GIT_FULL_CLONE', '1')
    src = source.resolve(url + '#sub/folder', repos.sha['A'])
    assert (src.root / 'VERSION').read_text() == 'A\n'
    src.cleanup()
    assert not (cache_dir / 'full' / 'git' / mirror_name(url) / 'shallow').exists()


def test_pinned_commit_below_every_tip_on_a_shallow_mirror(repos, tmp_path, cache_dir):
    work, srv = tmp_path / 'w', tmp_path / 'srv'
    git('init', '-q', str(work), home=repos.home)
    shas = []
    for i in range(3):
        (work / 'MLproject').write_text(f'name: n{i}\nentry_points:\n  main:\n    command: "true"\n')
        git('add', '-A', cwd=work, home=repos.home)
        git('commit', '-qm', f'c{i}', cwd=work, home=repos.home)
        shas.append(git('rev-parse', 'HEAD', cwd=work, home=repos.home))
    srv.mkdir()
    git('clone', '-q', '--bare', str(work), str(srv / 'r.git'), home=repos.home)
    proc, port = start_daemon(srv, repos.home, tmp_path / 'daemon.log')
    try:
        url = f'git://127.0.0.1:{port}/r.git'
        source.resolve(url).cleanup()                      # shallow mirror at c2
        src = source.resolve(url, shas[0])                 # c0 is below every tip: history completed
        assert src.commit == shas[0] and 'name: n0' in (src.root / 'MLproject').read_text()
        src.cleanup()
    finally:
        stop(proc)
    _fsck(cache_dir / 'git' / mirror_name(url), repos.home)


def test_a_slow_clone_shows_progress_on_a_terminal_and_no_control_sequences_elsewhere(big_repo, tmp_path):
    import shlex

    from tests.helpers import mlproj_bin

    big_repo['throttle'].touch()
    env = {**os.environ, 'MLPROJ_CACHE_DIR': str(tmp_path / 'tty-cache')}
    cmd = shlex.join([mlproj_bin(), 'run', big_repo['url'], '--dry-run'])
    tty = subprocess.run(['script', '-qefc', cmd, '/dev/null'], env=env, capture_output=True, timeout=180,
                         stdin=subprocess.DEVNULL)
    out = tty.stdout.decode('utf-8', 'replace')
    assert tty.returncode == 0, out
    assert f'\rmlproj: fetching {big_repo["url"]}: ' in out and ' objects, ' in out and ' MiB/s done' in out
    env['MLPROJ_CACHE_DIR'] = str(tmp_path / 'plain-cache')
    plain = subprocess.run([mlproj_bin(), 'run', big_repo['url'], '--dry-run'], env=env, capture_output=True,
                           text=True, timeout=180, stdin=subprocess.DEVNULL)
    assert plain.returncode == 0, plain.stderr
    assert '\r' not in plain.stderr and '\x1b' not in plain.stderr
