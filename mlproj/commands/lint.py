"""``mlproj lint``: check MLproject files; exit 0 clean, 1 findings, 2 usage error.

Failing follows ruff/flake8: errors fail, warnings are printed but pass unless ``--fail-on warning``
(alias ``--strict``); ``--exit-zero`` reports and always exits 0 (usage errors still exit 2).
"""
from __future__ import annotations

import os
import sys

import click

FORMATS = ('text', 'json', 'github', 'sarif')


def _default_format() -> str:
    # Inside GitHub Actions the findings become annotations on the pull request.
    return 'github' if os.environ.get('GITHUB_ACTIONS') == 'true' else 'text'


def _list_rules(fmt: str) -> None:
    from mlproj.rules import RULES

    rules = [RULES[k] for k in sorted(RULES)]
    if fmt == 'json':
        import json

        click.echo(json.dumps([{**r._asdict(), 'run': r.run_effect} for r in rules], indent=2))
        return
    for r in rules:
        click.echo(f'{r.id}  {r.severity:<7}  {r.scope:<4}  {r.name:<24}  {r.doc}')


@click.command('lint')
@click.argument('paths', nargs=-1, type=click.Path(dir_okay=True, allow_dash=True))
@click.option('-f', '--format', 'fmt', type=click.Choice(FORMATS), default=None,
              help='Output format (default: github when GITHUB_ACTIONS=true, else text).')
@click.option('--select', multiple=True, metavar='RULES',
              help='Only these rules: ids, names or id prefixes, comma-separated (repeatable).')
@click.option('--ignore', multiple=True, metavar='RULES', help='Skip these rules (repeatable).')
@click.option('--strict/--no-strict', default=None, help='Warnings fail the run too (same as --fail-on warning).')
@click.option('--fail-on', type=click.Choice(('error', 'warning')), default=None,
              help='Lowest severity that makes the exit code 1 (default: error).')
@click.option('--exit-zero', is_flag=True, help='Exit 0 even when there are findings (still 2 on usage errors).')
@click.option('--no-ignore', is_flag=True, help='Walk into what .gitignore files ignore, too.')
@click.option('--force-exclude', is_flag=True, default=None,
              help='Apply the configured excludes to files named on the command line too (the pre-commit hook '
                   'passes this).')
@click.option('--extend-exclude', multiple=True, metavar='PATTERN',
              help='Exclude these glob patterns as well as the configured ones (repeatable).')
@click.option('--config', 'config_path', type=click.Path(dir_okay=False), default=None,
              help='A pyproject.toml with [tool.mlproj.lint] (default: the nearest one above the current '
                   'directory).')
@click.option('--no-config', is_flag=True, help='Ignore pyproject.toml.')
@click.option('--stdin-filename', default=None, metavar='PATH',
              help='With PATH "-": the name (and so the project directory) of the text read from stdin.')
@click.option('--list-rules', is_flag=True, help='Print every rule (id, severity, scope, name, doc) and exit.')
@click.option('-q', '--quiet', is_flag=True, help='Text format: no summary line.')
@click.pass_context
def lint(ctx: click.Context, paths: tuple[str, ...], fmt: str | None, select: tuple[str, ...],
         ignore: tuple[str, ...], strict: bool | None, fail_on: str | None, exit_zero: bool, no_ignore: bool,
         force_exclude: bool | None, extend_exclude: tuple[str, ...], config_path: str | None, no_config: bool,
         stdin_filename: str | None, list_rules: bool, quiet: bool) -> None:
    """Lint MLproject files in PATHS (files or directories, searched recursively; default: .)."""
    from pathlib import Path

    from mlproj.lint.config import ConfigError, find_pyproject, load_config
    from mlproj.lint.engine import UsageError, lint_paths
    from mlproj.lint.reporters import make_reporter

    fmt = fmt or _default_format()
    if list_rules:
        _list_rules(fmt)
        return
    if config_path and no_config:
        raise click.UsageError('use either --config or --no-config')
    try:
        pyproject = None
        if config_path:
            pyproject = Path(config_path)
            if not pyproject.is_file():
                raise ConfigError(f'no such config file: {config_path}')
        elif not no_config:
            pyproject = find_pyproject(Path.cwd())
        config = load_config(pyproject, select=select, ignore=ignore, strict=strict, fail_on=fail_on,
                             exit_zero=exit_zero, no_ignore=no_ignore, force_exclude=force_exclude or None,
                             extend_exclude=extend_exclude)
    except ConfigError as e:
        raise click.UsageError(str(e)) from None
    paths = paths or ('.',)
    if list(paths).count('-') > 1:
        raise click.UsageError('"-" (stdin) can be given once')
    if '-' in paths:  # bounded: one byte over the limit is enough to refuse it
        from mlproj.safefile import max_bytes

        stdin_data = sys.stdin.buffer.read(max_bytes() + 1)
    else:
        stdin_data = None
    try:
        result = lint_paths(paths, config, stdin_data=stdin_data, stdin_filename=stdin_filename)
    except UsageError as e:
        raise click.UsageError(str(e)) from None
    from mlproj.color import enabled

    color = fmt == 'text' and enabled(sys.stdout)
    reporter = make_reporter(fmt, quiet=quiet, color=color)
    reporter.report(result, sys.stdout, sys.stderr)
    ctx.exit(result.exit_code(config.strict, config.exit_zero))
