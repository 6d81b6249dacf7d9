"""Find MLproject files and lint them.

The loader's own findings (``spec.analyse_mlproject``, the same model ``mlproj run`` uses) come
first; then the environment files, the lint-only rules, suppression comments, the configured
selection and severities.  Nothing here raises on bad file content: every problem is a finding.

Lint refines two things the loader leaves coarse (the loader is shared with ``mlproj run``, which
must stay as lenient as MLflow): an unknown key that is a close misspelling of a known one
(MLP004 with a did-you-mean hint) becomes the error MLP030, and MLP012 points at the
``{placeholder}`` inside the command rather than at the start of the command.

Which files: a directory is walked for MLproject files, skipping the configured excludes and, by
default, what ``.gitignore`` files ignore (read with ``pathspec``, from the walked directory up to
its Git work tree root and below).  A file named on the command line is linted as an MLproject,
except an environment file (one that an MLproject in its directory or above uses as its
python_env / conda_env, its own or an entry point's, or names with ``-r``; or, used by none, one
named like python_env.yaml, conda.yaml, environment.yml, requirements*.txt): it is mapped back to
the MLproject(s) that use it, and those are linted, so a commit that changes only an env file is
still checked (the pre-commit hook passes env files too).
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

from mlproj.findings import Finding
from mlproj.lint.config import LintConfig
from mlproj.safefile import Refused, find_root, max_bytes, read_bytes
from mlproj.spec_loader import analyse_mlproject
from mlproj.spec_model import MISNAMED_RE

# Never walked into, whatever the configuration says.
VCS_DIRS = frozenset({'.git', '.hg', '.svn', '.bzr'})
# Files whose change can break an MLproject that uses them (the pre-commit manifest's `files:`).
ENV_FILE_RE = re.compile(r'^(python_env\.ya?ml|conda\.ya?ml|environment\.ya?ml|[^/]*requirements[^/]*\.(txt|in))$',
                         re.IGNORECASE)
_DID_YOU_MEAN = re.compile(r"\(did you mean '[^']*'\?\)")
_PLACEHOLDER_MSG = re.compile(r"^command of entry point (?P<ep>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\") uses "
                              r"\{(?P<ph>[^{}]*)\} but")
# How far up from an env file to look for the MLproject that uses it (without a Git root to stop at).
_MAX_UP = 16


class Issue(NamedTuple):
    """A finding as reported: with the effective (possibly configured) severity."""
    finding: Finding
    severity: str

    @property
    def rule(self) -> str:
        return self.finding.rule


class LintResult(NamedTuple):
    files: tuple[str, ...]
    issues: tuple[Issue, ...]

    @property
    def errors(self) -> int:
        return sum(1 for i in self.issues if i.severity == 'error')

    @property
    def warnings(self) -> int:
        return sum(1 for i in self.issues if i.severity == 'warning')

    def exit_code(self, strict: bool, exit_zero: bool = False) -> int:
        """1 on errors (or warnings when ``strict``, i.e. fail-on warning); 0 always with ``exit_zero``."""
        if exit_zero:
            return 0
        if self.errors or (strict and self.warnings):
            return 1
        return 0


class Target(NamedTuple):
    path: Path          # the file to read (None-like '-' handled by the caller)
    label: str          # how it is shown
    misnamed: bool      # MLproject.yaml & co
    explicit: bool      # named on the command line


class UsageError(ValueError):
    """A path that does not exist: exit 2."""


def _is_mlproject(name: str) -> bool:
    return name.lower() == 'mlproject'


def is_env_file(name: str) -> bool:
    return bool(ENV_FILE_RE.match(os.path.basename(name)))


def git_root(start: Path) -> Path | None:
    """The nearest directory at or above ``start`` that holds ``.git`` (a work tree's root)."""
    for d in (start, *start.parents):
        if (d / '.git').exists():
            return d
    return None


class GitIgnore:
    """``.gitignore`` matching for a directory walk (pathspec's GitIgnoreSpec, per directory).

    Every ``.gitignore`` from ``top`` (the Git root, else the walked directory) down to a path's
    directory applies, the deepest one with a matching pattern deciding, as in Git; ``.git/info/
    exclude`` applies at the root.  Ignored directories are not walked, so nothing below them can
    be re-included (Git does the same).
    """

    def __init__(self, top: Path) -> None:
        self.top = top
        self._specs: dict[Path, Any] = {}

    def _spec(self, directory: Path) -> Any:
        if directory not in self._specs:
            lines: list[str] = []
            sources = [directory / '.gitignore']
            if directory == self.top:
                sources.insert(0, directory / '.git' / 'info' / 'exclude')
            for source in sources:
                try:
                    lines += source.read_text(encoding='utf-8', errors='replace').splitlines()
                except OSError:
                    continue
            spec = None
            if lines:
                import pathspec

                spec = pathspec.GitIgnoreSpec.from_lines(lines)
            self._specs[directory] = spec
        return self._specs[directory]

    def ignored(self, path: Path, is_dir: bool) -> bool:
        try:
            rel_parts = path.relative_to(self.top).parts
        except ValueError:
            return False
        verdict = None
        base = self.top
        for i in range(len(rel_parts)):
            spec = self._spec(base)
            if spec is not None:
                rel = '/'.join(rel_parts[i:]) + ('/' if is_dir else '')
                result = spec.check_file(rel)
                if result.include is not None:
                    verdict = result.include
            base = base / rel_parts[i]
        return bool(verdict)


def _files_used(project: Any) -> set[Path]:
    """The env files of a project (its own and its entry points') and the requirement files they
    name (``-r``/``-c``), resolved."""
    used: set[Path] = set()
    for _, env in project.environments():
        used |= _env_files_used(project, env)
    return used


def _env_files_used(project: Any, env: Any) -> set[Path]:
    if env.kind not in ('python', 'conda') or env.path is None:
        return set()
    used = {env.path.resolve()}
    if not env.path.is_file():
        return used
    from mlproj.envs.envfiles import file_references, read_conda_env, read_python_env

    lines: list[str] = []
    if env.kind == 'python':
        penv, _ = read_python_env(env.path, project.directory)
        if penv is not None:
            lines = [*penv.build_dependencies, *penv.dependencies]
        bases = [project.directory]
    else:
        cenv, _ = read_conda_env(env.path)
        if cenv is not None:
            lines = list(cenv.pip)
        bases = [env.path.parent]
    for line in lines:
        for ref in file_references(line):
            used |= {(b / ref).resolve() for b in bases}
    return used


def projects_using(env_file: Path) -> list[Path]:
    """MLproject files, in the env file's directory or above, whose project uses ``env_file``."""
    target = env_file.resolve()
    stop = git_root(target.parent)
    found: list[Path] = []
    for depth, d in enumerate((target.parent, *target.parent.parents)):
        if depth >= _MAX_UP and stop is None:
            break
        try:
            names = sorted(n for n in os.listdir(d) if _is_mlproject(n))
        except OSError:
            names = []
        for name in names[:1]:  # several case variants: MLP018 says so when the directory is linted
            mlproject = d / name
            try:  # through the project-file reader: a FIFO, /dev/zero or a link out of the repository is skipped
                text = read_bytes(mlproject, stop or find_root(d), what='MLproject').decode('utf-8-sig')
            except (Refused, UnicodeDecodeError):
                continue
            project, _doc = analyse_mlproject(text, d, str(mlproject))
            if target in _files_used(project):
                found.append(mlproject)
        if d == stop:
            break
    return found


def _display(path: Path) -> str:
    """How a file found from an env file is labelled: relative to the current directory when below it."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if rel.startswith('..') else rel


def discover(paths: Iterable[str], config: LintConfig) -> tuple[list[Target], list[Finding]]:
    """Files to lint, plus directory-level findings (MLP018 several case variants)."""
    targets: list[Target] = []
    findings: list[Finding] = []
    seen: set[str] = set()
    checked_dirs: set[str] = set()

    def add(path: Path, label: str, explicit: bool) -> None:
        key = os.path.abspath(path)
        if key in seen:
            return
        seen.add(key)
        targets.append(Target(path, label, bool(MISNAMED_RE.match(path.name)), explicit))

    def check_dir(directory: Path, label_dir: str, names: list[str] | None = None) -> None:
        key = os.path.abspath(directory)
        if key in checked_dirs:
            return
        checked_dirs.add(key)
        if names is None:
            try:
                names = os.listdir(directory)
            except OSError:
                return
        variants = sorted(n for n in names if _is_mlproject(n) and (directory / n).is_file())
        if len(variants) > 1:
            findings.append(Finding('MLP018', 'several MLproject files differ only in letter case: '
                                    + ', '.join(variants) + '; MLflow picks one arbitrarily',
                                    0, 0, label_dir or '.'))

    def excluded(path: Path, walk_root: Path, is_dir: bool) -> bool:
        rel = config.relative(path)
        if rel is None:  # outside the configuration's directory: relative to what was given
            rel = os.path.relpath(path, walk_root)
        return config.excluded(rel, is_dir=is_dir)

    for raw in paths:
        path = Path(raw)
        if path.is_file() or (os.path.lexists(path) and not path.is_dir()):  # the reader refuses FIFOs & co.
            if config.force_exclude and excluded(path, Path('.'), False):
                continue
            users = [] if _is_mlproject(path.name) or MISNAMED_RE.match(path.name) else projects_using(path)
            if users or is_env_file(path.name):  # an env file: lint the projects that use it
                for mlproject in users:
                    if config.force_exclude and excluded(mlproject, Path('.'), False):
                        continue
                    add(mlproject, _display(mlproject), True)
                    check_dir(mlproject.parent, os.path.dirname(_display(mlproject)))
                continue
            add(path, raw, True)
            check_dir(path.parent, os.path.dirname(raw))
            continue
        if not path.is_dir():
            raise UsageError(f'no such file or directory: {raw}')
        ignore = GitIgnore(git_root(path.resolve()) or path.resolve()) if config.respect_gitignore else None
        for root, dirs, files in os.walk(path):
            rel_root = os.path.relpath(root, path)
            root_path = Path(root)
            kept = []
            for d in sorted(dirs):
                sub = root_path / d
                if d in VCS_DIRS or excluded(sub, path, True):
                    continue
                if ignore is not None and ignore.ignored(sub.resolve(), True):
                    continue
                kept.append(d)
            dirs[:] = kept
            wanted = sorted(f for f in files if _is_mlproject(f) or MISNAMED_RE.match(f))
            if not wanted:
                continue
            label_root = os.path.normpath(os.path.join(raw, rel_root)) if rel_root != '.' else raw
            check_dir(root_path, label_root, files)
            has_real = any(_is_mlproject(f) for f in wanted)
            for name in wanted:
                if excluded(root_path / name, path, False):
                    continue
                if ignore is not None and ignore.ignored((root_path / name).resolve(), False):
                    continue
                label = os.path.join(label_root, name) if label_root not in ('.', '') else name
                if MISNAMED_RE.match(name) and has_real:
                    # A stray copy next to the real file: only say that it is ignored.
                    findings.append(_misnamed(label, name))
                    continue
                add(root_path / name, label, False)
    return targets, findings


def _misnamed(label: str, name: str) -> Finding:
    return Finding('MLP015', f'{name} is ignored: MLflow and mlproj only read a file named exactly '
                   '"MLproject" (no extension); rename it', 0, 0, label)


def lint_text(text: str, directory: Path, label: str) -> list[Finding]:
    """All findings of one MLproject text (unfiltered by the selection, suppressions applied)."""
    from mlproj.lint.checks import lint_only
    from mlproj.suppress import parse_suppressions

    project, doc = analyse_mlproject(text, directory, label)
    findings = [_refine(f, doc, text, label) for f in project.findings]
    if not any(f.rule == 'MLP001' for f in findings):
        findings += lint_only(project, doc, text, label)
        findings += _env_findings(project, directory, label)
    suppressions = parse_suppressions(text, label)
    findings = [f for f in findings if f.path != label or not suppressions.covers(f)]
    return findings + list(suppressions.findings)


def _refine(finding: Finding, doc: Any, text: str, label: str) -> Finding:
    """MLP004 with a did-you-mean hit -> MLP030; MLP012 at its placeholder (see the module doc)."""
    if finding.path != label:
        return finding
    if finding.rule == 'MLP004' and _DID_YOU_MEAN.search(finding.message):
        return finding._replace(rule='MLP030')
    if finding.rule == 'MLP012':
        m = _PLACEHOLDER_MSG.match(finding.message)
        if m:
            import ast

            from mlproj.spec_yaml import locate_in_value

            try:
                ep = ast.literal_eval(m.group('ep'))
            except (ValueError, SyntaxError):
                return finding
            where = locate_in_value(doc, text, ('entry_points', ep, 'command'), '{' + m.group('ph') + '}')
            if where:
                return finding._replace(line=where[0], col=where[1])
    return finding


def _env_findings(project, directory: Path, label: str) -> list[Finding]:
    """Findings in the env files of the project and of its entry points (each file once)."""
    # the readers the environment managers use: run and lint agree on env files by construction
    from mlproj.envs.envfiles import validate_conda_env, validate_python_env

    out: list[Finding] = []
    seen: set = set()
    root = project.root or find_root(directory)
    for _, env in project.environments():
        if env.kind not in ('python', 'conda') or env.path is None or (env.kind, env.path) in seen:
            continue
        seen.add((env.kind, env.path))
        if not env.path.is_file():
            continue
        try:
            rel = os.path.relpath(env.path, directory)
        except ValueError:
            rel = str(env.path)
        env_label = os.path.join(os.path.dirname(label), rel)
        found = validate_python_env(env.path, directory, root) if env.kind == 'python' \
            else validate_conda_env(env.path, root)
        out += [f._replace(path=env_label) for f in found]
    return out


def lint_file(target: Target, config: LintConfig, data: bytes | None = None) -> list[Finding]:
    findings: list[Finding] = []
    if target.misnamed:
        findings.append(_misnamed(target.label, target.path.name))
    if data is None:
        try:
            data = read_bytes(target.path, find_root(target.path.parent), what='MLproject')
        except Refused as e:
            return findings + [Finding('MLP001', e.message, 0, 0, target.label)]
    elif len(data) > max_bytes():
        return findings + [Finding('MLP001', f'MLproject is refused: {len(data)} bytes, over the limit of '
                                   f'{max_bytes()} (MLPROJ_MAX_FILE_BYTES)', 0, 0, target.label)]
    try:
        text = data.decode('utf-8-sig')
    except UnicodeDecodeError as e:
        return findings + [Finding('MLP001', f'not UTF-8 text (byte {e.start})', 0, 0, target.label)]
    data = None  # a large file is not held twice while it is parsed
    directory = target.path.parent
    return findings + lint_text(text, directory, target.label)


def _issues(findings: Iterable[Finding], config: LintConfig) -> Iterator[Issue]:
    for f in findings:
        if config.enabled(f.rule):
            yield Issue(f, config.severity_of(f.rule))


def _sort_key(issue: Issue) -> tuple:
    f = issue.finding
    return (f.path, f.line, f.col, f.rule, f.message)


def lint_blobs(blobs: Iterable[tuple[str, Path, bytes]], config: LintConfig) -> LintResult:
    """Lint contents not read from disk, such as staged files: (label, path in the work tree, bytes)."""
    files: list[str] = []
    findings: list[Finding] = []
    for label, path, data in blobs:
        target = Target(path, label, bool(MISNAMED_RE.match(path.name)), True)
        files.append(label)
        findings += lint_file(target, config, data=data)
    issues = sorted(set(_issues(findings, config)), key=_sort_key)
    return LintResult(tuple(files), tuple(issues))


def lint_paths(paths: Iterable[str], config: LintConfig, *, stdin_data: bytes | None = None,
               stdin_filename: str | None = None) -> LintResult:
    """Lint files and directories (``-`` lints ``stdin_data``, named ``stdin_filename``)."""
    paths = list(paths)
    files: list[str] = []
    findings: list[Finding] = []
    if '-' in paths:
        paths.remove('-')
        label = stdin_filename or '<stdin>'
        directory = Path(os.path.dirname(stdin_filename)) if stdin_filename else Path('.')
        target = Target(directory / os.path.basename(label), label,
                        bool(MISNAMED_RE.match(os.path.basename(label))), True)
        findings += lint_file(target, config, data=stdin_data or b'')
        files.append(label)
    targets, dir_findings = discover(paths, config)
    findings += dir_findings
    for target in targets:
        files.append(target.label)
        findings += lint_file(target, config)
    issues = sorted(set(_issues(findings, config)), key=_sort_key)
    return LintResult(tuple(files), tuple(issues))
