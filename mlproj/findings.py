"""A finding: one problem of an MLproject or env file at a position, named by a stable rule id.

The loader (``mlproj.spec``), the env-file readers (``mlproj.envs.envfiles``) and the linter
(``mlproj.lint``) all speak in findings; this module depends on nothing but the rule table, so
any of them can import it without pulling in the others.
"""
from __future__ import annotations

from typing import NamedTuple

from mlproj.rules import RULES


class Finding(NamedTuple):
    rule: str
    message: str
    line: int = 0
    col: int = 0
    path: str = ''

    @property
    def severity(self) -> str:
        return RULES[self.rule].severity

    def where(self) -> str:
        if self.line:
            return f'{self.path}:{self.line}:{self.col}'
        return self.path

    def __str__(self) -> str:
        return f'{self.where()}: {self.rule} {self.message}'
