from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlproj.errors import BadArgumentError, ParamError
from mlproj.params import BoundParams, bind, build_command, parse_key_values
from mlproj.spec import EntryPoint, Parameter


def ep(command: str, **params: tuple[str, object]) -> EntryPoint:
    return EntryPoint('main', command, {n: Parameter(n, t, d) for n, (t, d) in params.items()})


def run_shell(command: str, cwd: Path) -> list[str]:
    """Run a built command through a real bash and return the argv the program received."""
    out = subprocess.run(['bash', '-c', command], cwd=cwd, capture_output=True, check=True)
    return json.loads(out.stdout)


DUMP = f'{sys.executable} -c "import json,sys; print(json.dumps(sys.argv[1:]))"'


@pytest.mark.parametrize('ptype,good,bad', [
    ('int', ['0', '-3', '+7', '12345678901234567890', ' 42 '],
     ['abc', '1.0', '', '1_000', '0x10', '\u0661\u0662\u0663', '\uff11\uff12', '1\u0662', '\u00b2', '\u30001']),
    ('float', ['0.5', '-1e-3', '3', 'inf', 'nan', '-Infinity', '.5', '1.', '2E+10'],
     ['abc', '', '1,5', '1_0', '\u0661.\u0665', '\uff11\uff12', '1e\u0663', '0x1p3', 'e3', '.', '1e']),
    ('bool', ['true', 'False', '1', '0', 'yes', 'NO'], ['maybe', '', '2']),
    ('string', ['', 'anything at all', '{x}'], []),
    # a relative uri is accepted and made absolute (the guide's behaviour): tests/compat/test_parameters.py
    ('uri', ['s3://b/k', 'file:///tmp/x', 'https://h/p', '/abs/path'], ['', '  ']),
])
def test_types_are_validated(tmp_path, ptype, good, bad):
    e = ep('{p}', p=(ptype, None))
    for value in good:
        assert bind(e, {'p': value}, cwd=tmp_path).values['p'] == value
    for value in bad:
        with pytest.raises(ParamError, match="parameter 'p' expects"):
            bind(e, {'p': value}, cwd=tmp_path)


def test_path_resolves_against_callers_cwd(tmp_path):
    (tmp_path / 'data.csv').write_text('x')
    project = tmp_path / 'project'
    project.mkdir()
    (project / 'shipped.csv').write_text('y')
    e = ep('{p}', p=('path', None))
    assert bind(e, {'p': 'data.csv'}, cwd=tmp_path).values['p'] == str(tmp_path / 'data.csv')
    assert bind(e, {'p': f'file://{tmp_path}/data.csv'}, cwd='/').values['p'] == str(tmp_path / 'data.csv')
    with pytest.raises(ParamError, match="no such file or directory 'nope.csv'"):
        bind(e, {'p': 'nope.csv'}, cwd=tmp_path)
    # a default is looked up in the caller's cwd first (MLflow), then in the project
    d = ep('{p}', p=('path', 'shipped.csv'))
    assert bind(d, {}, cwd=tmp_path, project_dir=project).values['p'] == str(project / 'shipped.csv')
    dot = ep('{p}', p=('path', '.'))
    assert bind(dot, {}, cwd=tmp_path, project_dir=project).values['p'] == str(tmp_path)


def test_remote_path_is_downloaded_into_storage_dir(tmp_path):
    src = tmp_path / 'remote'
    src.mkdir()
    (src / 'blob.txt').write_text('payload')
    storage = tmp_path / 'storage'
    storage.mkdir()
    e = ep('{p}', p=('path', None))
    # a local artifact URI with a scheme goes through MLflow's artifact repository layer
    bound = bind(e, {'p': f'file://localhost{src}/blob.txt'}, cwd=tmp_path, storage_dir=str(storage))
    local = Path(bound.values['p'])
    assert local.read_text() == 'payload' and storage in local.parents
    assert bound.logged['p'] == f'file://localhost{src}/blob.txt'


def test_missing_required_are_reported_together(tmp_path):
    e = ep('{a} {b} {c}', a=('string', None), b=('int', None), c=('float', 1.0))
    with pytest.raises(ParamError, match=r"missing value for parameters 'a', 'b'"):
        bind(e, {}, cwd=tmp_path)


def test_defaults_and_extras(tmp_path):
    e = ep('python greeter.py {greeting} {name}', greeting=('string', 'hi'), name=('string', None))
    bound = bind(e, {'name': 'friend', 'excitement': 10}, cwd=tmp_path)
    assert build_command(e, bound) == 'python greeter.py hi friend --excitement 10'
    assert bound.logged == {'greeting': 'hi', 'name': 'friend', 'excitement': '10'}


def test_names_are_case_sensitive(tmp_path):
    e = ep('{alpha}', alpha=('float', 0.1))
    bound = bind(e, {'ALPHA': '2'}, cwd=tmp_path)
    assert bound.values == {'alpha': '0.1'} and bound.extras == {'ALPHA': '2'}


@pytest.mark.parametrize('key', ['--flag', 'x y', '', '-e', 'a;b'])
def test_hostile_extra_keys_are_refused(tmp_path, key):
    with pytest.raises(ParamError, match='extra parameter name'):
        bind(ep('x'), {key: 'v'}, cwd=tmp_path)


HOSTILE = [
    "it's", 'say "hi"', '$(touch pwned)', '`touch pwned`', 'a; touch pwned', 'line1\nline2', 'tab\there',
    'ünïcødé ✓ 日本', '$HOME', '*', '-rf', '\\', "'", '"', '', ' lead and trail ', '{x}', '}{', '!event',
    'x' * 10_000,
]


def test_hostile_values_reach_the_program_byte_exact(tmp_path):
    e = ep(DUMP + ' {a} {b}', a=('string', None), b=('string', None))
    for value in HOSTILE:
        bound = bind(e, {'a': value, 'b': value, 'extra': value}, cwd=tmp_path)
        argv = run_shell(build_command(e, bound), tmp_path)
        assert argv == [value, value, '--extra', value]
    assert not (tmp_path / 'pwned').exists()


@settings(max_examples=60, deadline=None)
@given(value=st.text(alphabet=st.characters(blacklist_characters='\x00', blacklist_categories=('Cs',)),
                     max_size=60))
def test_any_text_is_passed_unchanged(value):
    e = ep(DUMP + ' {a}', a=('string', None))
    bound = bind(e, {'a': value}, cwd=os.getcwd())
    assert run_shell(build_command(e, bound), Path(os.getcwd())) == [value]


def test_nul_bytes_are_refused(tmp_path):
    with pytest.raises(ParamError, match='NUL'):
        bind(ep('{a}', a=('string', None)), {'a': 'a\x00b'}, cwd=tmp_path)


def test_literal_braces_in_commands(tmp_path):
    e = ep("awk '{{print $1}}' {f} | sed 's/}}/x/'", f=('string', None))
    assert build_command(e, bind(e, {'f': 'a b'}, cwd=tmp_path)) == "awk '{print $1}' 'a b' | sed 's/}/x/'"
    # a brace group that is not a name stays literal rather than failing like str.format
    e2 = ep("awk '{print $1}' {f}", f=('string', None))
    assert build_command(e2, BoundParams({'f': 'x'}, {})) == "awk '{print $1}' x"


def test_parse_key_values():
    assert parse_key_values(['a=1', 'eq=1+2=3', 'e=']) == {'a': '1', 'eq': '1+2=3', 'e': ''}
    with pytest.raises(BadArgumentError, match="use -P name=value"):
        parse_key_values(['novalue'])
    with pytest.raises(BadArgumentError, match="repeated -P parameter 'a'"):
        parse_key_values(['a=1', 'a=2'])
    assert parse_key_values(['tty', 'name=c'], '-A', allow_flags=True) == {'tty': True, 'name': 'c'}
