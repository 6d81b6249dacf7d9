"""One error family for everything a user can get wrong.

Every class carries a stable process exit code (documented in README.md) and renders as a
single line: ``<what> (<where>)``.  The CLI prints ``mlproj: error: <line>`` and exits with the
code; ``--debug`` adds the traceback.  Anything that is *not* an ``MlprojError`` is a bug and
exits with ``EXIT_INTERNAL``.
"""
from __future__ import annotations

EXIT_OK = 0
EXIT_USAGE = 2          # click usage errors (unknown option, missing argument)
EXIT_BAD_ARGUMENT = 64  # a flag value that does not parse (-P without '=', bad JSON, ...)
EXIT_SPEC = 65          # MLproject / env file invalid, unknown entry point
EXIT_PARAM = 66         # parameter missing or of the wrong type
EXIT_SOURCE = 67        # URI, Git revision, subdirectory, clone cache, credentials
EXIT_ENV = 68           # environment could not be prepared
EXIT_BACKEND = 69       # backend unknown, misconfigured or unreachable; a needed extra not installed
EXIT_TRACKING = 70      # MLflow tracking store unreachable or refused a request
EXIT_INTERNAL = 71      # a bug in mlproj (unexpected exception)
EXIT_INTERRUPTED = 130  # run cancelled by SIGINT (SIGTERM gives 143)


def first_line(e: BaseException, limit: int = 300) -> str:
    """The first line of ``str(e)`` (the exception's type name when it has no text), cut to
    ``limit`` characters: how a library's exception is quoted inside an ``MlprojError`` message.
    """
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0][:limit]


def one_line(e: BaseException, limit: int = 400) -> str:
    """All of ``str(e)`` with its whitespace runs (newlines included) collapsed to single spaces,
    cut to ``limit`` characters: for exceptions whose first line alone says too little."""
    text = str(e).strip() or type(e).__name__
    return ' '.join(text.split())[:limit]


class MlprojError(Exception):
    """Base of all user-facing errors."""

    exit_code = EXIT_INTERNAL

    def __init__(self, message: str, where: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.where = where

    def __str__(self) -> str:
        # one line, and no control character from a path or value reaches the terminal or a CI
        # log (mlproj.safeout): a newline in `where` could otherwise start a `::` workflow command
        from mlproj.safeout import printable

        text = ' '.join(self.message.split('\n'))
        if self.where:
            return printable(f'{text} ({self.where})')
        return printable(text)


class BadArgumentError(MlprojError):
    exit_code = EXIT_BAD_ARGUMENT


class SpecError(MlprojError):
    exit_code = EXIT_SPEC


class ParamError(MlprojError):
    exit_code = EXIT_PARAM


class SourceError(MlprojError):
    exit_code = EXIT_SOURCE


class EnvError(MlprojError):
    exit_code = EXIT_ENV


class BackendError(MlprojError):
    exit_code = EXIT_BACKEND


class TrackingError(MlprojError):
    exit_code = EXIT_TRACKING


class RunFailed(MlprojError):
    """The project's command ran and failed; the exit code mirrors the child's."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


ALL_ERRORS = (
    BadArgumentError, SpecError, ParamError, SourceError, EnvError, BackendError, TrackingError,
)
