"""The command line's click-free core, and ``mlproj run`` parsed without click.

**Why a second parser.**  Importing click costs 15-16 ms on the 2-core benchmark machine
(``click`` with ``inspect``'s company, ``uuid``, ``platform``, ``datetime``, ``gettext``; measured
side by side, interleaved, 60 runs each), about a sixth of a tracked run's whole overhead against
an ``mlflow server`` (``benchmarks/results/run.md``).  ``mlproj run`` is the command users start
hundreds of times (sweeps, CI), so :func:`main` parses the argument lists that make up everyday
runs itself, and hands *everything else* to click (``mlproj.cli``): help, completion, ``--dry-run``,
unknown or misspelt options, a missing value, clustered short flags, more than one URI, a flag
given a value, an invalid choice, any of the environment variables click reads for these
commands' options (``MLPROJ_DEBUG``, ``MLPROJ_QUIET``, ``MLPROJ_VERBOSE``, ``MLFLOW_TMP_DIR``,
``_MLPROJ_COMPLETE``), and ``--quiet`` given together with ``--verbose``.  Whatever this parser
refuses, click parses and reports exactly as before, so only lists both parse the same way ever take
this path.

**How it is kept equal to click.**  ``tests/unit/test_clicore.py`` checks that the option tables
below are the click commands' own parameters (names, aliases, flags, repeatable, defaults,
choices, environment variables), so adding an option to ``mlproj run`` without adding it here fails
a test; and it parses thousands of generated argument lists both ways (click through
``make_context``), requiring the same values and the same quiet/verbose side effects wherever this
parser accepts a list, and that it accepts the everyday forms.

The rest is what both paths share, none of which needs click: the command table shown by
``mlproj --help``, the group options' effects (:func:`apply_global_options`), the mapping of errors to
one line and an exit code (:func:`guarded`), and the exit without finalization (:func:`fast_exit`).
"""
from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping

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

# -- the option tables (tests/unit/test_clicore.py holds them equal to the click commands) -------
# option string -> destination
GROUP_FLAGS = {'--debug': 'debug', '-q': 'quiet', '--quiet': 'quiet', '--verbose': 'verbose'}
GROUP_VALUES = {'--color': 'color'}
GROUP_CHOICES = {'color': ('auto', 'always', 'never')}
GROUP_DEFAULTS: dict[str, object] = {'debug': False, 'color': None, 'quiet': False, 'verbose': False}

RUN_VALUES = {
    '-e': 'entry_point', '--entry-point': 'entry_point', '-v': 'version', '--version': 'version',
    '--experiment-name': 'experiment_name', '--experiment-id': 'experiment_id',
    '-b': 'backend', '--backend': 'backend', '-m': 'backend', '--mode': 'backend',
    '-c': 'backend_config', '--backend-config': 'backend_config', '--cluster-spec': 'backend_config',
    '--env-manager': 'env_manager', '--storage-dir': 'storage_dir', '--run-id': 'run_id',
    '--run-name': 'run_name', '--tracking-uri': 'tracking_uri', '--git-username': 'git_username',
    '--git-password': 'git_password',
}
RUN_MULTIPLE = {'-P': 'param_list', '--param-list': 'param_list', '--param': 'param_list',
                '-A': 'docker_args', '--docker-args': 'docker_args', '--pass-env': 'pass_env'}
RUN_FLAGS = {'--build-image': 'build_image', '--keep-checkout': 'keep_checkout',
             '--require-clean': 'require_clean', '--no-wait': 'no_wait', '--strict': 'strict',
             '-q': 'quiet', '--quiet': 'quiet', '--verbose': 'verbose'}
RUN_PAIRS = {'--reuse': ('reuse', True), '--force': ('reuse', False)}
RUN_DEFAULTS: dict[str, object] = {
    'uri': '.', 'entry_point': 'main', 'version': None, 'param_list': (), 'docker_args': (),
    'experiment_name': None, 'experiment_id': None, 'backend': None, 'backend_config': None,
    'env_manager': None, 'storage_dir': None, 'run_id': None, 'run_name': None, 'build_image': False,
    'tracking_uri': None, 'dry_run': False, 'as_json': False, 'keep_checkout': False,
    'require_clean': False, 'no_wait': False, 'pass_env': (), 'strict': False, 'reuse': None,
    'git_username': None, 'git_password': None,
}
# read by click for these commands' options: with any of them set, click parses
CLICK_ENV = ('_MLPROJ_COMPLETE', 'MLPROJ_DEBUG', 'MLPROJ_QUIET', 'MLPROJ_VERBOSE', 'MLFLOW_TMP_DIR')


class Parsed:
    """What :func:`parse` found: the group's options, the run command's keyword arguments, and
    whether the run command was given ``--quiet`` / ``--verbose`` (callbacks in click)."""

    __slots__ = ('group', 'run', 'run_quiet', 'run_verbose')

    def __init__(self, group: dict, run: dict, run_quiet: bool, run_verbose: bool) -> None:
        self.group, self.run, self.run_quiet, self.run_verbose = group, run, run_quiet, run_verbose


def parse(argv: list[str], environ: Mapping[str, str] | None = None) -> Parsed | None:
    """``mlproj [group options] run [run options] [URI]`` as click would parse it, or None for
    anything this parser leaves to click (see the module docstring)."""
    from mlproj.request import ENV_MANAGERS

    env = os.environ if environ is None else environ
    if any(env.get(name) for name in CLICK_ENV):
        return None
    i, group = 0, dict(GROUP_DEFAULTS)
    while i < len(argv) and argv[i] != 'run':
        token = argv[i]
        name, eq, attached = token.partition('=') if token.startswith('--') else (token, '', '')
        if name in GROUP_FLAGS and not eq:
            group[GROUP_FLAGS[name]] = True
            i += 1
        elif name in GROUP_VALUES:
            if eq:
                value, i = attached, i + 1
            elif i + 1 < len(argv):
                value, i = argv[i + 1], i + 2
            else:
                return None
            group[GROUP_VALUES[name]] = value
        else:
            return None  # --help, --version, another command, an unknown option
    if i == len(argv):
        return None
    if group['color'] is not None and group['color'] not in GROUP_CHOICES['color']:
        return None
    run = dict(RUN_DEFAULTS)
    multiple: dict[str, list[str]] = {}
    positional: list[str] = []
    quiet = verbose = False
    tokens = argv[i + 1:]
    j = 0
    while j < len(tokens):
        token = tokens[j]
        j += 1
        if token == '--':
            positional.extend(tokens[j:])
            break
        if not token.startswith('-') or token == '-':
            if token == '-':
                return None
            positional.append(token)
            continue
        if token.startswith('--'):
            name, eq, attached = token.partition('=')
            has_value = bool(eq)
        else:
            name, attached = token[:2], token[2:]
            has_value = bool(attached)
        if name in RUN_VALUES or name in RUN_MULTIPLE:
            if has_value:
                value = attached
            elif j < len(tokens):
                value = tokens[j]
                j += 1
            else:
                return None  # click: "Option '-e' requires an argument."
            if name in RUN_VALUES:
                run[RUN_VALUES[name]] = value
            else:
                multiple.setdefault(RUN_MULTIPLE[name], []).append(value)
        elif has_value:
            return None  # a flag given a value, a short flag cluster, an unknown option
        elif name in RUN_FLAGS:
            dest = RUN_FLAGS[name]
            if dest == 'quiet':
                quiet = True
            elif dest == 'verbose':
                verbose = True
            else:
                run[dest] = True
        elif name in RUN_PAIRS:
            dest, flag = RUN_PAIRS[name]
            run[dest] = flag
        else:
            return None  # --help, --dry-run, --json, an unknown option
    if len(positional) > 1:
        return None
    if positional:
        run['uri'] = positional[0]
    for dest, values in multiple.items():
        run[dest] = tuple(values)
    if run['env_manager'] is not None and run['env_manager'] not in ENV_MANAGERS:
        return None
    if (group['quiet'] or quiet) and (group['verbose'] or verbose):
        return None  # which conflict click reports first depends on its processing order
    return Parsed(group, run, quiet, verbose)


def main(argv: list[str]) -> int | None:
    """Run ``mlproj run`` without click when :func:`parse` accepts ``argv``: its exit code, else None."""
    parsed = parse(argv)
    if parsed is None:
        return None

    def call() -> int:
        from mlproj import quiet, verbose
        from mlproj.commands.run_body import invoke

        g = parsed.group
        apply_global_options(debug=g['debug'], color=g['color'], quiet=g['quiet'], verbose=g['verbose'],
                             command='run')
        if parsed.run_quiet:
            quiet.enable()
        if parsed.run_verbose:
            verbose.enable()
        invoke(**parsed.run)
        return 0

    return guarded(call, argv)


def apply_global_options(*, debug: bool, color: str | None, quiet: bool, verbose: bool, command: str | None) -> None:
    """What the group options do before a command runs (both paths)."""
    from mlproj import color as color_policy
    from mlproj import verbose as verbose_mode

    if command != 'run':  # `run` resumes the collector once its command started
        from mlproj import console

        console.resume()
    color_policy.set_choice(color)
    verbose_mode.disable()   # one invocation's mode (tests run many in one process)
    if quiet and verbose:
        from mlproj.errors import BadArgumentError

        raise BadArgumentError(verbose_mode.CONFLICT)
    if verbose:
        verbose_mode.enable()
    if quiet and not debug:
        from mlproj import quiet as quiet_mode

        quiet_mode.enable()


def missing_dependency(error: ModuleNotFoundError, args: list[str]) -> str | None:
    """The one-line message for an optional module that is not installed, or None (then it is a bug)."""
    top = (error.name or '').split('.')[0]
    extra = OPTIONAL_MODULES.get(top)
    if extra is None:
        return None
    command = next((a for a in args if a in COMMANDS), None)
    what = f'mlproj {command}' if command else 'this command'
    return f'{what} needs {top}, which is not installed: pip install "mlproj[{extra}]"'


def debug_requested(argv: list[str]) -> bool:
    from mlproj.settings import env_value

    return '--debug' in argv or bool(env_value('MLPROJ_DEBUG'))


def guarded(call: Callable[[], object], args: list[str]) -> int:
    """``call()``'s exit code, every error mapped to one line on stderr and a stable code."""
    from mlproj.errors import EXIT_BACKEND, EXIT_INTERNAL, EXIT_INTERRUPTED, MlprojError

    try:
        code = call()
    except SystemExit as e:  # a command's own exit (``mlproj run`` ends with its run's code)
        code = exit_status(e.code)
    except MlprojError as e:
        if debug_requested(args):
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
        if debug_requested(args):
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
        if debug_requested(args):
            import traceback

            traceback.print_exc()
        from mlproj.safeout import printable

        print(f'mlproj: internal error: {type(e).__name__}: {printable(e)} (run with --debug for the traceback)',
              file=sys.stderr)
        code = EXIT_INTERNAL
    sys.stdout.flush()
    return int(code or 0)  # type: ignore[call-overload]


def exit_status(code: object) -> int:
    """The status Python's own exit gives ``SystemExit(code)``: None is 0, an int itself, any other
    value is printed to stderr and exits 1."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def fast_exit(code: int) -> None:
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
