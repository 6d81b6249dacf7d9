"""The pre-commit manifest: valid, matches the right file names, and works through a real `pre-commit try-repo`."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from identify import identify

from tests.helpers import REPO
from tests.helpers.git import git

pytestmark = pytest.mark.slow  # builds real pre-commit hook environments

MANIFEST = REPO / '.pre-commit-hooks.yaml'
PRE_COMMIT = str(Path(sys.executable).with_name('pre-commit'))

MATCHES = {
    'mlproj-lint': (['MLproject', 'sub/dir/MLproject', 'python_env.yaml', 'p/python_env.yml', 'conda.yaml',
                     'p/conda.yml', 'environment.yml', 'environment.yaml', 'requirements.txt',
                     'p/dev-requirements.txt', 'requirements-gpu.in'],
                    ['MLproject.yaml', 'xMLproject', 'MLproject/x', 'mlproject.yml', 'MLproject.bak',
                     'python_env.yaml.bak', 'my_conda.yaml', 'setup.py', 'requirements.txt/x']),
    'mlproj-misnamed': (['MLproject.yaml', 'a/mlproject.yml', 'b/MLPROJECT.YAML', 'MLproject.json'],
                        ['MLproject', 'my-mlproject.yaml', 'MLproject.yaml.bak']),
}


def hooks() -> dict[str, dict]:
    return {h['id']: h for h in yaml.safe_load(MANIFEST.read_text())}


def test_manifest_is_valid():
    proc = subprocess.run([PRE_COMMIT, 'validate-manifest', str(MANIFEST)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize('hook_id', sorted(MATCHES))
def test_files_and_types_select_the_right_files(hook_id):
    """pre-commit's own matching: `files` with re.search, every `types` tag present (identify)."""
    hook = hooks()[hook_id]
    assert hook['language'] == 'python' and hook['entry'].startswith('mlproj lint')
    good, bad = MATCHES[hook_id]
    for path in good + bad:
        matched = bool(re.search(hook['files'], path)) and set(hook['types']) <= (
            identify.tags_from_filename(os.path.basename(path)) | {'text', 'file'})
        assert matched == (path in good), path


def test_yaml_type_would_never_see_an_mlproject_file():
    # why the hook says `types: [text]`: identify gives a file named MLproject no yaml tag
    assert 'yaml' not in identify.tags_from_filename('MLproject')
    assert re.search(hooks()['mlproj-lint']['files'], 'a/MLproject')
    assert hooks()['mlproj-lint']['types'] == ['text']


def test_lint_hook_is_serial_and_verbose():
    # one process, so one summary line; verbose, so warnings are seen on a passing run
    hook = hooks()['mlproj-lint']
    assert hook['require_serial'] is True and hook['verbose'] is True
    assert '--force-exclude' in hook['entry'].split()


def test_manifest_env_file_pattern_is_the_linters():
    """The files pre-commit passes are the files lint maps back to their MLproject."""
    from mlproj.lint.engine import is_env_file

    files = hooks()['mlproj-lint']['files']
    for name in ('python_env.yaml', 'Python_Env.YML', 'conda.yml', 'environment.yaml', 'requirements.txt',
                 'dev-requirements.in', 'python_env.yaml.bak', 'my_conda.yaml', 'setup.py', 'env.yaml'):
        assert bool(re.search(files, 'sub/' + name)) == is_env_file(name), name


def test_try_repo_good_passes_bad_fails(tmp_path, git_env):
    repo = tmp_path / 'work'
    (repo / 'good').mkdir(parents=True)
    (repo / 'bad').mkdir()
    (repo / 'good' / 'MLproject').write_text('name: g\nentry_points:\n  main: {command: "echo hi"}\n')
    (repo / 'bad' / 'MLproject').write_text('entry_points:\n  main:\n    command: "echo {nope}"\n')
    (repo / 'bad' / 'MLproject.yaml').write_text('name: stray\n')
    git('init', '-q', cwd=repo)
    git('add', '.', cwd=repo)
    # One pip cache for both calls: with uncommitted changes try-repo snapshots the tree into a new
    # commit each time, so the second call builds its hook environment again.
    env = dict(os.environ, PRE_COMMIT_HOME=str(tmp_path / 'pre-commit-home'), PRE_COMMIT_COLOR='never',
               PIP_CACHE_DIR=str(tmp_path / 'pip-cache'))
    started = time.monotonic()
    good = subprocess.run([PRE_COMMIT, 'try-repo', str(REPO), 'mlproj-lint', '--files', 'good/MLproject'],
                          cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    first = time.monotonic() - started
    assert good.returncode == 0, good.stdout + good.stderr
    assert re.search(r'mlproj lint\.+Passed', good.stdout)
    bad = subprocess.run([PRE_COMMIT, 'try-repo', str(REPO), '--files', 'bad/MLproject', 'bad/MLproject.yaml',
                          'good/MLproject'], cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert re.search(r'mlproj lint\.+Failed', bad.stdout)
    assert "bad/MLproject:3:20: MLP012 error: command of entry point 'main' uses {nope}" in bad.stdout
    assert re.search(r'mlproj misnamed MLproject\.+Failed', bad.stdout)
    assert 'bad/MLproject.yaml: MLP015 warning:' in bad.stdout
    print(f'try-repo with a cold hook environment: {first:.1f} s')
