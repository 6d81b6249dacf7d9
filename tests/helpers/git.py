"""The one Git runner of the tests: every test that runs ``git`` itself goes through ``run_git``.

The command line and environment are built here only: a fixed identity, no system config, no
prompt, no ``GIT_*`` variable leaking in from the machine (or from a hook running the tests), the
global config either ``$HOME``'s of an isolated ``home`` or none at all, ``main`` as the initial
branch and ``file://`` submodules allowed.
"""
from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

IDENTITY = {'GIT_AUTHOR_NAME': 't', 'GIT_AUTHOR_EMAIL': 't@example.com',
            'GIT_COMMITTER_NAME': 't', 'GIT_COMMITTER_EMAIL': 't@example.com'}


def git_env(home: Path | str | None = None, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``env`` (default ``os.environ``) without its ``GIT_*`` variables, plus the fixed identity.

    With ``home``, ``HOME`` is that directory and its ``.gitconfig`` is the global config (tests
    write credential helpers there); without, Git reads no global config.
    """
    out = {k: v for k, v in (os.environ if env is None else env).items() if not k.startswith('GIT_')}
    out.update(IDENTITY, GIT_CONFIG_NOSYSTEM='1', GIT_TERMINAL_PROMPT='0')
    if home is not None:
        out['HOME'] = str(home)
    else:
        out['GIT_CONFIG_GLOBAL'] = os.devnull
    return out


def run_git(*args: str, cwd: Path | str | None = None, home: Path | str | None = None,
            env: Mapping[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    """``git ARGS`` in ``cwd`` with ``git_env(home, env)``; with ``check``, a failure raises with git's stderr."""
    proc = subprocess.run(['git', '-c', 'protocol.file.allow=always', '-c', 'init.defaultBranch=main', *args],
                          cwd=cwd, env=git_env(home, env), capture_output=True, text=True,
                          stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise RuntimeError(f'git {" ".join(args)} failed ({proc.returncode}): {proc.stderr}')
    return proc


def git(*args: str, cwd: Path | str | None = None, home: Path | str | None = None,
        env: Mapping[str, str] | None = None, check: bool = True) -> str:
    """``run_git(...)``'s stdout, stripped."""
    return run_git(*args, cwd=cwd, home=home, env=env, check=check).stdout.strip()


def commit_all(repo: Path, message: str = 'commit', *, home: Path | str | None = None) -> str:
    """``git add -A`` and commit everything in ``repo``; returns the new HEAD."""
    git('add', '-A', cwd=repo, home=home)
    git('commit', '-qm', message, cwd=repo, home=home)
    return git('rev-parse', 'HEAD', cwd=repo, home=home)
