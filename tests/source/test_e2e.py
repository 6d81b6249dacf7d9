"""End to end: `mlproj run` on every URI form records MLflow's Git tags; `mlproj reproduce`; no token anywhere.

Runs go through ``mlproj.cli.main`` in process (one MLflow import, one sqlite store per module)
and, where the process boundary matters (reproduce, token scrubbing), through the real
``mlproj`` executable.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mlproj.cli import main
from tests.helpers import run_mlproj
from tests.helpers.source import FORMS, TOKEN, USER, start_daemon, stop

RUN_ID = re.compile(r"=== Run \(ID '([0-9a-f]+)'\) (succeeded|failed)")


@pytest.fixture(scope='module')
def client(sqlite_store):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=sqlite_store)


@pytest.fixture
def store_env(sqlite_store, monkeypatch, tmp_path):
    monkeypatch.setenv('MLFLOW_TRACKING_URI', sqlite_store)
    out = tmp_path / 'out.jsonl'
    monkeypatch.setenv('MLPROJ_TEST_OUT', str(out))
    return out


def cli(capfd, *args: str) -> tuple[int, str, str]:
    try:
        code = main(list(args))
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    out, err = capfd.readouterr()
    return code, out, err


def run_id(stderr: str) -> str:
    m = RUN_ID.search(stderr)
    assert m, stderr
    return m.group(1)


def _all_runs(client) -> list:
    return client.search_runs(experiment_ids=['0'], max_results=1000)


@pytest.mark.parametrize('form', FORMS)
def test_run_records_git_tags(form, repos, url_for, store_env, client, cache_dir, capfd):
    base = url_for(form)
    short = repos.sha['B'][:8]
    code, _out, err = cli(capfd, 'run', f'{base}#sub/folder', '-v', short, '-P', 'alpha=0.5',
                          '--env-manager', 'local')
    assert code == 0, err
    run = client.get_run(run_id(err))
    tags = run.data.tags
    assert run.info.status == 'FINISHED'
    assert tags['mlflow.source.git.commit'] == repos.sha['B']          # full SHA from a short one
    assert tags['mlproj.source.version'] == short
    assert tags['mlproj.source.subdirectory'] == 'sub/folder'
    assert tags['mlflow.project.entryPoint'] == 'main'
    assert tags['mlflow.source.type'] == 'PROJECT'
    assert tags['mlproj.env_manager'] == 'local'
    assert 'mlflow.source.git.branch' not in tags
    assert run.data.params == {'alpha': '0.5'}
    if form in ('file', 'path'):
        origin = (repos.srv / 'proj.git').resolve().as_uri()
        assert tags['mlflow.source.name'] == origin + '#sub/folder'
        assert tags['mlproj.source.uri'] == origin
    elif form == 'worktree':
        origin = repos.work.resolve().as_uri()
        assert tags['mlflow.source.name'] == origin + '#sub/folder'
        assert tags['mlflow.source.git.repoURL'] == str(repos.srv / 'proj.git')
    else:
        assert tags['mlflow.source.name'] == base + '#sub/folder'
        assert tags['mlflow.source.git.repoURL'] == base
        assert tags['mlflow.gitRepoURL'] == base
        assert tags['mlproj.source.uri'] == base
    info = json.loads(store_env.read_text())
    assert info['version'] == 'B' and info['args'] == ['0.5'] and info['cwd'].endswith('/sub/folder')
    assert [p for p in (cache_dir / 'checkouts').iterdir() if p.is_dir()] == []


def test_branch_tag_and_failed_source_leaves_no_run(repos, url_for, store_env, client, cache_dir, capfd):
    code, _out, err = cli(capfd, 'run', url_for('git'), '-v', 'feature', '--env-manager', 'local')
    assert code == 0, err
    assert client.get_run(run_id(err)).data.tags['mlflow.source.git.branch'] == 'feature'
    before = len(_all_runs(client))
    for args in (['ext::sh -c touch% /tmp/mlproj-pwned'], [url_for('git'), '-v', '--upload-pack=touch /tmp/x'],
                 [url_for('git') + '#../..'], [url_for('git') + '#evil'], [url_for('git'), '-v', 'nope'],
                 [url_for('git').replace('proj.git', 'missing.git')]):
        code, out, err = cli(capfd, 'run', *args, '--env-manager', 'local')
        assert code == 67, (args, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith('mlproj: error: '), err
    assert len(_all_runs(client)) == before
    assert not Path('/tmp/mlproj-pwned').exists()


def test_no_token_in_output_tags_params_or_cache(repos, https_server, tls_cert, sqlite_store, client, tmp_path,
                                                 monkeypatch, capfd):
    cache = tmp_path / 'cache'
    out_file = tmp_path / 'out.jsonl'
    env = {'MLPROJ_CACHE_DIR': str(cache), 'SSL_CERT_FILE': tls_cert[0], 'MLFLOW_TRACKING_URI': sqlite_store,
           'MLPROJ_TEST_OUT': str(out_file)}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    private = f'https://127.0.0.1:{https_server}/private/proj.git'
    with_token = private.replace('https://', f'https://{USER}:{TOKEN}@')
    # a real process: token in the URI
    r = run_mlproj('run', with_token + '#sub/folder', '-v', 'main', '--env-manager', 'local')
    assert r.returncode == 0, r.stderr
    results = [(r.returncode, r.stdout, r.stderr)]
    # in process: token from the environment, a dry run, a wrong token
    monkeypatch.setenv('MLPROJ_GIT_TOKEN', TOKEN)
    monkeypatch.setenv('MLPROJ_GIT_USERNAME', USER)
    results.append(cli(capfd, 'run', private, '-v', 'v1.0', '--env-manager', 'local'))
    monkeypatch.delenv('MLPROJ_GIT_TOKEN')
    results.append(cli(capfd, 'run', with_token, '-v', 'main', '--dry-run', '--env-manager', 'local'))
    results.append(cli(capfd, 'run', private.replace('https://', f'https://{USER}:wrong-{TOKEN}@'),
                       '--env-manager', 'local'))
    assert [code for code, _, _ in results] == [0, 0, 0, 67], results
    for _code, out, err in results:
        assert TOKEN not in out and TOKEN not in err
    for _code, _out, err in results[:2]:
        run = client.get_run(run_id(err))
        assert TOKEN not in json.dumps(run.data.tags) and TOKEN not in json.dumps(run.data.params)
        assert run.data.tags['mlflow.source.name'].startswith(private)
    # the project's own process never sees the token either
    assert [json.loads(line)['env_has_token'] for line in out_file.read_text().splitlines()] == [False, False]
    for path in cache.rglob('*'):
        assert TOKEN not in str(path)
        if path.is_file() and not path.is_symlink():
            assert TOKEN.encode() not in path.read_bytes(), path


def test_reproduce_round_trip(repos, tmp_path, sqlite_store, client, monkeypatch, capfd):
    """Run, stop the server, reproduce from the cache; dry-run; clear errors when it cannot work."""
    monkeypatch.setenv('MLFLOW_TRACKING_URI', sqlite_store)
    cache = tmp_path / 'cache'
    monkeypatch.setenv('MLPROJ_CACHE_DIR', str(cache))
    out_file = tmp_path / 'out.jsonl'
    monkeypatch.setenv('MLPROJ_TEST_OUT', str(out_file))
    proc, port = start_daemon(repos.srv, repos.home, tmp_path / 'daemon.log')
    try:
        uri = f'git://127.0.0.1:{port}/proj.git#sub/folder'
        code, _out, err = cli(capfd, 'run', uri, '-v', 'feature', '-P', 'alpha=0.7', '--env-manager', 'local',
                              '--experiment-name', 'repro')
        assert code == 0, err
        original = client.get_run(run_id(err))
    finally:
        stop(proc)
    before = len(client.search_runs([original.info.experiment_id]))
    code, out, err = cli(capfd, 'reproduce', original.info.run_id, '--dry-run')
    assert code == 0, err
    assert f'commit:      {repos.sha["D"]}' in out
    assert f"mlproj run '{uri}' -v {repos.sha['D']} -e main -P alpha=0.7 --env-manager local" in out
    assert len(client.search_runs([original.info.experiment_id])) == before
    # the server is down: the pinned commit comes from the cache
    r = run_mlproj('reproduce', original.info.run_id)
    assert r.returncode == 0, r.stderr
    again = client.get_run(run_id(r.stderr))
    assert again.info.run_id != original.info.run_id
    assert again.info.experiment_id == original.info.experiment_id
    assert again.data.tags['mlproj.reproduced_from'] == original.info.run_id
    for key in ('mlflow.source.git.commit', 'mlflow.source.name', 'mlproj.source.subdirectory',
                'mlflow.project.entryPoint', 'mlproj.env_manager', 'mlflow.source.git.repoURL'):
        assert again.data.tags[key] == original.data.tags[key], key
    assert again.data.params == original.data.params == {'alpha': '0.7'}
    first, second = [json.loads(line) for line in out_file.read_text().splitlines()]
    assert first['version'] == second['version'] == 'D' and first['args'] == second['args'] == ['0.7']
    # no cache and no server: one clear line
    monkeypatch.setenv('MLPROJ_CACHE_DIR', str(tmp_path / 'empty'))
    code, _out, err = cli(capfd, 'reproduce', original.info.run_id)
    assert code == 67
    assert err.strip().splitlines()[-1].startswith('mlproj: error: cannot fetch: failed to connect')
    assert f'commit {repos.sha["D"][:12]} is not in the cache' in err


def test_reproduce_local_runs_and_runs_without_commit(repos, tmp_path, sqlite_store, client, monkeypatch, capfd):
    monkeypatch.setenv('MLFLOW_TRACKING_URI', sqlite_store)
    monkeypatch.setenv('MLPROJ_CACHE_DIR', str(tmp_path / 'cache'))
    code, _out, err = cli(capfd, 'run', str(repos.work) + '#sub/folder', '--env-manager', 'local')
    assert code == 0, err
    local_run = run_id(err)
    code, _out, err = cli(capfd, 'reproduce', local_run)
    assert code == 0, err
    again = client.get_run(run_id(err))
    assert again.data.tags['mlflow.source.git.commit'] == repos.sha['C']
    assert again.data.tags['mlproj.source.version'] == repos.sha['C']   # exported, not run in place
    assert again.data.tags['mlproj.reproduced_from'] == local_run
    code, _out, err = cli(capfd, 'run', str(repos.plain), '--env-manager', 'local')
    assert code == 0, err
    code, _out, err = cli(capfd, 'reproduce', run_id(err))
    assert code == 67
    assert 'has no recorded commit (mlflow.source.git.commit)' in err


def test_reproduce_a_run_recorded_by_mlflow(repos, url_for, sqlite_store, client, monkeypatch, capfd, cache_dir):
    """MLflow's own tags (no mlproj.* tags): URI and subdirectory from mlflow.source.name, env manager local."""
    monkeypatch.setenv('MLFLOW_TRACKING_URI', sqlite_store)
    base = url_for('http')
    run = client.create_run('0', tags={
        'mlflow.source.name': base.replace('http://', f'http://{USER}:{TOKEN}@') + '#sub/folder',
        'mlflow.source.type': 'PROJECT', 'mlflow.source.git.commit': repos.sha['A'],
        'mlflow.source.git.repoURL': base, 'mlflow.project.entryPoint': 'main', 'mlflow.project.backend': 'local',
    })
    client.log_param(run.info.run_id, 'alpha', '0.25')
    client.set_terminated(run.info.run_id)
    code, out, err = cli(capfd, 'reproduce', run.info.run_id, '--dry-run', '--json')
    assert code == 0, err
    info = json.loads(out)
    assert info['commit'] == repos.sha['A'] and info['env_manager'] == 'local'
    assert info['uri'] == base + '#sub/folder' and info['parameters'] == {'alpha': '0.25'}
    assert TOKEN not in out and TOKEN not in err
