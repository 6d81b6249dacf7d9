"""Suppression comments in an MLproject file.

- ``command: x {a}  # mlproj: disable=MLP016`` silences the listed rules on that line;
  ``# mlproj: disable`` without ``=`` silences every rule on that line.
- A comment alone on its line applies to that line and the next one, so a long value can be covered
  from the line above it.
- ``# mlproj: disable-file=MLP016,MLP004`` anywhere silences the rules in the whole file.

Rules are given by id (``MLP016``) or name (``unused-param``).  Errors that make ``mlproj run``
refuse the file cannot be disabled (lint and run must agree); naming one, or a rule that does not
exist, gives an MLP023 finding.
"""
from __future__ import annotations

import re
from typing import NamedTuple

from mlproj.findings import Finding
from mlproj.rules import RULES

_COMMENT = re.compile(r'(?:^|\s)#\s*mlproj:\s*(disable-file|disable)\b(?:\s*=\s*([A-Za-z0-9_\-, ]*))?')
ALL = frozenset({'*'})


class Suppressions(NamedTuple):
    file: frozenset[str]
    lines: dict[int, frozenset[str]]
    findings: tuple[Finding, ...]  # MLP023 for unknown rule names

    def covers(self, finding: Finding) -> bool:
        if not suppressible(finding.rule):
            return False
        for rules in (self.file, self.lines.get(finding.line, frozenset())):
            if '*' in rules or finding.rule in rules:
                return True
        return False


def suppressible(rule: str) -> bool:
    """Warnings and lint-only rules; not the errors that stop `mlproj run`."""
    r = RULES.get(rule)
    return r is not None and (r.severity == 'warning' or r.scope == 'lint')


def _by_name() -> dict[str, str]:
    return {r.name: r.id for r in RULES.values()}


def parse_suppressions(text: str, label: str) -> Suppressions:
    if 'mlproj:' not in text:  # the common case, and the fast one
        return Suppressions(frozenset(), {}, ())
    names = _by_name()
    file_rules: set[str] = set()
    lines: dict[int, set[str]] = {}
    bad: list[Finding] = []
    for number, line in enumerate(text.splitlines(), 1):
        m = _COMMENT.search(line)
        if not m:
            continue
        kind, listed = m.group(1), m.group(2)
        rules: set[str] = set()
        if listed is None or not listed.strip():
            if kind == 'disable-file':
                bad.append(Finding('MLP023', 'disable-file needs rule ids: # mlproj: disable-file=MLP016',
                                   number, m.start(1) + 1, label))
                continue
            rules = {'*'}
        else:
            for item in (part.strip() for part in listed.split(',')):
                if not item:
                    continue
                rule = item.upper() if item.upper() in RULES else names.get(item.lower())
                if rule is None:
                    bad.append(Finding('MLP023', f'unknown rule {item!r} in suppression comment',
                                       number, m.start(2) + 1, label))
                    continue
                if not suppressible(rule):
                    bad.append(Finding('MLP023', f'{rule} cannot be disabled: `mlproj run` refuses the file '
                                       'anyway, so fix it', number, m.start(2) + 1, label))
                    continue
                rules.add(rule)
        if kind == 'disable-file':
            file_rules |= rules
            continue
        lines.setdefault(number, set()).update(rules)
        if line.lstrip().startswith('#'):  # a comment line covers the next line too
            lines.setdefault(number + 1, set()).update(rules)
    return Suppressions(frozenset(file_rules), {k: frozenset(v) for k, v in lines.items()}, tuple(bad))
