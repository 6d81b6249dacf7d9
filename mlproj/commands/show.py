"""``mlproj show``: the resolved project, its entry points, parameters and commands."""
from __future__ import annotations

import json

import click


def describe(project, entry_point: str | None = None) -> dict:
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
        out_eps[ep.name] = {'parameters': params, 'command': ep.command, 'example': preview}
    env = project.env
    return {
        'name': project.name,
        'directory': str(project.directory),
        'mlproject': str(project.mlproject_path) if project.mlproject_path else None,
        'environment': {
            'kind': env.kind,
            'file': str(env.path) if env.path else None,
            'docker_image': env.docker.image if env.docker else None,
        },
        'entry_points': out_eps,
        'warnings': [str(f) for f in project.warnings],
    }


@click.command('show')
@click.argument('uri', default='.', required=False)
@click.option('-e', '--entry-point', default=None, help='Show only this entry point.')
@click.option('-v', '--version', 'version', default=None, help='Git revision to show.')
@click.option('--json', 'as_json', is_flag=True, help='Print JSON.')
def show(uri: str, entry_point: str | None, version: str | None, as_json: bool) -> None:
    """Show the project at URI without running anything."""
    from mlproj import source, spec

    src = source.resolve(uri, version)
    try:
        project = spec.load_project(src.project_dir, root=src.root)
        info = describe(project, entry_point)
        info['commit'] = src.commit
    finally:
        src.cleanup()
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    click.echo(f"name:        {info['name'] or '(none)'}")
    click.echo(f"directory:   {info['directory']}")
    if info['commit']:
        click.echo(f"commit:      {info['commit']}")
    env = info['environment']
    click.echo(f"environment: {env['kind']}" + (f" ({env['file'] or env['docker_image']})"
                                                if env['file'] or env['docker_image'] else ''))
    for w in info['warnings']:
        click.echo(f'warning:     {w}')
    for name, ep in info['entry_points'].items():
        click.echo(f'\nentry point {name}:')
        for pname, p in ep['parameters'].items():
            default = 'required' if p['required'] else f"default {p['default']!r}"
            click.echo(f"  {pname}: {p['type']} ({default})")
        click.echo(f"  command: {ep['command']}")
