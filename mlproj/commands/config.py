"""``mlproj config show``: every setting of ``mlproj.settings``, its value and where it came from."""
from __future__ import annotations

import json
from typing import Any

import click


@click.group('config')
def config() -> None:
    """Show mlproj's settings (config files, environment variables, defaults)."""


@config.command('show')
@click.argument('uri', default='.', required=False)
@click.option('--json', 'as_json', is_flag=True, help='Print JSON.')
def show(uri: str, as_json: bool) -> None:
    """Each setting for the project at URI (a local directory's mlproj.toml / pyproject.toml count;
    a Git URI's do not), its value and its source: env, project FILE:LINE, user FILE:LINE or default."""
    from mlproj import settings
    from mlproj.safeout import printable

    project_dir = settings.local_project_dir(uri)
    resolved = settings.resolve(project_dir)
    rows: list[dict[str, Any]] = []
    for r in resolved.values():
        value = '***' if r.setting.secret and r.value is not None else r.value
        rows.append({'name': r.setting.name, 'env': r.setting.env, 'key': r.setting.key, 'value': value,
                     'source': r.source, 'where': r.where})
    if as_json:
        click.echo(json.dumps({'project_dir': str(project_dir) if project_dir else None,
                               'user_file': str(settings.user_config_path()), 'settings': rows}, indent=2))
        return
    click.echo(printable(f'user file:    {settings.user_config_path()}'))
    files = settings.project_config_paths(project_dir) if project_dir else []
    click.echo(printable(f"project file: {', '.join(map(str, files)) or '(none)'}"))
    width = max(len(r['name']) for r in rows)
    for row in rows:
        shown = 'null' if row['value'] is None else json.dumps(row['value']) if not isinstance(row['value'], str) \
            else row['value']
        source = row['source'] + (f" {row['where']}" if row['where'] else '')
        click.echo(printable(f"{row['name']:<{width}}  {shown}  ({source})"))
