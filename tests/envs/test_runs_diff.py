"""`mlproj runs diff`: commit range, changed files under the subdirectory, params, packages (text and JSON)."""
from __future__ import annotations

import json

import pytest

from tests.envs.test_lock import _project, git, make_wheel, mlproj_cli, run_id_of, served  # noqa: F401


@pytest.mark.slow
def test_runs_diff_between_two_runs(tmp_path, served, session_sqlite_store, monkeypatch):  # noqa: F811
    monkeypatch.setenv('MLFLOW_TRACKING_URI', session_sqlite_store)
    repo = tmp_path / 'repo'
    _project(repo, ['mlproj-tiny-a'], name='sub')
    (repo / 'README').write_text('outside the subdirectory\n')
    git('init', '-q', '.', cwd=repo)
    git('add', '-A', cwd=repo)
    git('commit', '-qm', 'one', cwd=repo)
    first_sha = git('rev-parse', 'HEAD', cwd=repo)
    uri = f'{repo}#sub'
    first = mlproj_cli('run', uri, '--experiment-name', 'diff', cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    # two commits later: a changed and an added file in the subdirectory, one outside it
    (repo / 'sub' / 'show.py').write_text((repo / 'sub' / 'show.py').read_text() + '# changed\n')
    git('commit', '-qam', 'two', cwd=repo)
    (repo / 'sub' / 'data.csv').write_text('x\n1\n')
    (repo / 'README').write_text('changed outside\n')
    git('add', '-A', cwd=repo)
    git('commit', '-qm', 'three', cwd=repo)
    second_sha = git('rev-parse', 'HEAD', cwd=repo)
    make_wheel(served, 'mlproj-tiny-a', '2.0')
    monkeypatch.setenv('MLPROJ_ENV_ROOT', str(tmp_path / 'envs-2'))
    second = mlproj_cli('run', uri, '-P', 'alpha=0.7', '--experiment-name', 'diff', cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    a, b = run_id_of(first), run_id_of(second)

    text = mlproj_cli('runs', 'diff', a, b, cwd=tmp_path)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0].startswith(f'runs:        A {a} (FINISHED)  ->  B {b} (FINISHED)')
    assert lines[2] == (f'commits:     {first_sha[:12]}..{second_sha[:12]}: 2 commit(s) in A..B, 0 in B..A '
                        f'({repo})'), text.stdout
    assert 'files:       2 changed under sub/' in lines
    assert '  M sub/show.py' in lines and '  A sub/data.csv' in lines
    assert not any('README' in ln for ln in lines)
    assert 'params:      1 changed' in lines and '  alpha: 0.5 -> 0.7' in lines
    assert any(ln.startswith('packages:    1 changed (lock ') for ln in lines)
    assert '  mlproj-tiny-a: 1.0 -> 2.0' in lines
    assert len(lines) < 25

    js = mlproj_cli('runs', 'diff', a, b, '--json', cwd=tmp_path)
    assert js.returncode == 0, js.stderr
    d = json.loads(js.stdout)
    assert d['commits'] == {'a': first_sha, 'b': second_sha, 'repository': str(repo), 'ahead': 2, 'behind': 0}
    assert d['files'] == {'subdirectory': 'sub', 'changed': [{'status': 'A', 'path': 'sub/data.csv'},
                                                             {'status': 'M', 'path': 'sub/show.py'}]}
    assert d['params'] == {'added': {}, 'removed': {}, 'changed': {'alpha': ['0.5', '0.7']}}
    assert d['packages'] == {'added': {}, 'removed': {}, 'changed': {'mlproj-tiny-a': ['1.0', '2.0']},
                             'python': None}
    # the same spec (so the same env hash), yet another package set: what the lock is for
    assert d['changed'] == {} and d['notes'] == []
    assert d['a']['env_hash'] == d['b']['env_hash'] and d['a']['lock_sha256'] != d['b']['lock_sha256']
    # reversed: the range counts the other way
    back = json.loads(mlproj_cli('runs', 'diff', b, a, '--json', cwd=tmp_path).stdout)
    assert (back['commits']['ahead'], back['commits']['behind']) == (0, 2)
    # an unknown run: one line, the tracking exit code
    bad = mlproj_cli('runs', 'diff', a, '0' * 32, cwd=tmp_path)
    assert bad.returncode == 70 and bad.stderr.startswith('mlproj: error:'), bad.stderr
