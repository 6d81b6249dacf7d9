"""Lint of per-entry-point environments: MLP031, their env files, their docker_env checks."""
from __future__ import annotations

from mlproj.lint import lint_paths, load_config
from tests.helpers import write_project


def issues(path) -> list[str]:
    result = lint_paths([str(path)], load_config(None))
    return [f'{i.finding.path[len(str(path)) + 1:]}:{i.finding.line}:{i.finding.col} {i.rule}'
            for i in result.issues]


def test_each_entry_point_env_key_is_flagged_mlproj_only(tmp_path):
    write_project(tmp_path, 'name: n\nentry_points:\n  a:\n    python_env: a.yaml\n    command: "true"\n'
                  '  b:\n    docker_env: {image: "python:3.12"}\n    command: "true"\n'
                  '  c:\n    python_env: null\n    command: "true"\n',
                  {'a.yaml': 'dependencies: []\n'})
    assert issues(tmp_path) == ['MLproject:4:5 MLP031', 'MLproject:7:5 MLP031']
    result = lint_paths([str(tmp_path)], load_config(None))
    assert result.exit_code(strict=False) == 0  # a warning
    assert "python_env of entry point 'a' is mlproj-only: mlflow run ignores it and uses the project's " \
           'environment' in result.issues[0].finding.message


def test_a_misspelled_entry_point_env_key_is_mlp030(tmp_path):
    write_project(tmp_path, 'entry_points:\n  a:\n    pyhton_env: a.yaml\n    command: "true"\n')
    assert issues(tmp_path) == ['MLproject:3:5 MLP030']


def test_entry_point_env_files_are_validated_and_mapped_back(tmp_path):
    d = write_project(tmp_path / 'proj', 'entry_points:\n  a:\n    python_env: envs/a.yaml\n    command: "true"\n'
                      '  b:\n    conda_env: envs/b.yaml\n    command: "true"\n'
                      '# mlproj: disable-file=MLP031\n',
                      {'envs/a.yaml': 'python: 3.10\ndependencies: []\n', 'envs/b.yaml': 'dependencies: 3\n'})
    assert issues(d) == ['envs/a.yaml:1:9 MLP017', 'envs/b.yaml:1:15 MLP017']
    # a change to an entry point's env file alone lints the project that uses it
    got = lint_paths([str(d / 'envs' / 'a.yaml')], load_config(None))
    assert [i.rule for i in got.issues] == ['MLP017', 'MLP017']


def test_docker_checks_apply_to_entry_point_docker_envs(tmp_path):
    write_project(tmp_path, 'entry_points:\n  a:\n    docker_env:\n      image: x\n'
                  '      volumes: ["/var/run/docker.sock:/s"]\n      environment: [GITHUB_TOKEN]\n'
                  '    command: "true"\n# mlproj: disable-file=MLP031\n')
    result = lint_paths([str(tmp_path)], load_config(None))
    got = {i.rule: (i.finding.line, i.finding.col, i.finding.message) for i in result.issues}
    assert sorted(got) == ['MLP022', 'MLP024', 'MLP025']
    assert got['MLP022'][:2] == (3, 5) and got['MLP022'][2].startswith('entry_points.a.docker_env is set')
    assert got['MLP024'][:2] == (5, 17) and 'entry_points.a.docker_env.volumes entry 1' in got['MLP024'][2]
    assert got['MLP025'][:2] == (6, 21)
