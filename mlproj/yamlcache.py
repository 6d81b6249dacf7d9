"""Parsed YAML remembered by content: a run of an unchanged MLproject does not load PyYAML.

Why: importing PyYAML (its resolver compiles a dozen regular expressions) and parsing an
MLproject costs 20-35 ms, a sixth of the run path's overhead budget on MLflow's sqlite store
(issue 15, ``benchmarks/results/run.md``), and the same few files are parsed on every run.
``mlproj.spec_yaml.parse_yaml`` asks here first; on a miss it parses and stores the result.

* **What is stored:** the values and the position of every key and value (``spec_yaml.Doc``),
  as JSON under ``<cache>/facts/yaml/<key>.json``.  Only documents that parsed without a
  finding and hold plain JSON values (mappings with string keys, lists, strings, integers,
  finite floats, booleans, null) are stored: anything else (dates, binary, non-string keys,
  a syntax error) is parsed every time, so findings always come from PyYAML itself.
* **The key** is the SHA-256 of the text, this module's format, mlproj's version and the
  installed PyYAML's identity (its ``__init__.py`` path, size and mtime, found without
  importing it): a different PyYAML or mlproj never sees another's parse.
* **Reads** are bounded (``MAX_ENTRY_BYTES``) and validated: an entry that is not what this
  module writes is ignored and re-parsed.  Writes are atomic; a cache that cannot be written
  (read-only, full) only costs the parse.

``tests/unit/test_yamlcache.py`` compares cached and fresh parses over the examples' and the
tests' YAML documents, hostile ones included.
"""
from __future__ import annotations

import math
import os
from typing import Any

from mlproj.cachedir import read_json_bounded

FORMAT = 1
MAX_ENTRY_BYTES = 4 << 20
MAX_TEXT_CHARS = 1 << 20  # larger documents are parsed every time (an MLproject is a few KB)


def _pyyaml_identity() -> str | None:
    import importlib.util

    try:
        spec = importlib.util.find_spec('yaml')
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    try:
        st = os.stat(spec.origin)
    except OSError:
        return None
    return f'{spec.origin}:{st.st_size}:{st.st_mtime_ns}'


def _entry_path(text: str) -> Any:
    from mlproj import __version__
    from mlproj.cachedir import cache_root
    from mlproj.digest import sha256

    identity = _pyyaml_identity()
    if identity is None:
        return None
    h = sha256(f'{FORMAT}\0{__version__}\0{identity}\0'.encode())
    h.update(text.encode('utf-8', 'surrogatepass'))
    return cache_root() / 'facts' / 'yaml' / f'{h.hexdigest()}.json'


def _plain(value: Any) -> bool:
    stack = [value]
    while stack:
        v = stack.pop()
        t = type(v)
        if t is dict:
            for k, item in v.items():
                if type(k) is not str:
                    return False
                stack.append(item)
        elif t is list:
            stack.extend(v)
        elif t is float:
            if not math.isfinite(v):
                return False
        elif t not in (str, int, bool) and v is not None:
            return False
    return True


def _positions_plain(positions: dict) -> bool:
    return all(all(type(part) in (str, int) for part in path) for path in positions)


def load(text: str) -> tuple[Any, Any] | None:
    """The remembered ``(data, Doc)`` of ``text``, or None."""

    from mlproj.spec_yaml import Doc

    if len(text) > MAX_TEXT_CHARS:
        return None
    path = _entry_path(text)
    if path is None:
        return None
    entry = read_json_bounded(path, MAX_ENTRY_BYTES)
    try:
        if entry['format'] != FORMAT:
            return None
        doc = Doc()
        for name in ('key_pos', 'value_pos', 'value_end'):
            table = getattr(doc, name)
            for path_parts, line, col in entry[name]:
                if not (type(line) is int and type(col) is int and isinstance(path_parts, list)):
                    return None
                table[tuple(path_parts)] = (line, col)
        data = entry['data']
    except (KeyError, TypeError, ValueError):
        return None
    if not _plain(data):
        return None
    return data, doc


def store(text: str, data: Any, doc: Any) -> None:
    """Remember a clean parse of ``text``; silently nothing when it does not qualify."""
    import json

    from mlproj.cachedir import write_text_atomic

    if len(text) > MAX_TEXT_CHARS or doc.findings or not _plain(data):
        return
    tables = {name: getattr(doc, name) for name in ('key_pos', 'value_pos', 'value_end')}
    if not all(_positions_plain(t) for t in tables.values()):
        return
    entry = {'format': FORMAT, 'data': data,
             **{name: [[list(p), pos[0], pos[1]] for p, pos in t.items()] for name, t in tables.items()}}
    try:
        path = _entry_path(text)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(entry, separators=(',', ':')))
    except (OSError, ValueError):
        pass
