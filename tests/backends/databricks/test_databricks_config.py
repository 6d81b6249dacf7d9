"""Backend-config validation, tracking URIs and project archives: pure functions, no workspace."""
from __future__ import annotations

import io
import os
import tarfile

import pytest

from mlproj.backends import _pack
from mlproj.backends import databricks as dbx
from mlproj.errors import BackendError, SourceError
from tests.helpers.git import git

SPEC = {'spark_version': '15.4.x-scala2.12', 'num_workers': 1, 'node_type_id': 'i3.xlarge'}
HTTP = 'http://mlflow.example.com'


def test_plain_spec_wrapped_spec_and_mlflow_docs_shape_are_one_new_cluster():
    plain = dbx.parse_config({**SPEC, 'timeout_seconds': 60}, HTTP)
    wrapped = dbx.parse_config({'new_cluster': SPEC, 'timeout_seconds': 60}, HTTP)
    docs = dbx.parse_config({'cluster_spec': {'new_cluster': SPEC, 'libraries': [{'pypi': {'package': 'x'}}]},
                             'run_name': 'r'}, HTTP)
    assert plain.compute == wrapped.compute == docs.compute == 'new'
    assert plain.new_cluster == wrapped.new_cluster == docs.new_cluster == SPEC
    assert plain.timeout_seconds == 60
    assert docs.libraries == ({'pypi': {'package': 'x'}},) and docs.run_name == 'r'


@pytest.mark.parametrize('config, message', [
    ({}, 'needs a backend config'),
    ({'spark_verison': '15.4'}, "unknown field or invalid value 'spark_verison'"),
    ({**SPEC, 'aws_attributes': {'availabilty': 'SPOT'}}, "'aws_attributes.availabilty'"),
    ({'new_cluster': SPEC, 'existing_cluster_id': 'c'}, 'choose one of new_cluster, existing_cluster_id'),
    ({'new_cluster': SPEC, 'num_workers': 2}, "unknown key 'num_workers' next to 'new_cluster'"),
    ({'existing_cluster_id': ''}, 'existing_cluster_id must be a non-empty string'),
    ({'existing_cluster_id': 'c', 'timeout_seconds': -1}, 'timeout_seconds must be a non-negative integer'),
    ({'existing_cluster_id': 'c', 'libraries': {'pypi': 'x'}}, 'libraries must be a JSON list'),
    ({'existing_cluster_id': 'c', 'libraries': [{'pipy': {'package': 'x'}}]}, "libraries[0]: unknown field"),
    ({'serverless': True}, 'serverless compute cannot read DBFS'),
    ({'serverless': True, 'upload_dir': '/Volumes/a/b/c/d', 'libraries': [{'jar': 'dbfs:/x.jar'}]},
     'serverless compute installs only pypi'),
    ({'existing_cluster_id': 'c', 'environment': {'environment_version': '2'}}, 'environment is only used with'),
    ({'existing_cluster_id': 'c', 'upload_dir': 's3://bucket/x'}, 'must start with dbfs:/, /Volumes/ or /Workspace/'),
    ({'existing_cluster_id': 'c', 'upload_dir': '/Volumes/cat/schema'}, 'must be inside a volume'),
    ({'existing_cluster_id': 'c', 'upload_dir': 'dbfs:/a/../b'}, 'must not contain ..'),
    ({'existing_cluster_id': 'c', 'mlproj_wheel': '/nonexistent/mlproj.whl'}, 'is not a .whl file'),
    ({'existing_cluster_id': 'c', 'poll_max_seconds': 0}, 'poll_max_seconds must be a number'),
    ({'new_cluster': {'num_workers': 1}}, "the new cluster spec needs 'spark_version'"),
])
def test_invalid_configs_are_one_line_naming_the_key(config, message):
    with pytest.raises(BackendError) as e:
        dbx.parse_config(config, HTTP)
    assert message in str(e.value)
    assert '\n' not in str(e.value)


@pytest.mark.parametrize('uri, cluster_uri, profile', [
    ('databricks', 'databricks', None),
    ('databricks://prod', 'databricks', 'prod'),
    ('https://mlflow.example.com:5000', 'https://mlflow.example.com:5000', None),
])
def test_tracking_uris_like_mlflow(uri, cluster_uri, profile):
    settings = dbx.parse_config({'existing_cluster_id': 'c'}, uri)
    assert settings.cluster_tracking_uri == cluster_uri
    assert settings.profile == profile


@pytest.mark.parametrize('uri', ['sqlite:////tmp/x/mlflow.db', 'file:///tmp/mlruns', 'postgresql://u:pw@db/mlflow'])
def test_local_tracking_store_is_refused(uri):
    with pytest.raises(BackendError) as e:
        dbx.parse_config({'existing_cluster_id': 'c'}, uri)
    assert 'needs the MLflow tracking URI' in str(e.value)
    assert 'pw' not in str(e.value)


def test_credentials_in_an_http_tracking_uri_never_reach_the_job():
    with pytest.raises(BackendError) as e:
        dbx.parse_config({'existing_cluster_id': 'c'}, 'https://alice:s3cr3t@mlflow.example.com')
    assert 'carries credentials' in str(e.value) and 's3cr3t' not in str(e.value)


def test_profile_in_tracking_uri_and_config_must_agree():
    with pytest.raises(BackendError, match="names profile 'a' but the backend config names 'b'"):
        dbx.parse_config({'existing_cluster_id': 'c', 'profile': 'b'}, 'databricks://a')
    assert dbx.parse_config({'existing_cluster_id': 'c', 'profile': 'a'}, 'databricks://a').profile == 'a'


def test_loopback_tracking_server_warns():
    settings = dbx.parse_config({'existing_cluster_id': 'c'}, 'http://127.0.0.1:5000')
    assert any('cannot reach it' in w for w in settings.warnings)


def test_upload_dir_forms():
    assert dbx.normalize_upload_dir('/dbfs/team/x/') == 'dbfs:/team/x'
    assert dbx.normalize_upload_dir('dbfs:/team//x') == 'dbfs:/team/x'
    assert dbx.normalize_upload_dir('/Volumes/c/s/v/') == '/Volumes/c/s/v'
    assert dbx.normalize_upload_dir('/Workspace/Users/me@x.com/p') == '/Workspace/Users/me@x.com/p'


def test_state_mapping():
    def state(life, result=None):
        return dbx.RunState(life, result, '', 1, None, None)

    assert dbx.mlflow_status(state('PENDING')) == 'SCHEDULED'
    assert dbx.mlflow_status(state('QUEUED')) == 'SCHEDULED'
    assert dbx.mlflow_status(state('RUNNING')) == 'RUNNING'
    assert dbx.mlflow_status(state('TERMINATING')) == 'RUNNING'
    assert dbx.mlflow_status(state('TERMINATED', 'SUCCESS')) == 'FINISHED'
    assert dbx.mlflow_status(state('TERMINATED', 'FAILED')) == 'FAILED'
    assert dbx.mlflow_status(state('TERMINATED', 'TIMEDOUT')) == 'FAILED'
    assert dbx.mlflow_status(state('TERMINATED', 'CANCELED')) == 'KILLED'
    assert dbx.mlflow_status(state('INTERNAL_ERROR', 'FAILED')) == 'FAILED'
    assert dbx.mlflow_status(state('SKIPPED')) == 'FAILED'


# --------------------------------------------------------------------------------------------
# archives


def _tree(root, files: dict[str, str]) -> None:
    for name, text in files.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


def _members(archive: _pack.Archive) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(archive.path) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_archive_is_deterministic_and_named_by_content(tmp_path):
    a, b = tmp_path / 'a', tmp_path / 'b'
    files = {'MLproject': 'name: x\n', 'src/train.py': 'print(1)\n', 'run.sh': 'echo\n'}
    _tree(a, files)
    _tree(b, files)
    os.chmod(a / 'run.sh', 0o775)
    os.chmod(b / 'run.sh', 0o700)
    os.utime(b / 'src' / 'train.py', (1, 1))
    pa, pb = _pack.pack(a, tmp_path / 'out-a'), _pack.pack(b, tmp_path / 'out-b')
    assert pa.sha256 == pb.sha256 and pa.path.name == f'{pa.sha256}.tar.gz'
    assert pa.path.read_bytes() == pb.path.read_bytes()
    members = _members(pa)
    assert set(members) == {'project', 'project/MLproject', 'project/run.sh', 'project/src', 'project/src/train.py'}
    assert all(m.mtime == 0 and m.uid == 0 and m.uname == '' for m in members.values())
    assert members['project/run.sh'].mode == 0o755 and members['project/MLproject'].mode == 0o644
    (b / 'src' / 'train.py').write_text('print(2)\n')
    assert _pack.pack(b, tmp_path / 'out-c').sha256 != pa.sha256


def test_archive_excludes_git_mlruns_and_git_ignored_but_keeps_tracked(tmp_path):
    root = tmp_path / 'repo'
    _tree(root, {'.gitignore': '*.secret\ncache/\n', 'proj/MLproject': 'name: x\n', 'proj/keep.secret': 'tracked',
                 'proj/new.secret': 'ignored', 'proj/cache/blob': 'x', 'proj/mlruns/0/meta.yaml': 'x',
                 'proj/mlflow.db': 'x', 'proj/sub/.git': 'gitdir: elsewhere', 'proj/sub/code.py': 'x',
                 'outside.txt': 'x'})
    git('init', '-q', cwd=root)
    git('add', '-f', 'proj/keep.secret', '.gitignore', 'proj/MLproject', cwd=root)
    git('commit', '-q', '-m', 'x', cwd=root)
    archive = _pack.pack(root / 'proj', tmp_path / 'out')
    assert archive.files == ('MLproject', 'keep.secret', 'sub/code.py')


def test_symlinks_inside_are_kept_and_escaping_ones_refused(tmp_path):
    proj = tmp_path / 'p'
    _tree(proj, {'MLproject': 'name: x\n', 'data/a.csv': '1'})
    (proj / 'link.csv').symlink_to('data/a.csv')
    archive = _pack.pack(proj, tmp_path / 'out')
    assert _members(archive)['project/link.csv'].linkname == 'data/a.csv'
    (proj / 'escape').symlink_to(tmp_path)
    with pytest.raises(SourceError, match="symlink 'escape' points outside the project"):
        _pack.pack(proj, tmp_path / 'out2')


def test_fifos_and_devices_are_never_packed_nor_opened(tmp_path):
    proj = tmp_path / 'p'
    _tree(proj, {'MLproject': 'name: x\n', 'data/a.csv': '1'})
    os.mkfifo(proj / 'pipe')  # opening it for reading would block forever
    (proj / 'zero').symlink_to('/dev/zero')  # a symlink leaving the project: refused, not followed
    with pytest.raises(SourceError, match="symlink 'zero' points outside the project"):
        _pack.pack(proj, tmp_path / 'out')
    (proj / 'zero').unlink()
    archive = _pack.pack(proj, tmp_path / 'out')
    assert archive.files == ('MLproject', 'data/a.csv')


def test_launcher_refuses_archives_that_leave_the_project(tmp_path, monkeypatch):
    from mlproj.backends import _databricks_launcher as launcher

    bad = tmp_path / 'bad.tar.gz'
    with tarfile.open(bad, 'w:gz') as tar:
        info = tarfile.TarInfo('project/../../evil')
        data = b'x'
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    monkeypatch.setenv('MLPROJ_PROJECTS_DIR', str(tmp_path / 'projects'))
    with pytest.raises(SystemExit, match='unexpected archive entry'):
        launcher.extract(str(bad))
    assert not (tmp_path / 'evil').exists()


def test_launcher_maps_fuse_paths(monkeypatch):
    from mlproj.backends import _databricks_launcher as launcher

    monkeypatch.delenv('MLPROJ_DATABRICKS_FUSE_ROOT', raising=False)
    assert launcher.local_path('dbfs:/mlproj/projects/a.tar.gz') == '/dbfs/mlproj/projects/a.tar.gz'
    assert launcher.local_path('/Volumes/c/s/v/a.tar.gz') == '/Volumes/c/s/v/a.tar.gz'
    monkeypatch.setenv('MLPROJ_DATABRICKS_FUSE_ROOT', '/srv/fuse')
    assert launcher.local_path('dbfs:/x.tar.gz') == '/srv/fuse/dbfs/x.tar.gz'
    assert launcher.parse(['dbfs:/a', '--env', 'A=b=c', '--', '-e', 'main']) == ('dbfs:/a', {'A': 'b=c'}, ['-e', 'main'])


def _repo_with_project(tmp_path, mlproject: str):
    git('init', '-q', str(tmp_path))
    (tmp_path / 'python_env.yaml').write_text('python: "3.11"\ndependencies: [pip]\n')
    sub = tmp_path / 'sub'
    sub.mkdir()
    (sub / 'own_env.yaml').write_text('python: "3.11"\ndependencies: [pip]\n')
    (sub / 'MLproject').write_text(mlproject)
    return sub


@pytest.mark.parametrize('mlproject, entry_point, refused', [
    ('name: p\npython_env: ../python_env.yaml\nentry_points:\n  main:\n    command: "true"\n', 'main',
     'python_env ../python_env.yaml'),
    ('name: p\nentry_points:\n  main:\n    python_env: ../python_env.yaml\n    command: "true"\n'
     '  other:\n    command: "true"\n', 'main', 'python_env ../python_env.yaml'),
    ('name: p\nentry_points:\n  main:\n    python_env: ../python_env.yaml\n    command: "true"\n'
     '  other:\n    command: "true"\n', 'other', None),   # the entry point that runs has no such file
    ('name: p\npython_env: own_env.yaml\nentry_points:\n  main:\n    command: "true"\n', 'main', None),
])
def test_an_env_file_above_the_project_is_refused_before_anything_is_created(tmp_path, mlproject, entry_point,
                                                                            refused):
    """Databricks receives the project directory only: the file would be missing on the cluster."""
    from mlproj.request import RunRequest
    from mlproj.spec import load_project

    project = load_project(str(_repo_with_project(tmp_path, mlproject))).for_entry_point(entry_point)
    request = RunRequest(uri=str(tmp_path / 'sub'), backend='databricks', backend_config=dict(SPEC))
    if refused is None:
        assert dbx.validate(request, HTTP, project).compute == 'new'
        return
    with pytest.raises(BackendError) as e:
        dbx.validate(request, HTTP, project)
    assert str(e.value).startswith(f'{refused} is outside the project directory')
    assert 'databricks backend ships only that directory' in str(e.value)
