"""Lint-only rules (MLP020-MLP022): useful warnings that `mlproj run` does not act on."""
from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

from mlproj.spec import EntryPoint, Finding, Project, iter_template, locate_in_value

_INTERPRETERS = re.compile(r'^(python(\d+(\.\d+)?)?|bash|sh|zsh|dash|Rscript)$')
_SCRIPT_EXT = ('.py', '.sh', '.R')
_SEPARATORS = {'&&', '||', ';', '|', '&', ';;', '(', ')'}


def lint_only(project: Project, doc, text: str, label: str) -> list[Finding]:
    findings: list[Finding] = []
    for ep in project.entry_points.values():
        if ep.command is None or ep.script:
            continue
        findings += _quoted_placeholders(ep, doc, text, label)
        findings += _missing_scripts(ep, project.directory, doc, text, label)
    if project.env.kind == 'docker' and project.data.get('name') in (None, ''):
        line, col = doc.key_pos.get(('docker_env',), (0, 0))
        findings.append(Finding('MLP022', 'docker_env is set but the project has no name; MLflow needs '
                                '`name:` to tag the image it builds', line, col, label))
    return findings


def _where(doc, text: str, ep: EntryPoint, needle: str) -> tuple[int, int]:
    path = ('entry_points', ep.name, 'command')
    return locate_in_value(doc, text, path, needle) or doc.value_pos.get(path) or ep.pos


def _quoted_placeholders(ep: EntryPoint, doc, text: str, label: str) -> Iterator[Finding]:
    state = ''  # '' outside quotes, "'" or '"' inside
    escaped = False
    for kind, value in iter_template(ep.command or ''):
        if kind == 'param':
            if state:
                where = _where(doc, text, ep, '{' + value + '}')
                yield Finding('MLP020', f'{{{value}}} is inside {state}quotes{state} in the command of entry point '
                              f'{ep.name!r}; values are already shell-quoted, so drop the quotes', *where, label)
            escaped = False
            continue
        for c in value:
            if escaped:
                escaped = False
            elif c == '\\' and state != "'":
                escaped = True
            elif state == '' and c in ('"', "'"):
                state = c
            elif c == state:
                state = ''


def _missing_scripts(ep: EntryPoint, directory: Path, doc, text: str, label: str) -> Iterator[Finding]:
    literal = ''.join(v if k == 'text' else 'PARAM{}' for k, v in iter_template(ep.command or ''))
    lexer = shlex.shlex(literal, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        tokens = list(lexer)
    except ValueError:  # unbalanced quotes: the shell will say so
        return
    if 'cd' in tokens or 'pushd' in tokens:
        return  # the working directory changes: relative paths cannot be checked
    segment: list[str] = []
    for token in tokens + [';']:
        if token in _SEPARATORS:
            script = _script_of(segment)
            if script and not (directory / script).exists():
                where = _where(doc, text, ep, script)
                yield Finding('MLP021', f'the command of entry point {ep.name!r} runs {script}, which does not '
                              'exist in the project', *where, label)
            segment = []
        else:
            segment.append(token)


def _script_of(segment: list[str]) -> str | None:
    words = [w for w in segment]
    while words and re.match(r'^[A-Za-z_][A-Za-z0-9_]*=', words[0]):  # VAR=value prefixes
        words.pop(0)
    if words and words[0] in ('exec', 'time', 'nohup'):
        words.pop(0)
    if not words or not _INTERPRETERS.match(os.path.basename(words[0])):
        return None
    for word in words[1:]:
        if word in ('-m', '-c', '-e', '--'):
            return None
        if word.startswith('-'):
            continue
        if word.endswith(_SCRIPT_EXT) and 'PARAM{}' not in word and '$' not in word \
                and not os.path.isabs(word) and not any(ch in word for ch in '*?['):
            return word
        return None
    return None
