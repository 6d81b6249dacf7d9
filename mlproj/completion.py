"""Shell completion of what only the project knows: entry point names (``-e``) and ``-P NAME=``.

click completes commands and options itself (``mlproj completion bash|zsh|fish`` prints its
script); these callbacks read the MLproject of the URI argument when it is a local directory (no
clone, no network: a Git URI completes nothing) and never raise: a broken project completes nothing.
"""
from __future__ import annotations

from typing import Any


def _project(ctx: Any) -> Any:
    from mlproj import settings

    uri = ctx.params.get('uri') or '.'
    if uri == '.' and ctx.args:  # an option still waiting for its value leaves the URI unparsed
        uri = next((a for a in ctx.args if not a.startswith('-')), uri)
    directory = settings.local_project_dir(uri)
    if directory is None:
        return None
    try:
        from mlproj import spec

        return spec.load_project(directory.resolve())
    except Exception:
        return None


def entry_points(ctx: Any, param: Any, incomplete: str) -> list[str]:  # noqa: ARG001
    project = _project(ctx)
    if project is None:
        return []
    return [name for name in project.entry_points if name.startswith(incomplete)]


def parameters(ctx: Any, param: Any, incomplete: str) -> list[Any]:  # noqa: ARG001
    """``NAME=`` for each parameter of the chosen entry point (``-e``, default main) not given yet."""
    from click.shell_completion import CompletionItem

    if '=' in incomplete:
        return []
    project = _project(ctx)
    if project is None:
        return []
    try:
        ep = project.get_entry_point(ctx.params.get('entry_point') or 'main')
    except Exception:
        return []
    given = {v.split('=', 1)[0] for v in ctx.params.get('param_list') or ()}
    return [CompletionItem(f'{name}=', help=p.type) for name, p in ep.parameters.items()
            if name.startswith(incomplete) and name not in given]
