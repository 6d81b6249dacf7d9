"""``mlproj hooks``: plain Git hooks (no pre-commit framework needed).

``mlproj hooks install [--pre-push] [--force]`` writes ``pre-commit`` (and ``pre-push``) into the
directory git runs hooks from (``core.hooksPath`` when set); ``mlproj hooks run HOOK`` is what the
installed scripts call.
"""
from __future__ import annotations

import sys

import click


@click.group('hooks')
def hooks() -> None:
    """Install or run mlproj's plain Git hooks (pre-commit: lint; pre-push: dry-run)."""


@hooks.command('install')
@click.option('--pre-push', 'pre_push', is_flag=True, help='Also install the pre-push hook (dry-run changed projects).')
@click.option('--force', is_flag=True, help='Replace existing hooks (the old ones are kept as <hook>.mlproj-backup).')
@click.option('-C', '--repo', 'repo', default='.', type=click.Path(file_okay=False, exists=True),
              help='Repository (default: the current directory).')
@click.option('--use-path', is_flag=True,
              help='Call `mlproj` from PATH instead of the Python running this command.')
def install(pre_push: bool, force: bool, repo: str, use_path: bool) -> None:
    """Install the pre-commit hook (and with --pre-push the pre-push hook)."""
    from mlproj.lint.githooks import install as do_install

    names = ['pre-commit'] + (['pre-push'] if pre_push else [])
    for item in do_install(repo, names, force=force, python=None if use_path else sys.executable):
        extra = f' (previous hook kept as {item.backup.name})' if item.backup else ''
        click.echo(f'{item.action} {item.hook} hook: {item.path}{extra}')


@hooks.command('run', context_settings={'ignore_unknown_options': True})
@click.argument('hook', type=click.Choice(['pre-commit', 'pre-push']))
@click.argument('args', nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def run(ctx: click.Context, hook: str, args: tuple[str, ...]) -> None:
    """Run a hook's checks now (the installed hook scripts call this)."""
    from mlproj.lint import githooks

    if hook == 'pre-commit':
        code = githooks.run_pre_commit('.', sys.stdout, sys.stderr)
    else:
        remote = args[0] if args else 'origin'
        code = githooks.run_pre_push('.', remote, sys.stdin, sys.stdout, sys.stderr)
    ctx.exit(code)


@hooks.command('show')
@click.argument('hook', type=click.Choice(['pre-commit', 'pre-push']))
def show(hook: str) -> None:
    """Print a hook script (to install it by hand)."""
    from mlproj.lint.githooks import render

    click.echo(render(hook), nl=False)
