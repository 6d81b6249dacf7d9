"""python_env.yaml / conda.yaml parsing, validation with positions, and the conda -> PyPI mapping."""
from __future__ import annotations

from pathlib import Path

import pytest

from mlproj.envs.envfiles import (
    conda_to_python_env,
    expand_requirements,
    load_conda_env,
    load_python_env,
    validate_conda_env,
    validate_python_env,
)
from mlproj.errors import EnvError

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_python_env_reads_all_fields(tmp_path):
    write(tmp_path, 'requirements.txt', 'six\n')
    p = write(tmp_path, 'python_env.yaml', 'python: "3.11"\nbuild_dependencies:\n  - pip\n'
              'dependencies:\n  - -r requirements.txt\n  - mlproj-tiny-a==1.0\n')
    env = load_python_env(p)
    assert env.python == '3.11'
    assert env.build_dependencies == ('pip',)
    assert env.dependencies == ('-r requirements.txt', 'mlproj-tiny-a==1.0')
    assert env.python_where == f'{p}:1:9'
    assert validate_python_env(p) == []


@pytest.mark.parametrize('text, line, col, words', [
    ('python: 3.10\n', 1, 9, 'must be a string'),
    ('python: "3.11"\ndependencies: six\n', 2, 15, 'must be a list'),
    ('python: "3.11"\ndependncies: [six]\n', 2, 1, "did you mean 'dependencies'"),
    ('python: "3.11"\ndependencies:\n  - [a, b]\n', 3, 5, 'requirement string'),
    ('python: "3.11"\ndependencies:\n  - -r missing.txt\n', 3, 5, "'missing.txt' does not exist"),
    ('python: "3.11"\n  dependencies: [six]\n', 2, 3, 'YAML syntax error'),
    ('python: "3.11"\npython: "3.12"\n', 2, 1, 'duplicate key'),
    ('- python\n', 1, 1, 'must be a mapping'),
])
def test_python_env_findings_have_positions(tmp_path, text, line, col, words):
    p = write(tmp_path, 'python_env.yaml', text)
    findings = validate_python_env(p)
    assert findings, text
    f = findings[0]
    assert (f.rule, f.line, f.col, f.path) == ('MLP017', line, col, str(p))
    assert words in f.message
    with pytest.raises(EnvError) as e:
        load_python_env(p)
    assert str(e.value).endswith(f'({p}:{line}:{col})')
    assert 'MLP017' in str(e.value) and '\n' not in str(e.value)


def test_python_env_float_hint(tmp_path):
    p = write(tmp_path, 'python_env.yaml', 'python: 3.10\n')
    assert 'YAML reads 3.10 as the number 3.1' in validate_python_env(p)[0].message


def test_requirements_resolved_against_project_dir(tmp_path):
    (tmp_path / 'envs').mkdir()
    write(tmp_path, 'requirements.txt', 'six\n')
    p = write(tmp_path, 'envs/python_env.yaml', 'dependencies: [-r requirements.txt]\n')
    assert validate_python_env(p, project_dir=tmp_path) == []
    assert validate_python_env(p)[0].message.startswith("requirements file 'requirements.txt' does not exist")


def test_missing_file_is_mlp011(tmp_path):
    findings = validate_python_env(tmp_path / 'nope.yaml')
    assert [f.rule for f in findings] == ['MLP011']
    assert [f.rule for f in validate_conda_env(tmp_path / 'nope.yaml')] == ['MLP011']


@pytest.mark.parametrize('text, line, col, words', [
    ('dependencies:\n  - python=3.11\n  - {conda: [x]}\n', 3, 5, 'invalid conda dependency'),
    ('dependencies:\n  - pip:\n      - [x]\n', 3, 9, 'pip entry 1'),
    ('dependencies: numpy\n', 1, 15, 'must be a list'),
    ('channels: conda-forge\n', 1, 11, 'channels must be a list'),
    ('dependencies: [\n', 2, 1, 'YAML syntax error'),
])
def test_conda_findings_have_positions(tmp_path, text, line, col, words):
    p = write(tmp_path, 'conda.yaml', text)
    f = validate_conda_env(p)[0]
    assert (f.rule, f.line, f.col) == ('MLP017', line, col)
    assert words in f.message
    with pytest.raises(EnvError, match=f':{line}:{col}\\)$'):
        load_conda_env(p)


def test_tutorial_conda_yaml_maps_onto_pypi():
    env = load_conda_env(REPO / 'examples' / 'tutorial' / 'conda.yaml')
    mapped = conda_to_python_env(env)
    assert mapped.python == '3.11'
    assert 'pip' in mapped.build_dependencies
    names = [d.split('>')[0].split('=')[0].split('<')[0] for d in mapped.dependencies]
    assert 'pandas' in names and 'scikit-learn' in names
    assert any(d.startswith('mlflow') for d in mapped.dependencies)


@pytest.mark.parametrize('spec, python, dep', [
    ('python=3.10', '3.10', None),
    ('python==3.10.13', '3.10.13', None),
    ('python>=3.10', '>=3.10', None),
    ('python 3.11.*', '3.11', None),
    ('numpy=1.26', None, 'numpy==1.26.*'),
    ('numpy=1.26.4=py311h64a7726_0', None, 'numpy==1.26.4'),
    ('numpy==1.26.4', None, 'numpy==1.26.4'),
    ('numpy>=1.2,<2', None, 'numpy>=1.2,<2'),
    ('conda-forge::scikit-learn>=1.3', None, 'scikit-learn>=1.3'),
    ('pytorch=2.1', None, 'torch==2.1.*'),
    ('py-xgboost', None, 'xgboost'),
    ('setuptools=68', None, None),
])
def test_conda_spec_mapping(tmp_path, spec, python, dep):
    p = write(tmp_path, 'conda.yaml', f'dependencies:\n  - "{spec}"\n')
    mapped = conda_to_python_env(load_conda_env(p))
    assert mapped.python == python
    if dep is not None:
        assert mapped.dependencies == (dep,)
    if spec.startswith('setuptools'):
        assert mapped.build_dependencies == ('setuptools==68.*',)


def test_pip_section_is_kept_verbatim(tmp_path):
    p = write(tmp_path, 'conda.yaml', 'dependencies:\n  - python=3.11\n  - pip\n  - pip:\n'
              '      - mlproj-tiny-a==1.0\n      - "--index-url http://127.0.0.1:9/simple"\n')
    mapped = conda_to_python_env(load_conda_env(p))
    assert mapped.dependencies == ('mlproj-tiny-a==1.0', '--index-url http://127.0.0.1:9/simple')
    assert mapped.build_dependencies == ('pip',)
    assert mapped.python_where == f'{p}:2:5'


def test_unmappable_packages_are_all_listed(tmp_path):
    p = write(tmp_path, 'conda.yaml', 'dependencies:\n  - python=3.11\n  - cudatoolkit=11.8\n  - numpy\n'
              '  - r-base\n  - libgcc-ng\n')
    with pytest.raises(EnvError) as e:
        conda_to_python_env(load_conda_env(p))
    msg = str(e.value)
    assert 'no PyPI equivalent' in msg
    for item in (f'cudatoolkit=11.8 ({p}:3:5)', f'r-base ({p}:5:5)', f'libgcc-ng ({p}:6:5)'):
        assert item in msg
    assert 'numpy' not in msg.split('equivalent:')[1].split(';')[0]


def test_expand_requirements_inlines_r_files_as_pip_reads_them(tmp_path):
    (tmp_path / '.git').mkdir()
    write(tmp_path, 'requirements.txt', '# pinned\nsix==1.17.0  # trailing comment\n\n-r sub/more.txt\n'
          '--requirement=requirements.txt\nurl#egg\\\n=x\n-c constraints.txt\n')
    (tmp_path / 'sub').mkdir()
    write(tmp_path / 'sub', 'more.txt', 'idna>=3\n-rdeeper.txt\n')
    write(tmp_path / 'sub', 'deeper.txt', 'attrs\n')
    lines = expand_requirements(['pip', '-r requirements.txt', './pkg'], tmp_path)
    # nested files resolve next to the file naming them; each file is read once; -c and paths are kept
    assert lines == ['pip', 'six==1.17.0', 'idna>=3', 'attrs', 'url#egg=x', '-c constraints.txt', './pkg']


def test_expand_requirements_refuses_what_the_reader_refuses(tmp_path):
    (tmp_path / 'repo' / '.git').mkdir(parents=True)
    write(tmp_path, 'outside.txt', 'secret-package\n')
    (tmp_path / 'repo' / 'link.txt').symlink_to(tmp_path / 'outside.txt')
    with pytest.raises(EnvError) as info:
        expand_requirements(['-r link.txt'], tmp_path / 'repo')
    assert "'link.txt'" in info.value.message and 'secret-package' not in str(info.value)
    with pytest.raises(EnvError, match="requirements file 'nope.txt' does not exist"):
        expand_requirements(['-r nope.txt'], tmp_path / 'repo')
