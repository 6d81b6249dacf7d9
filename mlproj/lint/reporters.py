"""Output formats of ``mlproj lint``: text, json, github (workflow annotations), sarif (2.1.0).

A reporter writes findings to ``out`` (stdout) and, for text, a one-line summary to ``err``.
Paths and messages carry project-controlled text, so every line goes through ``mlproj.safeout``:
text escapes control characters, github mode can never start a line with ``::`` (a workflow
command) nor break one, JSON and SARIF keep undecodable bytes of file names as ``\\udcXX``.
"""
from __future__ import annotations

import json
import os
from typing import IO, Protocol

from mlproj.lint.engine import Issue, LintResult
from mlproj.rules import RULES
from mlproj.safeout import actions_line, json_text, printable

FORMATS = ('text', 'json', 'github', 'sarif')
INFO_URI = 'https://pypi.org/project/mlproj/'
SARIF_SCHEMA = 'https://json.schemastore.org/sarif-2.1.0.json'


class Reporter(Protocol):
    def report(self, result: LintResult, out: IO[str], err: IO[str]) -> None: ...


def text_line(issue: Issue) -> str:
    f = issue.finding
    return printable(f'{f.where()}: {f.rule} {issue.severity}: {f.message}')


def summary(result: LintResult) -> str:
    n = len(result.files)
    checked = f'{n} file{"s" if n != 1 else ""} checked'
    if not result.issues:
        return f'mlproj lint: no problems ({checked})'
    parts = []
    if result.errors:
        parts.append(f'{result.errors} error{"s" if result.errors != 1 else ""}')
    if result.warnings:
        parts.append(f'{result.warnings} warning{"s" if result.warnings != 1 else ""}')
    return f'mlproj lint: {", ".join(parts)} ({checked})'


class TextReporter:
    def __init__(self, quiet: bool = False, color: bool = False) -> None:
        self.quiet = quiet
        self.color = color

    def _paint(self, line: str, issue: Issue) -> str:
        if not self.color:
            return line
        code = '31' if issue.severity == 'error' else '33'
        head, sep, tail = line.partition(f' {issue.rule} {issue.severity}:')
        return f'\x1b[1m{head}\x1b[0m{sep[:1]}\x1b[{code}m{sep[1:]}\x1b[0m{tail}' if sep else line

    def report(self, result: LintResult, out: IO[str], err: IO[str]) -> None:
        for issue in result.issues:
            out.write(self._paint(text_line(issue), issue) + '\n')
        if not self.quiet and (result.issues or result.files):
            err.write(summary(result) + '\n')


class JsonReporter:
    def report(self, result: LintResult, out: IO[str], err: IO[str]) -> None:
        doc = {
            'version': 1,
            'files': [json_text(p) for p in result.files],
            'summary': {'errors': result.errors, 'warnings': result.warnings, 'files': len(result.files)},
            'findings': [
                {
                    'path': json_text(i.finding.path), 'line': i.finding.line, 'column': i.finding.col,
                    'rule': i.rule, 'name': RULES[i.rule].name, 'severity': i.severity,
                    'message': json_text(i.finding.message),
                }
                for i in result.issues
            ],
        }
        out.write(json.dumps(doc, indent=2) + '\n')


def _escape_data(s: str) -> str:
    return s.replace('%', '%25').replace('\r', '%0D').replace('\n', '%0A')


def _escape_property(s: str) -> str:
    return _escape_data(s).replace(':', '%3A').replace(',', '%2C')


def github_line(issue: Issue) -> str:
    """A workflow command (``::error file=...,line=...::message``): an annotation on the PR diff."""
    f = issue.finding
    props = [f'file={_escape_property(printable(f.path))}']
    if f.line:
        props.append(f'line={f.line}')
        if f.col:
            props.append(f'col={f.col}')
    props.append(f'title={_escape_property(f"{f.rule} {RULES[f.rule].name}")}')
    return f'::{issue.severity} {",".join(props)}::{_escape_data(printable(f.message))}'


class GithubReporter:
    """Annotations, then the plain lines: annotations are capped per step, logs are not."""

    def report(self, result: LintResult, out: IO[str], err: IO[str]) -> None:
        for issue in result.issues:
            out.write(github_line(issue) + '\n')
        for issue in result.issues:
            out.write(actions_line(text_line(issue)) + '\n')
        err.write(summary(result) + '\n')


def _artifact(path: str) -> dict:
    """A SARIF artifact location: a valid URI, so odd bytes and characters are percent-encoded
    (a non-UTF-8 name keeps its raw bytes as ``%XX``)."""
    from urllib.parse import quote

    if os.path.isabs(path):
        from pathlib import Path

        return {'uri': Path(path).as_uri()}
    rel = path.replace(os.sep, '/').removeprefix('./')
    return {'uri': quote(os.fsencode(rel), safe="/!$&'()*+,;=:@-._~"), 'uriBaseId': '%SRCROOT%'}


class SarifReporter:
    """SARIF 2.1.0, as GitHub code scanning uploads it (github/codeql-action/upload-sarif)."""

    def report(self, result: LintResult, out: IO[str], err: IO[str]) -> None:
        from mlproj import __version__

        rule_ids = sorted(RULES)
        index = {r: i for i, r in enumerate(rule_ids)}
        rules = [
            {
                'id': r.id,
                'name': r.name,
                'shortDescription': {'text': r.name.replace('-', ' ')},
                'fullDescription': {'text': r.doc},
                'defaultConfiguration': {'level': r.severity},
                'helpUri': INFO_URI,
                'properties': {'scope': r.scope},
            }
            for r in (RULES[i] for i in rule_ids)
        ]
        results = []
        for issue in result.issues:
            f = issue.finding
            location: dict = {'artifactLocation': _artifact(f.path)}
            if f.line:
                location['region'] = {'startLine': f.line, **({'startColumn': f.col} if f.col else {})}
            results.append({
                'ruleId': f.rule,
                'ruleIndex': index[f.rule],
                'level': issue.severity,
                'message': {'text': json_text(f.message)},
                'locations': [{'physicalLocation': location}],
            })
        doc = {
            '$schema': SARIF_SCHEMA,
            'version': '2.1.0',
            'runs': [{
                'tool': {'driver': {'name': 'mlproj', 'version': __version__, 'informationUri': INFO_URI,
                                    'rules': rules}},
                'originalUriBaseIds': {'%SRCROOT%': {'uri': _cwd_uri()}},
                'results': results,
                'columnKind': 'unicodeCodePoints',
            }],
        }
        out.write(json.dumps(doc, indent=2) + '\n')


def _cwd_uri() -> str:
    from pathlib import Path

    return Path.cwd().as_uri() + '/'


def make_reporter(name: str, *, quiet: bool = False, color: bool = False) -> Reporter:
    if name == 'text':
        return TextReporter(quiet=quiet, color=color)
    if name == 'json':
        return JsonReporter()
    if name == 'github':
        return GithubReporter()
    if name == 'sarif':
        return SarifReporter()
    raise ValueError(f'unknown format {name!r}')
