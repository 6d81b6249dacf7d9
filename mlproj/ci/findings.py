"""Lint findings as annotations: read back from workflow-command lines, sent to the Checks API.

``mlproj lint --format github`` prints ``::error file=F,line=L,col=C,title=T::message`` lines, which
the runner turns into annotations (at most 10 per level per step).  The action tees them into a
file; ``mlproj ci report`` parses that file so every finding can be attached to a check run, in
requests of at most 50 annotations each (the API's limit per request).
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple, TypeVar

from mlproj.ci.markdown import LintSummary

MAX_PER_REQUEST = 50
LEVELS = {'error': 'failure', 'warning': 'warning', 'notice': 'notice'}
COMMAND_RE = re.compile(r'^::(error|warning|notice)(?: ([^:]*))?::(.*)$')

T = TypeVar('T')


class Annotation(NamedTuple):
    level: str                  # error | warning | notice
    message: str
    file: str | None = None
    line: int | None = None
    end_line: int | None = None
    col: int | None = None
    end_col: int | None = None
    title: str | None = None

    def location(self) -> str:
        where = self.file or '<repository>'
        if self.line:
            where += f':{self.line}'
            if self.col:
                where += f':{self.col}'
        return where


def _unescape(text: str, prop: bool) -> str:
    text = text.replace('%0D', '\r').replace('%0A', '\n')
    if prop:
        text = text.replace('%3A', ':').replace('%2C', ',')
    return text.replace('%25', '%')


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, '') else None
    except ValueError:
        return None


def parse_line(line: str) -> Annotation | None:
    m = COMMAND_RE.match(line.rstrip('\r\n'))
    if not m:
        return None
    level, props_text, message = m.groups()
    props: dict[str, str] = {}
    for item in (props_text or '').split(','):
        key, sep, value = item.partition('=')
        if sep and key.strip():
            props[key.strip()] = _unescape(value, prop=True)
    return Annotation(level, _unescape(message, prop=False), props.get('file') or None,
                      _int(props.get('line')), _int(props.get('endLine')), _int(props.get('col')),
                      _int(props.get('endColumn')), props.get('title') or None)


def parse(lines: Iterable[str]) -> list[Annotation]:
    return [a for a in map(parse_line, lines) if a is not None]


def read_file(path: str | None) -> list[Annotation]:
    if not path or not os.path.exists(path):
        return []
    with open(path, encoding='utf-8', errors='replace') as f:
        return parse(f)


def relative_path(file: str, workspace: str | None) -> str:
    """Check-run annotations take paths relative to the repository root."""
    path = file
    if workspace and os.path.isabs(path):
        try:
            rel = os.path.relpath(path, workspace)
        except ValueError:
            rel = path
        if not rel.startswith('..'):
            path = rel
    path = path.replace(os.sep, '/')
    return path[2:] if path.startswith('./') else path


def to_check_annotation(a: Annotation, workspace: str | None = None) -> dict[str, Any] | None:
    """The Checks API shape of ``a`` (None when it has no file: the API requires a path)."""
    if not a.file:
        return None
    start = a.line or 1
    end = a.end_line or start
    out: dict[str, Any] = {
        'path': relative_path(a.file, workspace),
        'start_line': start,
        'end_line': max(end, start),
        'annotation_level': LEVELS[a.level],
        'message': a.message[:64_000] or a.level,
    }
    if start == out['end_line'] and a.col:  # columns are only allowed on single-line annotations
        out['start_column'] = a.col
        out['end_column'] = max(a.end_col or a.col, a.col)
    if a.title:
        out['title'] = a.title[:255]
    return out


def batches(items: list[T], size: int = MAX_PER_REQUEST) -> Iterator[list[T]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def summarize(annotations: list[Annotation], keep: int = 50) -> LintSummary:
    summary = LintSummary()
    for a in annotations:
        if a.level == 'error':
            summary.errors += 1
        elif a.level == 'warning':
            summary.warnings += 1
        else:
            summary.notices += 1
    summary.lines = [f'{a.location()}: {a.level}: {(a.title + " ") if a.title else ""}{a.message}'
                     for a in annotations[:keep]]
    return summary
