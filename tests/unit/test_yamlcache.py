"""``mlproj.yamlcache``: a remembered parse is exactly PyYAML's parse, or is not used."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlproj import spec_yaml, yamlcache

ROOT = Path(__file__).resolve().parents[2]

DOCUMENTS = [
    'name: t\nentry_points:\n  main:\n    command: "python -c pass"\n',
    'a: [1, 2.5, -3, true, null, "x"]\nb: {c: {d: [ {e: f} ]}}\n',
    'base: &b {x: 1}\nderived:\n  <<: *b\n  y: 2\n',
    'text: |\n  line one\n  line two\nfolded: >\n  a\n  b\n',
    'unicode: "caf\\u00e9 \\U0001F600"\nempty: ""\nzero: 0\n',
    '- 1\n- [2, [3, [4]]]\n',
    '',
    '# only a comment\n',
]
NOT_STORED = [
    'when: 2024-01-01\n',                 # a date
    'bin: !!binary aGVsbG8=\n',           # bytes
    '1: integer key\n',                   # a non-string key
    'x: .nan\n',                          # a non-finite float
    'a: 1\na: 2\n',                       # a duplicate key (a finding)
    'a: [1, 2\n',                         # a syntax error
]


def _examples() -> list[str]:
    texts = []
    for path in sorted((ROOT / 'examples').rglob('*')):
        if path.name == 'MLproject' or path.suffix in ('.yaml', '.yml'):
            texts.append(path.read_text(encoding='utf-8'))
    assert texts, 'the examples hold YAML documents'
    return texts


def _same(a: tuple, b: tuple) -> None:
    (data_a, doc_a), (data_b, doc_b) = a, b
    assert data_a == data_b and type(data_a) is type(data_b)
    assert doc_a.key_pos == doc_b.key_pos
    assert doc_a.value_pos == doc_b.value_pos
    assert doc_a.value_end == doc_b.value_end
    assert doc_a.findings == doc_b.findings


@pytest.mark.parametrize('text', DOCUMENTS + _examples())
def test_a_remembered_parse_equals_pyyaml(text):
    fresh = spec_yaml._parse(text)
    first = spec_yaml.parse_yaml(text)               # parses and stores
    _same(first, fresh)
    remembered = yamlcache.load(text)
    assert remembered is not None
    _same(remembered, fresh)
    _same(spec_yaml.parse_yaml(text), fresh)         # answered from the cache
    if isinstance(remembered[0], dict):
        remembered[0]['mutated'] = True
    _same(spec_yaml.parse_yaml(text), fresh)         # every answer is a fresh copy


@pytest.mark.parametrize('text', NOT_STORED)
def test_documents_that_are_not_plain_or_have_findings_are_parsed_every_time(text):
    fresh = spec_yaml._parse(text)
    _same(spec_yaml.parse_yaml(text), fresh)
    assert yamlcache.load(text) is None


def test_corrupt_or_foreign_entries_are_ignored():
    text = 'name: corrupt\n'
    spec_yaml.parse_yaml(text)
    entry = yamlcache._entry_path(text)
    for junk in ('{', '[]', '{"format": 99}', '{"format": 1, "data": {}, "key_pos": [[["a"], "x", 1]],'
                 ' "value_pos": [], "value_end": []}', '{"format": 1, "data": {"a": [1, {"b": 1e999}]},'
                 ' "key_pos": [], "value_pos": [], "value_end": []}'):
        entry.write_text(junk)
        assert yamlcache.load(text) is None
        _same(spec_yaml.parse_yaml(text), spec_yaml._parse(text))


def test_another_pyyaml_never_sees_the_entry(monkeypatch):
    text = 'name: identity\n'
    spec_yaml.parse_yaml(text)
    assert yamlcache.load(text) is not None
    monkeypatch.setattr(yamlcache, '_pyyaml_identity', lambda: '/elsewhere/yaml/__init__.py:1:1')
    assert yamlcache.load(text) is None


def test_a_read_only_cache_only_costs_the_parse(tmp_path, monkeypatch):
    cache = tmp_path / 'ro-cache'
    cache.mkdir()
    os.chmod(cache, 0o500)
    monkeypatch.setenv('MLPROJ_CACHE_DIR', str(cache))
    text = 'name: read-only\n'
    try:
        _same(spec_yaml.parse_yaml(text), spec_yaml._parse(text))
    finally:
        os.chmod(cache, 0o700)


def test_a_remembered_mlproject_loads_without_pyyaml(tmp_path):
    project = tmp_path / 'p'
    project.mkdir()
    (project / 'MLproject').write_text(f'# {tmp_path}\n' + DOCUMENTS[0])  # never parsed before
    code = ('import sys; from mlproj.spec import load_project; p = load_project(sys.argv[1]); '
            'print(sorted(p.entry_points), "yaml" in sys.modules)')
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    runs = [subprocess.run([sys.executable, '-c', code, str(project)], env=env, capture_output=True, text=True)
            for _ in range(2)]
    assert [r.stdout.split() for r in runs] == [["['main']", 'True'], ["['main']", 'False']], runs[1].stderr
