"""The ``mlproj`` command line: a click group whose subcommands are imported on first use.

No business logic lives here; ``mlproj --help`` imports only click.
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
    'show': ('mlproj.commands.show', 'show', 'Show a resolved project: entry points, parameters, commands.'),
    'env': ('mlproj.commands.env', 'env', 'List, prune and build cached environments.'),
    'ci': ('mlproj.commands.ci', 'ci', 'CI helpers behind the GitHub Action: run, report, env-key, cancel.'),
    'lint': ('mlproj.commands.lint', 'lint', 'Lint MLproject files (stable rule ids; text/json/github/sarif).'),
    'schema': ('mlproj.commands.schema', 'schema', 'Print the JSON Schema of the MLproject file.'),
    'hooks': ('mlproj.commands.hooks', 'hooks', 'Install plain Git hooks: lint on commit, dry-run on push.'),
    'cache': ('mlproj.commands.cache', 'cache', 'List or prune the Git clone cache.'),
    'reproduce': ('mlproj.commands.reproduce', 'reproduce', 'Run a recorded MLflow run again, pinned to its commit.'),
}


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
@click.version_option(__version__, '--version', prog_name='mlproj')
@click.option('--debug', is_flag=True, envvar='MLPROJ_DEBUG', help='Show tracebacks for errors.')
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """mlproj: run MLflow Projects fast, Git-native and validated."""
    ctx.ensure_object(dict)
    ctx.obj['debug'] = debug


def _debug_requested(argv: list[str]) -> bool:
    return '--debug' in argv or os.environ.get('MLPROJ_DEBUG', '').lower() in ('1', 'true', 'yes')


def main(argv: list[str] | None = None) -> int:
    from mlproj.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, MlprojError

    args = list(sys.argv[1:] if argv is None else argv)
    try:
        code = cli.main(args=args, prog_name='mlproj', standalone_mode=False)
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
    except Exception as e:  # a bug: say so in one line, keep the traceback behind --debug
        if _debug_requested(args):
            import traceback

            traceback.print_exc()
        print(f'mlproj: internal error: {type(e).__name__}: {e} (run with --debug for the traceback)',
              file=sys.stderr)
        code = EXIT_INTERNAL
    sys.stdout.flush()
    return int(code or 0)


def entry() -> None:
    sys.exit(main())


if __name__ == '__main__':
    entry()
