"""Per-entry-point environments for real: a two-step project whose steps declare different
python_envs, built by the default (uv) manager from a local wheelhouse; each step's env holds only
its own dependency.  And MLflow's own loader, which ignores the keys (the project still runs under
``mlflow run``, in the project's environment)."""
from __future__ import annotations

import pytest

from tests.helpers.envs import make_wheel, py_version, write_project

CHECK = """import importlib, sys
own, other = sys.argv[1], sys.argv[2]
print(own, importlib.import_module(own).VERSION)
try:
    importlib.import_module(other)
except ImportError:
    pass
else:
    sys.exit(f'{other} is importable in the environment of the step that needs only {own}')
"""


def env(deps: list[str]) -> str:
    return f'python: "{py_version()}"\ndependencies:\n' + ''.join(f'  - {d}\n' for d in deps)


def two_steps(directory):
    return write_project(directory, {
        'MLproject': (
            'name: steps\n'
            'entry_points:\n'
            '  step_a:\n'
            '    python_env: envs/a.yaml\n'
            '    command: "python check.py alpha_pkg beta_pkg"\n'
            '  step_b:\n'
            '    python_env: envs/b.yaml\n'
            '    command: "python check.py beta_pkg alpha_pkg"\n'
            '  main:\n'
            '    command: "python -c \\"import sys; print(sys.prefix)\\""\n'
        ),
        'check.py': CHECK,
        'envs/a.yaml': env(['alpha_pkg==1.0']),
        'envs/b.yaml': env(['beta_pkg==2.0']),
    })


@pytest.fixture
def step_wheels(tmp_path, monkeypatch):
    wheels = tmp_path / 'wheels'
    wheels.mkdir()
    make_wheel(wheels, 'alpha_pkg', '1.0')
    make_wheel(wheels, 'beta_pkg', '2.0')
    monkeypatch.setenv('UV_NO_INDEX', '1')
    monkeypatch.setenv('UV_FIND_LINKS', str(wheels))
    return wheels


@pytest.mark.slow
def test_two_steps_each_run_in_an_env_with_only_its_own_dependency(tmp_path, step_wheels, file_store):
    import mlflow

    import mlproj

    proj = two_steps(tmp_path / 'steps')
    client = mlflow.MlflowClient(file_store)
    tags = {}
    for step in ('step_a', 'step_b'):
        submitted = mlproj.run(str(proj), step, tracking_uri=file_store)
        run = client.get_run(submitted.run_id)
        assert run.info.status == 'FINISHED', step  # check.py exits non-zero if the other package is there
        tags[step] = run.data.tags
    assert tags['step_a']['mlproj.env_manager'] == tags['step_b']['mlproj.env_manager'] == 'uv'
    assert tags['step_a']['mlflow.project.env'] == 'uv'
    assert tags['step_a']['mlproj.env.hash'] != tags['step_b']['mlproj.env.hash']
    # the same envs are reused, and each is exactly its step's (the hash is the content's)
    from mlproj.envs import EnvContext, prepare
    from mlproj.spec import load_project

    project = load_project(proj)
    for step in ('step_a', 'step_b'):
        built = prepare(project.for_entry_point(step), 'uv', EnvContext())
        assert built.hash == tags[step]['mlproj.env.hash']
        site = list(built.path.glob('lib/python*/site-packages'))[0]
        installed = sorted(p.name.split('-')[0] for p in site.glob('*.dist-info'))
        assert installed == (['alpha_pkg'] if step == 'step_a' else ['beta_pkg'])
    # `mlproj env build -e STEP` prepares (here: finds) the environment that step runs in
    from click.testing import CliRunner

    from mlproj.commands.env import env as env_cli

    out = CliRunner().invoke(env_cli, ['build', str(proj), '-e', 'step_b'])
    assert out.exit_code == 0, out.output
    assert f"hash:    {tags['step_b']['mlproj.env.hash']}" in out.output


def test_mlflow_ignores_entry_point_envs_and_uses_the_projects(tmp_path):
    """What `mlflow run` reads of such a project: the keys are ignored, the entry points run."""
    from mlflow.projects import _project_spec

    proj = two_steps(tmp_path / 'steps')
    (proj / 'python_env.yaml').write_text(env([]))
    project = _project_spec.load_project(str(proj))
    assert project.env_type == 'python_env' and project.env_config_path == str(proj / 'python_env.yaml')
    ep = project.get_entry_point('step_a')
    assert ep.compute_command({}, None) == 'python check.py alpha_pkg beta_pkg'
