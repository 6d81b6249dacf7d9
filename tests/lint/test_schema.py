"""The JSON Schema: draft-07 as SchemaStore wants it, shipped in the wheel, agrees with the linter on structure."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import jsonschema
import pytest
import yaml

from mlproj.lint import lint_paths, load_config
from tests.helpers import REPO
from tests.helpers.git import git
from tests.helpers.lint import run_cli

SCHEMA_PATH = REPO / 'mlproj' / 'schemas' / 'mlproject.schema.json'
# Rules a JSON Schema can express: the shape of the document. The others need the file system
# (env files, scripts), the command text (placeholders) or the YAML source (duplicate keys).
# MLP026/MLP027: the schema refuses '..' and absolute env paths (it cannot know the repository root)
STRUCTURAL = {'MLP003', 'MLP004', 'MLP030', 'MLP005', 'MLP006', 'MLP007', 'MLP008', 'MLP009', 'MLP010', 'MLP019',
              'MLP026', 'MLP027'}


def validator():
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def every_mlproject_in_the_repo() -> list[Path]:
    found = []
    for top in ('examples', 'tests'):
        for root, dirs, names in os.walk(REPO / top):
            dirs[:] = [d for d in dirs if d not in ('__pycache__', '.git')]
            found += [Path(root) / n for n in names if n.lower() == 'mlproject']
    return sorted(found)


def test_schema_is_valid_draft_07_and_documents_every_field():
    schema = json.loads(SCHEMA_PATH.read_text())
    assert schema['$schema'] == 'http://json-schema.org/draft-07/schema#'
    assert schema['$id'] == 'https://json.schemastore.org/mlproject.json'
    validator()

    def walk(node, where):
        if isinstance(node, dict):
            for key, sub in node.get('properties', {}).items():
                assert 'description' in sub or '$ref' in sub, f'{where}.{key} has no description'
            for key, sub in node.items():
                if key not in ('allOf', 'not', 'if', 'then'):  # constraints, not fields
                    walk(sub, f'{where}.{key}')
        elif isinstance(node, list):
            for i, sub in enumerate(node):
                walk(sub, f'{where}[{i}]')

    walk(schema, '$')
    for name in ('project', 'entryPoint', 'parameter', 'parameterSpec', 'dockerEnv', 'databricksSparkJob',
                 'parameterType'):
        assert schema['definitions'][name]['description']


def test_examples_are_valid():
    examples = [p for p in every_mlproject_in_the_repo() if 'examples' in p.relative_to(REPO).parts[:1]]
    assert examples, 'the repository has example projects'
    v = validator()
    for path in examples:
        errors = [e.message for e in v.iter_errors(yaml.safe_load(path.read_text()))]
        assert errors == [], path


@pytest.mark.parametrize('path', every_mlproject_in_the_repo(), ids=lambda p: str(p.relative_to(REPO)))
def test_schema_and_linter_agree(path):
    result = lint_paths([str(path)], load_config(None))
    rules = {i.rule for i in result.issues if i.finding.path == str(path)}
    if 'MLP001' in rules:
        return  # not YAML: neither can say more
    data = yaml.safe_load(path.read_text(encoding='utf-8-sig'))
    schema_ok = validator().is_valid(data)
    assert schema_ok == (not rules & STRUCTURAL), (schema_ok, sorted(rules))


CASES = [
    ('name: a\n', True),
    ('', True),
    ('entry_points: {main: {command: "x"}}\n', True),
    ('entry_points: [main]\n', False),
    ('entry_points: {main: {command: [a]}}\n', False),
    ('entry_points: {main: {parameters: {a: float}, command: "{a}"}}\n', True),
    ('entry_points: {main: {parameters: {a: floot}, command: "{a}"}}\n', False),
    ('entry_points: {main: {parameters: {a: {type: int, default: "12"}}, command: "{a}"}}\n', True),
    ('entry_points: {main: {parameters: {a: {type: int, default: 1.5}}, command: "{a}"}}\n', False),
    ('entry_points: {main: {parameters: {a: {type: float, default: 1e-5}}, command: "{a}"}}\n', True),
    ('entry_points: {main: {parameters: {a: {type: float, default: "x1"}}, command: "{a}"}}\n', False),
    ('entry_points: {main: {parameters: {a: {type: bool, default: "Yes"}}, command: "{a}"}}\n', True),
    ('entry_points: {main: {parameters: {a: {type: bool, default: "maybe"}}, command: "{a}"}}\n', False),
    ('entry_points: {main: {parameters: {a: {type: path, default: [1]}}, command: "{a}"}}\n', False),
    ('entry_points: {main: {parameters: {a: {tpye: int}}, command: "{a}"}}\n', False),
    ('docker_env: {image: x}\nname: n\n', True),
    ('docker_env: {volumes: [a]}\n', False),
    ('docker_env: {image: x, volumes: a}\n', False),
    ('docker_env: {image: x, environment: [A, [B, 1], [C, d]]}\n', True),
    ('docker_env: {image: x, environment: [[B, 1, 2]]}\n', False),
    ('docker_env: {image: x}\nconda_env: c.yaml\n', False),
    ('python_env: p.yaml\nconda_env: c.yaml\n', False),
    ('python_env: ../p.yaml\n', False),
    ('python_env: /abs/p.yaml\n', False),
    ('entry_point: {main: {command: x}}\n', False),
    ('owner: me\nentry_points: {main: {command: x}}\n', False),
    ('databricks_spark_job: {python_file: a.py, parameters: [x]}\n', True),
    ('databricks_spark_job: {python_file: [a.py]}\n', False),
    ('entry_points: {"": {command: x}}\n', False),
    ('entry_points: {main: {parameters: {"": int}, command: x}}\n', False),
    # an entry point's own environment (mlproj only): the same shapes and rules as the top level
    ('entry_points: {main: {python_env: p.yaml, command: x}}\n', True),
    ('entry_points: {main: {conda_env: c.yaml, command: x}, b: {docker_env: {image: x}, command: y}}\nname: n\n',
     True),
    ('entry_points: {main: {python_env: p.yaml, conda_env: c.yaml, command: x}}\n', False),
    ('entry_points: {main: {python_env: ../p.yaml, command: x}}\n', False),
    ('entry_points: {main: {python_env: [p.yaml], command: x}}\n', False),
    ('entry_points: {main: {docker_env: {volumes: [a]}, command: x}}\n', False),
    ('entry_points: {main: {docker_env: {image: x, volume: [a]}, command: x}}\n', False),
]


@pytest.mark.parametrize('text,valid', CASES)
def test_structural_cases(tmp_path, text, valid):
    (tmp_path / 'MLproject').write_text(text)
    for name in ('c.yaml', 'p.yaml'):
        (tmp_path / name).write_text('dependencies: []\n')
    assert validator().is_valid(yaml.safe_load(text)) is valid
    rules = {i.rule for i in lint_paths([str(tmp_path)], load_config(None)).issues}
    assert (not rules & STRUCTURAL) is valid, sorted(rules)


def test_schema_command_prints_the_packaged_file(tmp_path):
    r = run_cli(['schema'], tmp_path)
    assert r.code == 0 and json.loads(r.out) == json.loads(SCHEMA_PATH.read_text())
    assert run_cli(['schema', '-o', 'out.json'], tmp_path).code == 0
    assert json.loads((tmp_path / 'out.json').read_text()) == json.loads(SCHEMA_PATH.read_text())


def test_check_jsonschema_uses_the_schema(tmp_path):
    exe = Path(sys.executable).with_name('check-jsonschema')
    assert exe.exists(), 'check-jsonschema (the [dev] extra) is missing'
    (tmp_path / 'MLproject').write_text('entry_points: {main: {command: x, params: {}}}\n')
    proc = subprocess.run([str(exe), '--schemafile', str(SCHEMA_PATH), '--default-filetype', 'yaml',
                           str(tmp_path / 'MLproject')], capture_output=True, text=True)
    assert proc.returncode == 1 and 'params' in proc.stdout


@pytest.mark.slow  # builds a wheel
def test_wheel_contains_the_schema(tmp_path):
    uv = shutil.which('uv') or str(Path(sys.executable).with_name('uv'))
    src = tmp_path / 'src'
    # build from the committed-or-not working files that matter, not the whole shared tree
    shutil.copytree(REPO / 'mlproj', src / 'mlproj', ignore=shutil.ignore_patterns('__pycache__'))
    for name in ('pyproject.toml', 'README.md', 'LICENSE'):
        shutil.copy(REPO / name, src / name)
    env = dict(os.environ, UV_CACHE_DIR=str(tmp_path / 'uv-cache'))
    proc = subprocess.run([uv, 'build', '--wheel', '--out-dir', str(tmp_path / 'dist'), str(src)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = (tmp_path / 'dist').glob('*.whl')
    with zipfile.ZipFile(wheel) as z:
        assert json.loads(z.read('mlproj/schemas/mlproject.schema.json')) == json.loads(SCHEMA_PATH.read_text())


def _bool_with_float_default(data) -> bool:
    """JSON has one number type: the schema cannot tell 1.0 from 1, the linter (rightly) rejects 1.0 for bool."""
    eps = data.get('entry_points') if isinstance(data, dict) else None
    for ep in (eps.values() if isinstance(eps, dict) else ()):
        params = ep.get('parameters') if isinstance(ep, dict) else None
        for spec in (params.values() if isinstance(params, dict) else ()):
            if isinstance(spec, dict) and spec.get('type') in ('bool', 'boolean') and isinstance(
                    spec.get('default'), float):
                return True
    return False


def test_schema_and_linter_agree_on_generated_structures(tmp_path):
    from hypothesis import HealthCheck, assume, given, settings

    from mlproj.lint.engine import lint_blobs
    from tests.lint.test_property import mlproject

    (tmp_path / 'conda.yaml').write_text('dependencies: []\n')
    (tmp_path / 'python_env.yaml').write_text('python: "3.11"\n')
    v = validator()

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(data=mlproject)
    def check(data):
        text = yaml.safe_dump(data)
        loaded = yaml.safe_load(text)
        assume(not _bool_with_float_default(loaded))
        result = lint_blobs([('MLproject', tmp_path / 'MLproject', text.encode())], load_config(None))
        rules = {i.rule for i in result.issues}
        assume('MLP001' not in rules)
        assert v.is_valid(loaded) == (not rules & STRUCTURAL), (text, sorted(rules))

    check()


# --------------------------------------------------------------------------------------------
# SchemaStore readiness and one source of structure

AJV_DIR = Path(os.environ.get('MLPROJ_TEST_AJV_DIR', '/tmp/mlproj-test-ajv'))
# SchemaStore's gate for a new schema is Ajv (v8) in strict mode, draft-07 class, with ajv-formats
# (its cli.js `ajvFactory`: `strict: true`). This script does the same compile; .ci/setup installs
# ajv and ajv-formats from the npm registry into AJV_DIR.
AJV_STRICT = '''
const Ajv = require('ajv'); const addFormats = require('ajv-formats');
const schema = JSON.parse(require('fs').readFileSync(process.argv[1], 'utf8'));
const ajv = new Ajv({strict: true}); addFormats(ajv);
try { ajv.compile(schema); } catch (e) { console.log(e.message); process.exit(1); }
'''


def _ajv_strict(path: Path) -> subprocess.CompletedProcess:
    node = shutil.which('node')
    assert node and (AJV_DIR / 'node_modules' / 'ajv').is_dir(), \
        f'node and ajv are needed (bash .ci/setup installs ajv into {AJV_DIR})'
    return subprocess.run([node, '-e', AJV_STRICT, str(path)], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, NODE_PATH=str(AJV_DIR / 'node_modules')))


def test_schema_compiles_in_ajv_strict_mode_as_schemastore_checks(tmp_path):
    proc = _ajv_strict(SCHEMA_PATH)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # the check is real: a `type` array (a union type) is what strict mode rejects
    schema = json.loads(SCHEMA_PATH.read_text())
    schema['definitions']['parameterType']['type'] = ['string', 'number']
    broken = tmp_path / 'broken.json'
    broken.write_text(json.dumps(schema))
    proc = _ajv_strict(broken)
    assert proc.returncode == 1 and 'union type' in proc.stdout, proc.stdout + proc.stderr


def test_schema_has_no_type_arrays_and_only_local_definition_refs():
    """The rest of SchemaStore's contract for a catalog entry: draft-07, an $id, #/definitions refs."""
    schema = json.loads(SCHEMA_PATH.read_text())
    assert schema['$id'].startswith('https://') and 'definitions' in schema and '$defs' not in schema

    def walk(node):
        if isinstance(node, dict):
            assert not isinstance(node.get('type'), list), node
            if '$ref' in node:
                assert node['$ref'].startswith('#/definitions/') and node['$ref'][14:] in schema['definitions']
            for sub in node.values():
                walk(sub)
        elif isinstance(node, list):
            for sub in node:
                walk(sub)

    walk(schema)


def _keys(node) -> tuple:
    return tuple(sorted(node['properties']))


def _object_branch(defn) -> dict:
    return next(b for b in defn.get('anyOf', [defn]) if b.get('type') == 'object')


def test_schema_keys_and_types_are_the_loaders():
    """The key sets and type names come from one place, mlproj.spec, which lint and run both use."""
    from mlproj import spec

    d = json.loads(SCHEMA_PATH.read_text())['definitions']
    assert _keys(d['project']) == tuple(sorted(spec.TOP_LEVEL_KEYS))
    assert _keys(_object_branch(d['entryPoint'])) == tuple(sorted(spec.ENTRY_POINT_KEYS))
    assert _keys(d['parameterSpec']) == tuple(sorted(spec.PARAM_KEYS))
    assert _keys(_object_branch(d['dockerEnv'])) == tuple(sorted(spec.DOCKER_KEYS))
    assert _keys(_object_branch(d['databricksSparkJob'])) == tuple(sorted(spec.DATABRICKS_KEYS))
    assert set(d['parameterType']['enum']) == set(spec.PARAM_TYPES) | set(spec.PARAM_TYPE_ALIASES)


def test_every_structural_rule_has_a_case_both_reject(tmp_path):
    """STRUCTURAL is complete: each of its rules is provoked by a case that the schema rejects too."""

    git('init', '-q', str(tmp_path))  # MLP026 needs a repository root
    covered = set()
    for i, (text, valid) in enumerate(CASES):
        if valid:
            continue
        d = tmp_path / str(i)
        d.mkdir()
        (d / 'MLproject').write_text(text)
        for name in ('c.yaml', 'p.yaml'):
            (d / name).write_text('dependencies: []\n')
        covered |= {i.rule for i in lint_paths([str(d)], load_config(None)).issues} & STRUCTURAL
    assert covered == STRUCTURAL
