"""mlproj.digest.sha256 is hashlib's SHA-256 without loading OpenSSL on the run path."""
from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
import time

from mlproj import digest
from tests.helpers.git import commit_all, git


def test_same_digests_as_hashlib():
    rng = random.Random(15)
    for n in [0, 1, 55, 56, 63, 64, 65, 127, 128, 1000, 65536, 1 << 20]:
        data = rng.randbytes(n)
        assert digest.sha256(data).hexdigest() == hashlib.sha256(data).hexdigest()
        ours, theirs = digest.sha256(), hashlib.sha256()
        for i in range(0, n, 777):
            ours.update(data[i:i + 777])
            theirs.update(data[i:i + 777])
        fork = ours.copy()
        assert ours.digest() == theirs.digest() and fork.hexdigest() == theirs.hexdigest()


def test_a_planned_run_does_not_load_openssl(tmp_path_factory):
    """Planning a run of a local project (YAML cache key, run-cache key, clean-tree check) takes
    its digests without hashlib's OpenSSL module."""
    tmp_path = tmp_path_factory.mktemp('project')
    cache = tmp_path_factory.mktemp('cache')  # outside the work tree, which must stay clean
    (tmp_path / 'MLproject').write_text('name: p\nentry_points:\n  main:\n    parameters:\n      x: {type: int, default: 1}\n'
                                        '    command: "python t.py {x}"\n')
    git('init', '-q', cwd=tmp_path)
    commit_all(tmp_path)
    time.sleep(2.1)  # older than mlproj.source.gitstate's racy window, so the clean tree is remembered
    code = ('import sys; from mlproj.request import RunRequest; from mlproj.runner import plan; '
            f'p = plan(RunRequest(uri={str(tmp_path)!r}, env_manager="local", tracking_uri="http://127.0.0.1:9")); '
            'assert len(p.cache_key) == 64, p.cache_miss_reason; '
            'print(sorted(m for m in ("_hashlib", "hashlib", "ssl") if m in sys.modules))')
    env = {**os.environ, 'MLPROJ_CACHE_DIR': str(cache)}
    # the first plan fills the YAML and Git-state caches (PyYAML and pygit2 are loaded then); the
    # second is a run of an unchanged project, which loads neither
    for _ in range(2):
        out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=env, cwd=tmp_path)
        assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ['[]']
