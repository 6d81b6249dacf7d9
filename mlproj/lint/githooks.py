"""Plain Git hooks for teams without the pre-commit framework.

``hooks/pre-commit`` and ``hooks/pre-push`` (repository root) are thin shell shims that call
``mlproj hooks run <hook>``; the work happens here, in Python:

- pre-commit: lint the *staged* content of every staged MLproject file (as ``git show :path``), and
  of the MLproject files that use a staged environment file (python_env.yaml, conda.yaml, a
  requirements file: ``mlproj.lint.engine.projects_using``); the env files themselves are read
  from the work tree.
- pre-push: for each project (directory with an MLproject) touched by the pushed commits, export
  the pushed commit's copy of it with ``git archive`` and ``mlproj run --dry-run`` every entry point.

The git CLI is used here, not pygit2: a hook runs inside ``git commit``/``git push`` and must see what
git sees (``GIT_INDEX_FILE`` of a partial commit, ``core.hooksPath``), which libgit2 does not honour.
"""
from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import IO, NamedTuple

from mlproj.errors import BadArgumentError, SourceError
from mlproj.spec_model import MISNAMED_RE

HOOK_NAMES = ('pre-commit', 'pre-push')
ZERO = '0' * 40
_PYTHON_LINE = "MLPROJ_PYTHON=''"

_TEMPLATE = '''#!/bin/sh
# mlproj {hook} hook: {what}
# Installed by `mlproj hooks install`; skip once with `git {verb} --no-verify`.
{python_line}
if [ -n "$MLPROJ_PYTHON" ] && [ -x "$MLPROJ_PYTHON" ]; then
  exec "$MLPROJ_PYTHON" -m mlproj hooks run {hook} "$@"
fi
if ! command -v mlproj >/dev/null 2>&1; then
  echo "mlproj {hook} hook: mlproj is not installed (pip install mlproj), or skip with --no-verify" >&2
  exit 1
fi
exec mlproj hooks run {hook} "$@"
'''
_WHAT = {
    'pre-commit': ('lint the staged MLproject files.', 'commit'),
    'pre-push': ("dry-run the entry points of every project changed by the push.", 'push'),
}


def render(hook: str, python: str | None = None) -> str:
    """The hook script; with ``python``, it runs that interpreter's mlproj (a venv not on PATH)."""
    what, verb = _WHAT[hook]
    line = f'MLPROJ_PYTHON={shlex.quote(python)}' if python else _PYTHON_LINE
    return _TEMPLATE.format(hook=hook, what=what, verb=verb, python_line=line)


def _git(args: list[str], cwd: str | Path, *, check: bool = True, input: bytes | None = None) -> bytes:
    try:
        proc = subprocess.run(['git', *args], cwd=cwd, input=input, capture_output=True)
    except FileNotFoundError:
        raise SourceError('git is not installed (the hooks need the git command)') from None
    if check and proc.returncode != 0:
        message = proc.stderr.decode('utf-8', 'replace').strip().splitlines()
        raise SourceError(f'git {args[0]} failed: {message[-1] if message else proc.returncode}', str(cwd))
    return proc.stdout


def repo_root(cwd: str | Path) -> Path:
    out = subprocess.run(['git', 'rev-parse', '--show-toplevel'], cwd=cwd, capture_output=True)
    if out.returncode != 0:
        raise SourceError('not inside a Git work tree', str(cwd))
    return Path(out.stdout.decode().strip())


def hooks_dir(cwd: str | Path) -> Path:
    """Where git looks for hooks: ``core.hooksPath`` when set, else ``$GIT_DIR/hooks``."""
    repo_root(cwd)
    rel = _git(['rev-parse', '--git-path', 'hooks'], cwd).decode().strip()
    return (Path(cwd) / rel).resolve() if not os.path.isabs(rel) else Path(rel)


class Installed(NamedTuple):
    hook: str
    path: Path
    action: str  # 'installed' | 'unchanged' | 'replaced'
    backup: Path | None = None


def install(cwd: str | Path, hooks: Iterable[str], *, force: bool = False, python: str | None = None
            ) -> list[Installed]:
    """Write the hook scripts; refuses (writing nothing) when a different hook exists and not ``force``."""
    directory = hooks_dir(cwd)
    plan: list[tuple[str, Path, str, bool]] = []
    blocked: list[str] = []
    for hook in hooks:
        target = directory / hook
        text = render(hook, python)
        exists = target.exists() or target.is_symlink()
        same = exists and target.is_file() and _read(target) == text
        if exists and not same and not force:
            blocked.append(str(target))
        plan.append((hook, target, text, exists and not same))
    if blocked:
        raise BadArgumentError('a hook is already installed at ' + ', '.join(blocked)
                               + '; keep it, or pass --force to replace it (the old one is kept as '
                               '<hook>.mlproj-backup)')
    done: list[Installed] = []
    directory.mkdir(parents=True, exist_ok=True)
    for hook, target, text, replace in plan:
        backup = None
        if replace:
            backup = target.with_name(target.name + '.mlproj-backup')
            os.replace(target, backup)
        elif target.exists():
            target.chmod(0o755)
            done.append(Installed(hook, target, 'unchanged'))
            continue
        tmp = target.with_name(f'.{target.name}.mlproj-tmp')
        tmp.write_text(text, encoding='utf-8')
        tmp.chmod(0o755)
        os.replace(tmp, target)
        done.append(Installed(hook, target, 'replaced' if replace else 'installed', backup))
    return done


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding='utf-8')
    except (OSError, UnicodeDecodeError):
        return None


def _is_project_file(name: str) -> bool:
    base = os.path.basename(name)
    return base.lower() == 'mlproject' or bool(MISNAMED_RE.match(base))


# --------------------------------------------------------------------------------------------
# pre-commit


def run_pre_commit(cwd: str | Path, out: IO[str], err: IO[str]) -> int:
    from mlproj.lint.config import find_pyproject, load_config
    from mlproj.lint.engine import is_env_file, lint_blobs, projects_using
    from mlproj.lint.reporters import TextReporter

    root = repo_root(cwd)
    names = _git(['diff', '--cached', '--name-only', '-z', '--diff-filter=ACMR'], root).split(b'\0')
    changed = [n.decode('utf-8', 'surrogateescape') for n in names if n]
    staged = [n for n in changed if _is_project_file(n)]
    in_index = set(_git(['ls-files', '-z'], root).decode('utf-8', 'surrogateescape').split('\0'))
    for name in changed:
        if is_env_file(name) and not _is_project_file(name):
            for mlproject in projects_using(root / name):
                rel = mlproject.resolve().relative_to(root.resolve()).as_posix()
                if rel in in_index and rel not in staged:
                    staged.append(rel)
    if not staged:
        return 0
    blobs = [(name, root / name, _git(['show', f':{name}'], root)) for name in staged]
    config = load_config(find_pyproject(root))
    result = lint_blobs(blobs, config)
    TextReporter(quiet=not result.issues).report(result, out, err)
    code = result.exit_code(config.strict)
    if code:
        err.write('mlproj pre-commit hook: fix the findings above, or commit with --no-verify\n')
    return code


# --------------------------------------------------------------------------------------------
# pre-push

DUMMY = {'int': '0', 'float': '0.0', 'bool': 'false', 'string': 'x', 'uri': 'x', 'path': '.'}


def _changed_files(root: Path, remote: str, local_oid: str, remote_oid: str) -> set[str]:
    if remote_oid != ZERO and _object_exists(root, remote_oid):
        raw = _git(['diff', '--name-only', '-z', remote_oid, local_oid], root)
        return {n.decode('utf-8', 'surrogateescape') for n in raw.split(b'\0') if n}
    commits = _git(['rev-list', local_oid, '--not', f'--remotes={remote}'], root).decode().split()
    changed: set[str] = set()
    for commit in commits:
        raw = _git(['diff-tree', '--no-commit-id', '--name-only', '-r', '-z', '--root', commit], root)
        changed |= {n.decode('utf-8', 'surrogateescape') for n in raw.split(b'\0') if n}
    return changed


def _object_exists(root: Path, oid: str) -> bool:
    return subprocess.run(['git', 'cat-file', '-e', f'{oid}^{{commit}}'], cwd=root,
                          capture_output=True).returncode == 0


def _project_dirs(root: Path, oid: str) -> set[str]:
    raw = _git(['ls-tree', '-r', '--name-only', '-z', oid], root)
    dirs = set()
    for name in (n.decode('utf-8', 'surrogateescape') for n in raw.split(b'\0') if n):
        if os.path.basename(name).lower() == 'mlproject':
            dirs.add(os.path.dirname(name))
    return dirs


def changed_projects(root: Path, remote: str, local_oid: str, remote_oid: str) -> list[str]:
    """Project directories (relative, '' for the root) with a file changed by the push."""
    projects = _project_dirs(root, local_oid)
    touched: set[str] = set()
    for path in _changed_files(root, remote, local_oid, remote_oid):
        parts = path.split('/')
        for depth in range(len(parts) - 1, -1, -1):  # the deepest project that contains the file
            candidate = '/'.join(parts[:depth])
            if candidate in projects:
                touched.add(candidate)
                break
    return sorted(touched)


def _export(root: Path, oid: str, project: str, dest: Path) -> Path:
    """The pushed commit's copy of the project directory, via `git archive | tar -x`."""
    archive = _git(['archive', '--format=tar', oid, '--', project or '.'], root)
    import io
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        try:
            tar.extractall(dest, filter='data')
        except TypeError:  # pragma: no cover - Python < 3.10.12 has no extraction filters
            tar.extractall(dest)  # noqa: S202 - our own repository's archive
    return dest / project if project else dest


def dry_run_project(directory: Path, label: str, out: IO[str], err: IO[str]) -> bool:
    from mlproj.errors import MlprojError
    from mlproj.spec import load_project

    try:
        project = load_project(directory)
    except MlprojError as e:
        out.write(f'FAIL  {label}: ' + str(e).replace(str(directory), label) + '\n')
        return False
    ok = True
    for ep in project.entry_points.values():
        argv = [sys.executable, '-m', 'mlproj', 'run', '--dry-run', '-e', ep.name]
        dummies = []
        for p in ep.parameters.values():
            if p.required:
                argv += ['-P', f'{p.name}={DUMMY.get(p.type, "x")}']
                dummies.append(f'{p.name}={DUMMY.get(p.type, "x")}')
        argv.append(str(directory))
        env = dict(os.environ)
        env.setdefault('MLFLOW_TRACKING_URI', (directory / '.mlproj-dry-run' / 'mlruns').as_uri())
        proc = subprocess.run(argv, capture_output=True, text=True, cwd=directory, env=env)
        shown = f' (placeholder values: {", ".join(dummies)})' if dummies else ''
        if proc.returncode == 0:
            out.write(f'ok    {label} -e {ep.name}{shown}\n')
        else:
            ok = False
            lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
            out.write(f'FAIL  {label} -e {ep.name}{shown}: {lines[-1] if lines else proc.returncode}\n')
    return ok


def run_pre_push(cwd: str | Path, remote: str, stdin: IO[str], out: IO[str], err: IO[str]) -> int:
    root = repo_root(cwd)
    failures = 0
    for line in stdin.read().splitlines():
        fields = line.split()
        if len(fields) != 4:
            continue
        _local_ref, local_oid, _remote_ref, remote_oid = fields
        if local_oid == ZERO:  # deleting a remote branch
            continue
        projects = changed_projects(root, remote, local_oid, remote_oid)
        if not projects:
            continue
        with tempfile.TemporaryDirectory(prefix='mlproj-pre-push-') as tmp:
            for project in projects:
                directory = _export(root, local_oid, project, Path(tmp) / local_oid[:12])
                if not dry_run_project(directory, project or '.', out, err):
                    failures += 1
    if failures:
        err.write(f'mlproj pre-push hook: {failures} project(s) failed the dry run; fix them, or push with '
                  '--no-verify\n')
        return 1
    return 0
