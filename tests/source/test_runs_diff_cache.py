"""`mlproj runs diff` of runs of a remote repository: the commit range is counted in the clone cache
(the server is gone by then), diverged branches count both ways, only files under the subdirectory."""
from __future__ import annotations

import json

from tests.helpers import run_mlproj
from tests.helpers.source import start_daemon, stop
from tests.source.test_e2e import cli, run_id


def test_runs_diff_counts_commits_in_the_clone_cache(repos, tmp_path, sqlite_store, monkeypatch, capfd):
    monkeypatch.setenv('MLFLOW_TRACKING_URI', sqlite_store)
    monkeypatch.setenv('MLPROJ_CACHE_DIR', str(tmp_path / 'cache'))
    monkeypatch.setenv('MLPROJ_TEST_OUT', str(tmp_path / 'out.jsonl'))
    monkeypatch.setenv('MLPROJ_GIT_FULL_CLONE', '1')   # whole histories: the range can be counted
    proc, port = start_daemon(repos.srv, repos.home, tmp_path / 'daemon.log')
    ids = {}
    try:
        uri = f'git://127.0.0.1:{port}/proj.git#sub/folder'
        for label, alpha in (('A', '0.1'), ('C', '0.1'), ('D', '0.2')):
            code, _out, err = cli(capfd, 'run', uri, '-v', repos.sha[label], '-P', f'alpha={alpha}',
                                  '--env-manager', 'local', '--experiment-name', 'diff-cache')
            assert code == 0, err
            ids[label] = run_id(err)
    finally:
        stop(proc)
    r = run_mlproj('runs', 'diff', ids['A'], ids['D'], '--json')
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert (d['commits']['ahead'], d['commits']['behind']) == (2, 0)             # B, D
    assert d['commits']['repository'] == f'clone cache of git://127.0.0.1:{port}/proj.git'
    assert d['files'] == {'subdirectory': 'sub/folder', 'changed': []}           # only VERSION changed, at the root
    assert d['params']['changed'] == {'alpha': ['0.1', '0.2']}
    assert d['packages'] is None and 'run A recorded no environment lock' in d['notes']
    r = run_mlproj('runs', 'diff', ids['D'], ids['C'])
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[2] == (f"commits:     {repos.sha['D'][:12]}..{repos.sha['C'][:12]}: 1 commit(s) in A..B, "
                        f'1 in B..A (clone cache of git://127.0.0.1:{port}/proj.git)'), r.stdout
    assert 'files:       0 changed under sub/folder/' in lines
    assert '  alpha: 0.2 -> 0.1' in lines
    # a shallow mirror (the default first clone) that lacks the common ancestor: no count, a note
    monkeypatch.setenv('MLPROJ_CACHE_DIR', str(tmp_path / 'shallow'))
    monkeypatch.delenv('MLPROJ_GIT_FULL_CLONE')
    proc, port = start_daemon(repos.srv, repos.home, tmp_path / 'daemon2.log')
    try:
        shallow = {}
        for label in ('A', 'D'):
            code, _out, err = cli(capfd, 'run', f'git://127.0.0.1:{port}/proj.git#sub/folder', '-v', repos.sha[label],
                                  '--env-manager', 'local', '--experiment-name', 'diff-cache')
            assert code == 0, err
            shallow[label] = run_id(err)
    finally:
        stop(proc)
    d = json.loads(run_mlproj('runs', 'diff', shallow['A'], shallow['D'], '--json').stdout)
    assert d['commits']['ahead'] is None and d['commits']['behind'] is None, d['commits']
    assert any(n.startswith('commits not counted: clone cache of') for n in d['notes']), d['notes']
    assert d['files'] == {'subdirectory': 'sub/folder', 'changed': []}
    # no cache: only the two SHAs, with a note
    r = run_mlproj('runs', 'diff', ids['A'], ids['C'], env={'MLPROJ_CACHE_DIR': str(tmp_path / 'empty')})
    assert r.returncode == 0, r.stderr
    assert f"commits:     {repos.sha['A'][:12]}..{repos.sha['C'][:12]}" in r.stdout.splitlines()
    assert 'note: no local repository or clone-cache mirror holds both commits' in r.stdout
