"""Fast lane: the exact-lock format, installer-option refusal, missing-pin detection, artifact
locations (mlproj.artifacts) and the `runs diff` text view.  The real builds, servers and
reproduce runs are in ``tests/envs/test_lock.py`` and ``tests/envs/test_runs_diff.py``."""
from __future__ import annotations

import hashlib

import pytest

from mlproj import rundiff
from mlproj.envs import lock as locks
from mlproj.errors import EnvError

LOCK = """# mlproj environment lock 1
# python: 3.11.7 cpython
# platform: linux x86_64 glibc-2.36
# hashes: sha256 (uv pip compile --generate-hashes)
mlproj-tiny-a==1.0 \\
    --hash=sha256:aaaa \\
    --hash=sha256:bbbb
Mlproj_Tiny.B[extra]==2.0
other @ file:///somewhere/other-1.0-py3-none-any.whl
"""


# --------------------------------------------------------------------------------------------
# the format (fast)


def test_lock_format_parses():
    lk = locks.parse(LOCK.encode())
    assert lk.python == '3.11.7' and lk.hashed
    assert lk.header['hashes'].startswith('sha256')
    assert lk.packages() == {'mlproj-tiny-a': '1.0', 'mlproj-tiny-b': '2.0',
                             'other': 'file:///somewhere/other-1.0-py3-none-any.whl'}
    assert lk.requirements()[0] == 'mlproj-tiny-a==1.0'
    assert lk.sha256 == hashlib.sha256(LOCK.encode()).hexdigest()
    with pytest.raises(EnvError, match='not an mlproj environment lock'):
        locks.parse(b'numpy==1.0\n')


@pytest.mark.parametrize('line', ['--index-url http://elsewhere/simple', '-e ./pkg', 'x==1 --index-url=http://e',
                                  '-r other.txt'])
def test_installer_options_in_a_lock_are_refused(line):
    locks.parse(LOCK.encode()).check()
    with pytest.raises(EnvError, match='installer options are refused'):
        locks.parse((LOCK + line + '\n').encode()).check()


@pytest.mark.parametrize('output', [
    # uv
    'error: No solution found when resolving dependencies\n  cause: Because there is no version of '
    'mlproj-tiny-a==1.0 and you require mlproj-tiny-a==1.0, we can conclude that your requirements are unsatisfiable.',
    # pip
    'ERROR: Could not find a version that satisfies the requirement mlproj-tiny-a==1.0 (from versions: 2.0)\n'
    'ERROR: No matching distribution found for mlproj-tiny-a==1.0',
])
def test_missing_package_is_named(output):
    lk = locks.parse(LOCK.encode())
    assert locks.missing_package(lk, output) == 'mlproj-tiny-a==1.0'
    assert locks.missing_package(lk, 'error: failed to download: connection refused') is None


def test_artifact_urls_and_local_copy(tmp_path):
    from mlproj import artifacts
    from mlproj.tracking import RunRecord
    from mlproj.tracking_rest import RestTracker

    rest = RestTracker('http://127.0.0.1:5000/prefix')
    assert artifacts._proxy_url(rest, 'mlflow-artifacts:/1/abc/artifacts', 'mlproj/requirements.lock.txt') == \
        'http://127.0.0.1:5000/prefix/api/2.0/mlflow-artifacts/artifacts/1/abc/artifacts/mlproj/requirements.lock.txt'
    assert artifacts._proxy_url(rest, 'mlflow-artifacts://other:9/1/abc/artifacts', 'x.txt') == \
        'http://other:9/prefix/api/2.0/mlflow-artifacts/artifacts/1/abc/artifacts/x.txt'
    assert artifacts._proxy_url(rest, 's3://bucket/1/abc', 'x.txt') is None

    class Fake:
        uri = 'sqlite:///nowhere.db'

        def __init__(self, artifact_uri):
            self.artifact_uri = artifact_uri

        def get_run(self, run_id):
            return RunRecord(run_id, '0', 'RUNNING', artifact_uri=self.artifact_uri)

    src = tmp_path / 'lock.txt'
    src.write_text(LOCK)
    for uri in ((tmp_path / 'a' / 'artifacts').as_uri(), str(tmp_path / 'b' / 'artifacts')):
        fake = Fake(uri)
        assert artifacts.read_file(fake, 'r1', locks.ARTIFACT_PATH) is None
        artifacts.log_file(fake, 'r1', src, locks.ARTIFACT_PATH)
        assert artifacts.read_file(fake, 'r1', locks.ARTIFACT_PATH) == LOCK.encode()
    assert (tmp_path / 'b' / 'artifacts' / 'mlproj' / 'requirements.lock.txt').read_text() == LOCK


def test_render_truncates_long_lists():
    d = {'a': {'run_id': 'a1', 'status': 'FINISHED', 'source': 's', 'commit': 'c' * 40, 'lock_sha256': 'l1'},
         'b': {'run_id': 'b1', 'status': 'FAILED', 'source': 's', 'commit': 'd' * 40, 'lock_sha256': 'l2'},
         'commits': {'a': 'c' * 40, 'b': 'd' * 40, 'repository': None, 'ahead': None, 'behind': None},
         'files': None, 'changed': {'entry_point': ['main', 'train']},
         'params': {'added': {f'p{i}': str(i) for i in range(40)}, 'removed': {}, 'changed': {}},
         'packages': {'added': {}, 'removed': {'x': '1'}, 'changed': {'y': ['1', '2']}, 'python': ['3.11.7', '3.12.1']},
         'notes': ['run A recorded no environment lock']}
    text = rundiff.render(d)
    lines = text.splitlines()
    assert lines[2] == f"commits:     {'c' * 12}..{'d' * 12}"
    assert 'entry point: main -> train' in lines
    assert 'params:      40 changed' in lines
    assert '  ... and 25 more (--json lists all)' in lines
    assert '  y: 1 -> 2' in lines and '  - x 1' in lines and '  python: 3.11.7 -> 3.12.1' in lines
    assert lines[-1] == 'note: run A recorded no environment lock'
    assert len(lines) < 40
