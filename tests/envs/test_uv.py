"""The uv manager for real: create, reuse, reject, lock files in the key, concurrency, interruption."""
from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from mlproj.envs import EnvContext, prepare, select_manager
from mlproj.envs.store import EnvStore
from mlproj.errors import EnvError
from mlproj.spec import load_project
from tests.helpers.envs import py_version, write_project

CHECK = """import os, sys, mlproj_tiny_a
assert sys.prefix == os.environ['VIRTUAL_ENV'], (sys.prefix, os.environ['VIRTUAL_ENV'])
print('tiny', mlproj_tiny_a.VERSION)
"""


def make(tmp_path: Path, deps: list[str], python: str | None = None, extra: dict | None = None,
         name: str = 'proj') -> Path:
    python = python or py_version()
    env = f'python: "{python}"\nbuild_dependencies: []\ndependencies:\n' + ''.join(f'  - "{d}"\n' for d in deps)
    files = {
        'MLproject': f'name: {name}\npython_env: python_env.yaml\nentry_points:\n  main:\n    command: "python check.py"\n',
        'check.py': CHECK,
        'python_env.yaml': env,
        **(extra or {}),
    }
    return write_project(tmp_path / name, files)


def prep(project_dir: Path, manager: str | None = 'uv'):
    log = io.StringIO()
    project = load_project(project_dir)
    env = prepare(project, select_manager(project, manager), EnvContext(log=log))
    return env, log.getvalue()


def run_in(env, code: str) -> str:
    argv, child = env.argv(f'python -c {code!r}', dict(os.environ), Path.cwd())
    return subprocess.run(argv, env=child, capture_output=True, text=True, check=True).stdout.strip()


def test_create_then_reuse_without_subprocess(tmp_path, offline_index, monkeypatch):
    proj = make(tmp_path, ['mlproj-tiny-b'])
    env, log = prep(proj)
    assert 'Creating uv environment uv-' in log
    assert env.tag == 'uv' and env.manager == 'uv' and len(env.hash) == 64
    assert run_in(env, 'import mlproj_tiny_a, mlproj_tiny_b; print(mlproj_tiny_a.VERSION)') == '2.0'
    assert not (env.path / 'bin' / 'pip').exists()  # a uv venv has no pip unless asked for
    # reuse: same env, nothing printed, no subprocess of any kind
    real_popen = subprocess.Popen

    def forbidden(*a, **k):
        raise AssertionError(f'subprocess on the reuse path: {a}')

    monkeypatch.setattr(subprocess, 'Popen', forbidden)
    again, log2 = prep(proj)
    monkeypatch.setattr(subprocess, 'Popen', real_popen)
    assert (again.path, again.hash) == (env.path, env.hash)
    assert log2 == ''
    # published as a symlink onto a directory that is never moved
    link = EnvStore().root / f'uv-{env.hash[:24]}'
    assert link.is_symlink() and Path(os.path.realpath(link)) == env.path


def test_default_manager_runs_the_project_and_records_tags(tmp_path, offline_index, file_store):
    import mlflow

    import mlproj

    proj = make(tmp_path, ['mlproj-tiny-a==1.0'])
    project = load_project(proj)
    assert select_manager(project, None) == 'uv'
    submitted = mlproj.run(str(proj), 'main', tracking_uri=file_store)
    run = mlflow.MlflowClient(file_store).get_run(submitted.run_id)
    assert run.info.status == 'FINISHED'
    env, _ = prep(proj)
    assert run.data.tags['mlflow.project.env'] == 'uv'
    assert run.data.tags['mlproj.env.hash'] == env.hash
    assert run.data.tags['mlproj.env_manager'] == 'uv'


def test_bad_python_version_is_a_clear_error(tmp_path):
    proj = make(tmp_path, [], python='3.99')
    with pytest.raises(EnvError) as e:
        prep(proj)
    msg = str(e.value)
    assert "no installed Python matches python '3.99'" in msg
    assert 'UV_PYTHON_DOWNLOADS=never' in msg
    assert msg.endswith(f"({proj / 'python_env.yaml'}:1:9)")
    assert py_version() in msg  # the installed versions are listed


def test_unresolvable_dependency_fails_and_publishes_nothing(tmp_path, offline_index):
    proj = make(tmp_path, ['mlproj-tiny-a==9.9'])
    with pytest.raises(EnvError) as e:
        prep(proj)
    msg = str(e.value)
    assert msg.startswith('installing dependencies failed:')
    assert 'mlproj-tiny-a' in msg and '\n' not in msg
    root = EnvStore().root
    assert [p.name for p in root.iterdir() if not p.name.startswith('.')] == []
    assert list((root / '.store').iterdir()) == []


def test_malformed_python_env_fails_before_the_run_with_line_col(tmp_path, file_store):
    proj = make(tmp_path, [])
    (proj / 'python_env.yaml').write_text('python: "3.11"\ndependencies: [six\n')
    out = subprocess.run([sys.executable, '-m', 'mlproj', 'run', str(proj), '--tracking-uri', file_store],
                         capture_output=True, text=True)
    assert out.returncode == 68, out.stderr
    assert f"{proj / 'python_env.yaml'}:3:1)" in out.stderr
    assert 'mlproj: error: MLP017 YAML syntax error' in out.stderr
    assert 'Traceback' not in out.stderr
    assert 'Running command' not in out.stderr


def test_hash_covers_referenced_files_recursively(tmp_path, offline_index):
    proj = make(tmp_path, ['-r requirements.txt'], extra={
        'requirements.txt': '-r more.txt\n', 'more.txt': 'mlproj-tiny-a==1.0\n'})
    env1, _ = prep(proj)
    assert run_in(env1, 'import mlproj_tiny_a; print(mlproj_tiny_a.VERSION)') == '1.0'
    (proj / 'more.txt').write_text('mlproj-tiny-a==2.0\n')
    env2, log = prep(proj)
    assert env2.hash != env1.hash and 'Creating' in log
    assert run_in(env2, 'import mlproj_tiny_a; print(mlproj_tiny_a.VERSION)') == '2.0'
    # a copy of the project elsewhere (another checkout) shares the environment
    copy = make(tmp_path, ['-r requirements.txt'], name='copy', extra={
        'requirements.txt': '-r more.txt\n', 'more.txt': 'mlproj-tiny-a==2.0\n'})
    env3, log3 = prep(copy)
    assert env3.hash == env2.hash and log3 == ''


def test_uv_lock_is_installed_and_part_of_the_key(tmp_path, offline_index):
    from mlproj.envs.uv import uv_bin

    proj = make(tmp_path, [], extra={'pyproject.toml': textwrap.dedent('''\
        [project]
        name = "locked"
        version = "0.1"
        requires-python = ">=3.8"
        dependencies = ["mlproj-tiny-a==1.0"]
        ''')})
    subprocess.run([uv_bin(), 'lock', '--quiet'], cwd=proj, check=True)
    env1, _ = prep(proj)
    assert run_in(env1, 'import mlproj_tiny_a; print(mlproj_tiny_a.VERSION)') == '1.0'
    text = (proj / 'pyproject.toml').read_text().replace('==1.0', '==2.0')
    (proj / 'pyproject.toml').write_text(text)
    subprocess.run([uv_bin(), 'lock', '--quiet'], cwd=proj, check=True)
    env2, log = prep(proj)
    assert env2.hash != env1.hash and 'Creating' in log
    assert run_in(env2, 'import mlproj_tiny_a; print(mlproj_tiny_a.VERSION)') == '2.0'
    assert not (proj / '.venv').exists()  # the project directory is left alone


WORKER = '''
import io, os, sys, time
from pathlib import Path
from mlproj.envs import EnvContext, prepare
from mlproj.spec import load_project
go = Path(sys.argv[2])
while not go.exists():
    time.sleep(0.01)
log = io.StringIO()
env = prepare(load_project(sys.argv[1]), sys.argv[3], EnvContext(log=log))
print(env.path, 'built' if 'Creating' in log.getvalue() else 'reused', flush=True)
'''


@pytest.mark.parametrize('manager', ['uv', 'virtualenv'])
def test_eight_concurrent_runs_build_once(tmp_path, offline_index, manager):
    proj = make(tmp_path, ['mlproj-tiny-b'])
    go = tmp_path / 'go'
    procs = [subprocess.Popen([sys.executable, '-c', WORKER, str(proj), str(go), manager], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(8)]
    time.sleep(1.0)  # let all eight start and block on the barrier
    go.touch()
    results = []
    for p in procs:
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, err
        results.append(out.split())
    paths = {r[0] for r in results}
    assert len(paths) == 1
    assert sorted(r[1] for r in results) == ['built'] + ['reused'] * 7
    assert len(list((EnvStore().root / '.store').iterdir())) == 1


INTERRUPTED = '''
import io, sys
from mlproj.envs import EnvContext, prepare
from mlproj.spec import load_project
prepare(load_project(sys.argv[1]), 'uv', EnvContext(log=io.StringIO()))
'''


def test_interrupted_build_leaves_nothing_reusable(tmp_path, hanging_index, wheelhouse, monkeypatch):
    url, hits = hanging_index
    proj = make(tmp_path, ['mlproj-tiny-a'])
    env = dict(os.environ, UV_INDEX_URL=url, UV_HTTP_TIMEOUT='300')
    p = subprocess.Popen([sys.executable, '-c', INTERRUPTED, str(proj)], env=env, start_new_session=True,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not hits and time.monotonic() < deadline:
        time.sleep(0.05)
    assert hits, 'the build never reached the package index'
    os.killpg(p.pid, signal.SIGKILL)  # no cleanup handler runs: the worst case
    p.wait()
    store = EnvStore()
    leftovers = list((store.root / '.store').iterdir())
    assert len(leftovers) == 1 and not (leftovers[0] / '.mlproj-env.json').exists()
    assert [p.name for p in store.root.iterdir() if not p.name.startswith('.')] == []
    listed = json.loads(CliRunner().invoke(_env_cli(), ['list', '--json']).output)['environments']
    assert [e['state'] for e in listed] == ['incomplete']
    # the next build of the same key (now with a working index) rebuilds and removes the leftover
    monkeypatch.setenv('UV_NO_INDEX', '1')
    monkeypatch.setenv('UV_FIND_LINKS', str(wheelhouse))
    env2, log = prep(proj)
    assert 'Creating' in log
    assert list((store.root / '.store').iterdir()) == [env2.path]
    assert run_in(env2, 'import mlproj_tiny_a; print(mlproj_tiny_a.VERSION)') == '2.0'


def _env_cli():
    from mlproj.commands.env import env

    return env


def test_env_list_and_prune(tmp_path, offline_index):
    proj = make(tmp_path, ['mlproj-tiny-a'])
    env, _ = prep(proj)
    store = EnvStore()
    (store.root / '.store' / 'uv-deadbeef.0000').mkdir()  # an interrupted build
    runner = CliRunner()
    listed = json.loads(runner.invoke(_env_cli(), ['list', '--json']).output)['environments']
    assert {(e['name'], e['state']) for e in listed} == {(f'uv-{env.hash[:24]}', 'ready'), ('uv-deadbeef', 'incomplete')}
    text = runner.invoke(_env_cli(), ['list']).output
    assert f'uv-{env.hash[:24]}' in text and py_version() in text
    out = runner.invoke(_env_cli(), ['prune'])
    assert out.exit_code == 0 and 'removed uv-deadbeef' in out.output and 'kept 1' in out.output
    assert env.path.exists()
    out = runner.invoke(_env_cli(), ['prune', '--older-than', '1h'])
    assert 'removed 0, kept 1' in out.output
    os.utime(env.path / '.mlproj-env.json', (time.time() - 7200, time.time() - 7200))
    out = runner.invoke(_env_cli(), ['prune', '--older-than', '1h', '--dry-run'])
    assert 'would remove 1' in out.output and env.path.exists()
    out = runner.invoke(_env_cli(), ['prune', '--all'])
    assert 'removed 1' in out.output and not env.path.exists()
    assert prep(proj)[1].startswith('=== Creating')


def test_env_build_command(tmp_path, offline_index):
    proj = make(tmp_path, ['mlproj-tiny-a'])
    out = CliRunner().invoke(_env_cli(), ['build', str(proj)])
    assert out.exit_code == 0, out.output
    assert 'manager: uv' in out.output and 'hash:' in out.output


def test_project_without_env_gets_an_empty_venv_with_the_launchers_python(tmp_path):
    proj = write_project(tmp_path / 'bare', {'MLproject': 'entry_points:\n  main:\n    command: "true"\n'})
    env, _ = prep(proj, 'uv')
    assert run_in(env, 'import sys; print(sys.version_info[:3])') == str(tuple(sys.version_info[:3]))
    assert select_manager(load_project(proj), None) == 'local'


def test_real_pypi_package(tmp_path):
    """One install from the real index (PyPI) with a tiny package."""
    proj = make(tmp_path, ['six==1.16.0'])
    env, _ = prep(proj)
    assert run_in(env, 'import six; print(six.__version__)') == '1.16.0'


def test_signal_during_environment_build_kills_run_and_build(tmp_path, hanging_index):
    """SIGTERM while `mlproj run` is still building the env: exit 143, run KILLED, no uv left."""
    from mlflow.tracking import MlflowClient

    url, hits = hanging_index
    proj = make(tmp_path, ['mlproj-tiny-a'])
    store = f'sqlite:///{tmp_path}/mlflow.db'
    env = dict(os.environ, UV_INDEX_URL=url, UV_HTTP_TIMEOUT='300', MLFLOW_TRACKING_URI=store)
    mlproj_exe = str(Path(sys.executable).with_name('mlproj'))
    p = subprocess.Popen([mlproj_exe, 'run', str(proj), '--env-manager', 'uv'], env=env, cwd=tmp_path,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not hits and time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.05)
    assert hits, p.communicate()
    builders = subprocess.run(['pgrep', '-P', str(p.pid)], capture_output=True, text=True).stdout.split()
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 143, err
    assert 'interrupted by signal 15 while starting the run' in err and 'Traceback' not in err
    (run,) = MlflowClient(tracking_uri=store).search_runs(['0'])
    assert run.info.status == 'KILLED'
    time.sleep(0.2)
    for pid in builders:
        assert not Path(f'/proc/{pid}').exists() or 'Z' in Path(f'/proc/{pid}/stat').read_text().split()[2]
