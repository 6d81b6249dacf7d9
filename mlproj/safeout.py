"""The one place that makes user-controlled text safe to print.

Paths, keys and values that come from a project (a directory named ``evil\\n::error::pwned``, a
file name with an ESC sequence, a non-UTF-8 name) are printed by mlproj in findings, errors and
the Action's logs.  Three renderings:

* ``printable(text)`` for terminals and plain logs: C0 / C1 control characters (ESC, CR, LF,
  TAB, NEL, ...), DEL, the Unicode line / paragraph separators, bidirectional overrides and lone
  surrogates (a non-UTF-8 byte decoded with ``surrogateescape``) become visible escapes
  (``\\n``, ``\\x1b``, ``\\u202e``, ``\\udcff``) so nothing can move the cursor, recolour the
  terminal, hide text or start a new line.  Backslashes are left alone (not reversible, on purpose:
  the form is for reading).
* ``actions_line(text)`` for anything printed in ``--format github`` mode or inside the Action:
  ``printable`` plus a neutralised start, so no line mlproj writes can begin (after the
  whitespace the runner trims) with ``::`` (a workflow command) or ``##[`` (the older syntax);
  the first character becomes ``%3A`` / ``%23``, GitHub's own escapes.
* ``json_text(text)`` for JSON and SARIF: lone surrogates from ``surrogateescape`` become
  ``\\udcXX`` escapes of the raw byte (``\\\\udcff`` in the JSON text, i.e. the six characters
  ``\\udcff``), because a JSON encoder would otherwise write an unpaired surrogate that strict
  UTF-8 readers reject.  Control characters are left to JSON's own escaping.
"""
from __future__ import annotations

import re

# C0 controls, DEL, C1 controls, line/paragraph separators, bidi embeddings/overrides/isolates,
# lone surrogates (what surrogateescape makes of undecodable bytes).
_UNSAFE = re.compile('[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\u200e\u200f\ud800-\udfff]')
_NAMED = {'\n': '\\n', '\r': '\\r', '\t': '\\t'}
_COMMAND_START = re.compile(r'^(\s*)(::|##\[)')


def _escape(match: re.Match[str]) -> str:
    c = match.group()
    if c in _NAMED:
        return _NAMED[c]
    code = ord(c)
    return f'\\x{code:02x}' if code < 0x100 else f'\\u{code:04x}'


def printable(text: object, *, keep_newlines: bool = False) -> str:
    """``text`` with every control / invisible-direction character as a visible escape
    (``keep_newlines``: LF stays, for an annotation body that escapes it its own way)."""
    if keep_newlines:
        return _UNSAFE.sub(lambda m: m.group() if m.group() == '\n' else _escape(m), str(text))
    return _UNSAFE.sub(_escape, str(text))


def actions_line(text: object) -> str:
    """One line that GitHub's runner cannot read as a workflow command."""
    line = printable(text)
    return _COMMAND_START.sub(lambda m: m.group(1) + ('%3A:' if m.group(2) == '::' else '%23#['), line, count=1)


def json_text(text: object) -> str:
    """``text`` for a JSON / SARIF document: undecodable bytes kept as ``\\udcXX`` escapes."""
    s = str(text)
    if not any('\ud800' <= c <= '\udfff' for c in s):
        return s
    return re.sub('[\ud800-\udfff]', lambda m: f'\\u{ord(m.group()):04x}', s)
