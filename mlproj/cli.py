"""The ``mlproj`` command line: a click group whose subcommands are imported on first use.

No business logic lives here; ``mlproj --help`` imports only click.

The base install (``pip install mlproj``, also what the pre-commit hook installs) is what ``lint``,
``schema`` and ``hooks`` need; running projects needs the ``run`` extra and some backends their own
extra.  Instead of scattering ``try: import`` checks, :func:`main` maps a ``ModuleNotFoundError`` of
a known optional module to one line naming the extra to install (exit 69, as for a backend whose
client library is missing).

``mlproj --version`` also names the versions of MLflow, pygit2 and libgit2 (the two things a bug
report needs), read from the installed distributions' metadata; only pygit2 is imported (for
``LIBGIT2_VERSION``, about 50 ms) and only when ``--version`` is given.
"""
from __future__ import annotations

import importlib
import os
import sys

import click

from mlproj import __version__

# name -> (module, attribute, one-line help shown by `mlproj --help` without importing the module)
COMMANDS: dict[str, tuple[str, str, str]] = {
    'run': ('mlproj.commands.run', 'run', 'Run a project (flag-compatible with `mlflow run`).'),
    'sweep': ('mlproj.commands.sweep', 'sweep', 'Run a project over a grid of parameter values (child runs).'),
    'show': ('mlproj.commands.show', 'show', 'Show a resolved project: entry points, parameters, commands.'),
    'env': ('mlproj.commands.env', 'env', 'List, prune and build cached environments.'),
    'ci': ('mlproj.commands.ci', 'ci', 'CI helpers behind the GitHub Action: run, report, env-key, cancel.'),
    'lint': ('mlproj.commands.lint', 'lint', 'Lint MLproject files (stable rule ids; text/json/github/sarif).'),
    'schema': ('mlproj.commands.schema', 'schema', 'Print the JSON Schema of the MLproject file.'),
    'hooks': ('mlproj.commands.hooks', 'hooks', 'Install plain Git hooks: lint on commit, dry-run on push.'),
    'cache': ('mlproj.commands.cache', 'cache', 'List or prune the Git clone cache.'),
    'reproduce': ('mlproj.commands.reproduce', 'reproduce', 'Run a recorded MLflow run again, pinned to its commit.'),
    'runs': ('mlproj.commands.runs', 'runs', 'End runs left RUNNING by a dead launcher (gc); compare two runs (diff).'),
    'config': ('mlproj.commands.config', 'config', 'Show settings and where each value came from.'),
    'completion': ('mlproj.commands.completion', 'completion', 'Print the shell completion script (bash, zsh, fish).'),
}


# top-level module -> the extra of mlproj that installs it (pyproject.toml [project.optional-dependencies])
OPTIONAL_MODULES: dict[str, str] = {
    'pygit2': 'run', 'mlflow': 'run', 'sqlalchemy': 'run', 'alembic': 'run',
    'packaging': 'run', 'uv': 'run',
    'databricks': 'databricks', 'github': 'github', 'ray': 'ray', 'kubernetes': 'kubernetes',
    'virtualenv': 'virtualenv',
}


def missing_dependency(error: ModuleNotFoundError, args: list[str]) -> str | None:
    """The one-line message for an optional module that is not installed, or None (then it is a bug)."""
    top = (error.name or '').split('.')[0]
    extra = OPTIONAL_MODULES.get(top)
    if extra is None:
        return None
    command = next((a for a in args if a in COMMANDS), None)
    what = f'mlproj {command}' if command else 'this command'
    return f'{what} needs {top}, which is not installed: pip install "mlproj[{extra}]"'


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
    from mlproj import color as color_policy
    from mlproj import verbose as verbose_mode

    if ctx.invoked_subcommand != 'run':  # `run` resumes the collector once its command started
        from mlproj import console

        console.resume()
    ctx.ensure_object(dict)
    ctx.obj['debug'] = debug
    color_policy.set_choice(color)
    verbose_mode.disable()   # one invocation's mode (tests run many in one process)
    if quiet and verbose:
        from mlproj.errors import BadArgumentError
        from mlproj.verbose import CONFLICT

        raise BadArgumentError(CONFLICT)
    if verbose:
        verbose_mode.enable()
    if quiet and not debug:
        from mlproj import quiet as quiet_mode

        quiet_mode.enable()


def _debug_requested(argv: list[str]) -> bool:
    from mlproj.settings import env_value

    return '--debug' in argv or bool(env_value('MLPROJ_DEBUG'))


def main(argv: list[str] | None = None) -> int:
    from mlproj.errors import EXIT_BACKEND, EXIT_INTERNAL, EXIT_INTERRUPTED, MlprojError

    args = list(sys.argv[1:] if argv is None else argv)
    try:
        code = cli.main(args=args, prog_name='mlproj', standalone_mode=False)
    except SystemExit as e:  # a command's own exit (``mlproj run`` ends with its run's code)
        code = _exit_status(e.code)
    except click.exceptions.Exit as e:
        code = e.exit_code
    except click.ClickException as e:
        e.show()
        code = e.exit_code
    except click.Abort:
        print('mlproj: aborted', file=sys.stderr)
        code = EXIT_INTERRUPTED
    except MlprojError as e:
        if _debug_requested(args):
            import traceback

            traceback.print_exc()
        print(f'mlproj: error: {e}', file=sys.stderr)
        code = e.exit_code
    except KeyboardInterrupt:
        print('mlproj: interrupted', file=sys.stderr)
        code = EXIT_INTERRUPTED
    except BrokenPipeError:
        code = 1
    except ModuleNotFoundError as e:
        message = missing_dependency(e, args)
        if _debug_requested(args):
            import traceback

            traceback.print_exc()
        if message is None:
            print(f'mlproj: internal error: {type(e).__name__}: {e} (run with --debug for the traceback)',
                  file=sys.stderr)
            code = EXIT_INTERNAL
        else:
            print(f'mlproj: error: {message}', file=sys.stderr)
            code = EXIT_BACKEND
    except Exception as e:  # a bug: say so in one line, keep the traceback behind --debug
        if _debug_requested(args):
            import traceback

            traceback.print_exc()
        print(f'mlproj: internal error: {type(e).__name__}: {_printable(e)} (run with --debug for the traceback)',
              file=sys.stderr)
        code = EXIT_INTERNAL
    sys.stdout.flush()
    return int(code or 0)


def _exit_status(code: object) -> int:
    """The status Python's own exit gives ``SystemExit(code)``: None is 0, an int itself, any other
    value is printed to stderr and exits 1."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def entry() -> None:
    code = main()
    _fast_exit(code)
    sys.exit(code)


def _fast_exit(code: int) -> None:
    """End the process without the interpreter's finalization when nothing depends on it.

    Tearing down the ~300 modules a run loads costs 30-60 ms on these machines, a quarter of a
    trivial run's overhead.  It is skipped only when nothing could run at exit: no ``atexit``
    callback is registered (MLflow, logging and concurrent.futures all register one when imported
    and then get the normal exit), no non-daemon thread besides this one is alive, and both
    standard streams flush cleanly (a failing flush takes the normal path and its error handling).
    """
    import atexit
    import threading

    if atexit._ncallbacks() or any(t is not threading.main_thread() and not t.daemon and t.is_alive()
                                   for t in threading.enumerate()):
        return
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except (OSError, ValueError):
        return
    os._exit(code & 0xFF if code >= 0 else 1)


if __name__ == '__main__':
    entry()


def _printable(e: BaseException) -> str:
    from mlproj.safeout import printable

    return printable(e)
