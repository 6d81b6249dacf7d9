"""The ``mlproj`` command line: a click group whose subcommands are imported on first use.

No business logic lives here; ``mlproj --help`` imports only click.

The base install (``pip install mlproj``, also what the pre-commit hook installs) is what ``lint``,
``schema`` and ``hooks`` need; running projects needs the ``run`` extra and some backends their own
extra.  Instead of scattering ``try: import`` checks, :func:`main` maps a ``ModuleNotFoundError`` of
a known optional module to one line naming the extra to install (exit 69, as for a backend whose
client library is missing): ``mlproj.clicore.guarded``, which the click-free run path shares.

``mlproj --version`` also names the versions of MLflow, pygit2 and libgit2 (the two things a bug
report needs), read from the installed distributions' metadata; only pygit2 is imported (for
``LIBGIT2_VERSION``, about 50 ms) and only when ``--version`` is given.
"""
from __future__ import annotations

import importlib
import sys

import click

from mlproj import __version__
from mlproj.clicore import COMMANDS, apply_global_options, fast_exit, guarded


def _distribution_version(*names: str) -> tuple[str, str] | None:
    """(distribution, version) of the first of ``names`` that is installed, without importing it."""
    from importlib.metadata import PackageNotFoundError, version

    for name in names:
        try:
            return name, version(name)
        except PackageNotFoundError:
            continue
    return None


def version_report() -> str:
    """The text of ``mlproj --version``: mlproj, Python, MLflow, pygit2 and libgit2, one per line."""
    import platform

    missing = 'not installed (pip install "mlproj[run]")'
    rows = [('mlproj', __version__), ('Python', f'{platform.python_version()} ({platform.python_implementation()})')]
    mlflow = _distribution_version('mlflow', 'mlflow-skinny')  # the full package wins when both are there
    rows.append(('MLflow', f'{mlflow[1]} ({mlflow[0]})' if mlflow else missing))
    try:
        import pygit2
    except ImportError:
        rows += [('pygit2', missing), ('libgit2', missing)]
    else:
        rows += [('pygit2', pygit2.__version__), ('libgit2', pygit2.LIBGIT2_VERSION)]
    width = max(len(name) for name, _ in rows) + 2
    return '\n'.join(f'{name:<{width}}{value}' for name, value in rows)


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(version_report())
        ctx.exit()


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module = importlib.import_module(entry[0])
        return getattr(module, entry[1])

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section('Commands'):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={'help_option_names': ['-h', '--help']})
@click.option('--version', is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
              help='Show the versions of mlproj, MLflow, pygit2 and libgit2.')
@click.option('--debug', is_flag=True, envvar='MLPROJ_DEBUG', help='Show tracebacks for errors.')
@click.option('--color', type=click.Choice(('auto', 'always', 'never')), default=None,
              help='Color output (default auto: off with NO_COLOR, on with FORCE_COLOR, else on a terminal).')
@click.option('-q', '--quiet', is_flag=True, envvar='MLPROJ_QUIET',
              help="Print only the project's own output and errors (no status lines or warnings).")
@click.option('--verbose', is_flag=True, envvar='MLPROJ_VERBOSE',
              help="Show the installer's full output while environments are built, and Git detail "
                   '(no -v: `mlproj run -v` is the Git revision, as in `mlflow run`).')
@click.pass_context
def cli(ctx: click.Context, debug: bool, color: str | None, quiet: bool, verbose: bool) -> None:
    """mlproj: run MLflow Projects fast, Git-native and validated."""
    ctx.ensure_object(dict)
    ctx.obj['debug'] = debug
    apply_global_options(debug=debug, color=color, quiet=quiet, verbose=verbose, command=ctx.invoked_subcommand)


def main(argv: list[str] | None = None) -> int:
    from mlproj.errors import EXIT_INTERRUPTED

    args = list(sys.argv[1:] if argv is None else argv)

    def call() -> object:
        try:
            return cli.main(args=args, prog_name='mlproj', standalone_mode=False)
        except click.exceptions.Exit as e:
            return e.exit_code
        except click.ClickException as e:
            e.show()
            return e.exit_code
        except click.Abort:
            print('mlproj: aborted', file=sys.stderr)
            return EXIT_INTERRUPTED

    return guarded(call, args)


def entry() -> None:
    code = main()
    fast_exit(code)
    sys.exit(code)


if __name__ == '__main__':
    entry()

