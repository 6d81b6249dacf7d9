"""Find MLproject files and lint them.

The loader's own findings (``spec.analyse_mlproject``, the same model ``mlproj run`` uses) come
first; then the environment files, the lint-only rules, suppression comments, the configured
selection and severities.  Nothing here raises on bad file content: every problem is a finding.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

from mlproj.lint.config import LintConfig
from mlproj.spec import MISNAMED_RE, Finding, analyse_mlproject

# Directories never worth walking into.
SKIP_DIRS = frozenset({'.git', '.hg', '.svn', '.venv', 'venv', '.tox', '.nox', 'node_modules', '__pycache__',
                       '.mypy_cache', '.pytest_cache', '.ruff_cache', 'site-packages', '.eggs'})


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

    def exit_code(self, strict: bool) -> int:
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

    for raw in paths:
        path = Path(raw)
        if path.is_file():
            add(path, raw, True)
            check_dir(path.parent, os.path.dirname(raw))
            continue
        if not path.is_dir():
            raise UsageError(f'no such file or directory: {raw}')
        for root, dirs, files in os.walk(path):
            rel_root = os.path.relpath(root, path)
            dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not config.excluded(
                os.path.normpath(os.path.join(rel_root, d))))
            wanted = sorted(f for f in files if _is_mlproject(f) or MISNAMED_RE.match(f))
            if not wanted:
                continue
            label_root = os.path.normpath(os.path.join(raw, rel_root)) if rel_root != '.' else raw
            check_dir(Path(root), label_root, files)
            has_real = any(_is_mlproject(f) for f in wanted)
            for name in wanted:
                rel = os.path.normpath(os.path.join(rel_root, name))
                if config.excluded(rel):
                    continue
                label = os.path.join(label_root, name) if label_root not in ('.', '') else name
                if MISNAMED_RE.match(name) and has_real:
                    # A stray copy next to the real file: only say that it is ignored.
                    findings.append(_misnamed(label, name))
                    continue
                add(Path(root) / name, label, False)
    return targets, findings


def _misnamed(label: str, name: str) -> Finding:
    return Finding('MLP015', f'{name} is ignored: MLflow and mlproj only read a file named exactly '
                   '"MLproject" (no extension); rename it', 0, 0, label)


def lint_text(text: str, directory: Path, label: str) -> list[Finding]:
    """All findings of one MLproject text (unfiltered by the selection, suppressions applied)."""
    from mlproj.lint.checks import lint_only
    from mlproj.lint.suppress import parse_suppressions

    project, doc = analyse_mlproject(text, directory, label)
    findings = list(project.findings)
    if not any(f.rule == 'MLP001' for f in findings):
        findings += lint_only(project, doc, text, label)
        findings += _env_findings(project, directory, label)
    suppressions = parse_suppressions(text, label)
    findings = [f for f in findings if f.path != label or not suppressions.covers(f)]
    return findings + list(suppressions.findings)


def _env_findings(project, directory: Path, label: str) -> list[Finding]:
    env = project.env
    if env.kind not in ('python', 'conda') or env.path is None or not env.path.is_file():
        return []
    # the readers the environment managers use: run and lint agree on env files by construction
    from mlproj.envs.envfiles import validate_conda_env, validate_python_env

    try:
        rel = os.path.relpath(env.path, directory)
    except ValueError:
        rel = str(env.path)
    env_label = os.path.join(os.path.dirname(label), rel)
    found = validate_python_env(env.path, directory) if env.kind == 'python' else validate_conda_env(env.path)
    return [f._replace(path=env_label) for f in found]


def lint_file(target: Target, config: LintConfig, data: bytes | None = None) -> list[Finding]:
    findings: list[Finding] = []
    if target.misnamed:
        findings.append(_misnamed(target.label, target.path.name))
    if data is None:
        try:
            data = target.path.read_bytes()
        except OSError as e:
            return findings + [Finding('MLP001', f'cannot read file: {e.strerror}', 0, 0, target.label)]
    try:
        text = data.decode('utf-8-sig')
    except UnicodeDecodeError as e:
        return findings + [Finding('MLP001', f'not UTF-8 text (byte {e.start})', 0, 0, target.label)]
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
