"""``mlproj show``: the resolved project, its entry points, parameters, commands and, for an
entry point that declares its own, their environments.

Next to each environment kind it names the env manager ``mlproj run`` would use for it
(``envs.select_manager`` with ``--env-manager``, else ``run.env-manager`` of a config file, else
automatic): a conda_env project usually runs with uv, and ``show`` says so."""
from __future__ import annotations

import json

import click

from mlproj import completion
from mlproj.request import ENV_MANAGERS


def _echo(text: str) -> None:
    """Text output: project-controlled names, paths and commands with control characters escaped."""
    from mlproj.safeout import printable

    click.echo(printable(text))


def env_text(env: dict) -> str:
    """``python (/p/python_env.yaml)``, ``docker (python:3.12)``, ``none`` (of ``EnvSpec.as_dict()``)."""
    what = env['file'] or env['docker_image']
    return f"{env['kind']} ({what})" if what else env['kind']


def manager_for(project, requested: str | None) -> str:
    """The env manager ``mlproj run`` would use for ``project`` (or why none: an error's text)."""
    from mlproj.envs import select_manager
    from mlproj.errors import MlprojError

    try:
        return select_manager(project, requested)
    except MlprojError as e:
        return f'none ({e})'


def describe(project, entry_point: str | None = None, env_manager: str | None = None) -> dict:
    from mlproj.params import BoundParams, build_command

    eps = [project.get_entry_point(entry_point)] if entry_point else list(project.entry_points.values())
    out_eps = {}
    for ep in eps:
        params = {
            name: {'type': p.type, 'default': p.default_text(), 'required': p.required}
            for name, p in ep.parameters.items()
        }
        preview = None
        if ep.command is not None:
            shown = {n: (p.default_text() if not p.required else f'<{n}>') for n, p in ep.parameters.items()}
            preview = build_command(ep, BoundParams(shown, {}))
        # an entry point's own environment (mlproj only), when it differs from the project's; else None
        own = ep.env.as_dict() if ep.env is not None and ep.env != project.env else None
        if own is not None:
            own['env_manager'] = manager_for(project.for_entry_point(ep), env_manager)
        out_eps[ep.name] = {'parameters': params, 'command': ep.command, 'example': preview, 'environment': own}
    env = project.env
    return {
        'name': project.name,
        'directory': str(project.directory),
        'mlproject': str(project.mlproject_path) if project.mlproject_path else None,
        'environment': {**env.as_dict(), 'env_manager': manager_for(project, env_manager)},
        'entry_points': out_eps,
        'warnings': [str(f) for f in project.warnings],
    }


@click.command('show')
@click.argument('uri', default='.', required=False)
@click.option('-e', '--entry-point', default=None, shell_complete=completion.entry_points,
              help='Show only this entry point.')
@click.option('-v', '--version', 'version', default=None, help='Git revision to show.')
@click.option('--env-manager', type=click.Choice(ENV_MANAGERS), default=None,
              help='Show the environment as `mlproj run --env-manager` would.')
@click.option('--json', 'as_json', is_flag=True, help='Print JSON.')
def show(uri: str, entry_point: str | None, version: str | None, env_manager: str | None, as_json: bool) -> None:
    """Show the project at URI without running anything."""
    from mlproj import settings, source, spec

    env_manager = settings.value('run.env-manager', settings.local_project_dir(uri), env_manager)
    src = source.resolve(uri, version)
    try:
        project = spec.load_project(src.project_dir, root=src.root)
        info = describe(project, entry_point, env_manager)
        info['commit'] = src.commit
    finally:
        src.cleanup()
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    _echo(f"name:        {info['name'] or '(none)'}")
    _echo(f"directory:   {info['directory']}")
    if info['commit']:
        _echo(f"commit:      {info['commit']}")
    _echo(f'environment: {env_text(info["environment"])}, env manager {info["environment"]["env_manager"]}')
    for w in info['warnings']:
        _echo(f'warning:     {w}')
    for name, ep in info['entry_points'].items():
        click.echo()
        _echo(f'entry point {name}:')
        for pname, p in ep['parameters'].items():
            default = 'required' if p['required'] else f"default {p['default']!r}"
            _echo(f"  {pname}: {p['type']} ({default})")
        if ep['environment'] is not None:
            _echo(f"  environment: {env_text(ep['environment'])}, env manager {ep['environment']['env_manager']} "
                  "(its own; mlflow run uses the project's)")
        _echo(f"  command: {ep['command']}")
