"""mlproj.settings: the table, environment parsing, config files and their precedence
(CLI > env > project file > user file > built-in), bad files as one line and exit 64."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from mlproj import settings
from mlproj.settings import ConfigFileError, resolve

REPO = Path(__file__).resolve().parents[2]


def test_readme_table_matches_the_settings_table():
    text = (REPO / 'README.md').read_text(encoding='utf-8')
    m = re.search(r'<!-- settings-table:start -->\n(.*?)\n<!-- settings-table:end -->', text, re.S)
    assert m, 'README.md has no settings table'
    assert m.group(1) == settings.readme_table(), 'regenerate with: python -c "from mlproj.settings import ' \
                                                  'readme_table; print(readme_table())"'


def test_every_mlproj_variable_read_outside_the_action_is_in_the_table():
    names: set[str] = set()
    for path in (REPO / 'mlproj').rglob('*.py'):
        names |= set(re.findall(r"""['"](MLPROJ_[A-Z0-9_]+)['"]""", path.read_text(encoding='utf-8')))
    internal = {'MLPROJ_SECRETS', 'MLPROJ_PYTHON',  # a constant's name; the hook script's interpreter
                'MLPROJ_DATABRICKS_TOKEN'}  # only listed as a secret to withhold
    missing = names - set(settings.BY_ENV) - internal
    assert not missing


def _direct_reads(source: str) -> list[str]:
    """MLPROJ_* names read straight from the environment: environ.get('X'), getenv('X'), environ['X']."""
    import ast

    out = []
    for node in ast.walk(ast.parse(source)):
        arg = None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ('get', 'getenv') \
                and node.args:
            arg = node.args[0]
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
            arg = node.slice
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value.startswith('MLPROJ_'):
            out.append(arg.value)
    return out


def test_mlproj_variables_are_read_through_the_settings_module():
    """One place parses them (types, defaults): anywhere else a variable would be read its own way.
    The Databricks launcher is a standalone script run where mlproj may not be installed."""
    standalone = {'backends/_databricks_launcher.py', 'settings.py'}
    found = {str(p.relative_to(REPO / 'mlproj')): _direct_reads(p.read_text(encoding='utf-8'))
             for p in (REPO / 'mlproj').rglob('*.py')}
    assert {k: v for k, v in found.items() if v and k not in standalone} == {}
    assert _direct_reads("import os\nos.environ.get('MLPROJ_X')\nos.environ['MLPROJ_Y']\n") == ['MLPROJ_X', 'MLPROJ_Y']


def test_module_defaults_are_the_table_defaults():
    from mlproj import safefile, tracking
    from mlproj.backends import local
    from mlproj.ci import github
    from mlproj.source import archive, cache

    assert settings.BY_ENV['MLPROJ_KILL_GRACE'].default == local.DEFAULT_GRACE
    assert settings.BY_ENV['MLPROJ_LOCK_TIMEOUT'].default == cache.DEFAULT_LOCK_TIMEOUT
    assert settings.BY_ENV['MLPROJ_ZIP_MAX_BYTES'].default == archive.DEFAULT_MAX_BYTES
    assert settings.BY_ENV['MLPROJ_MAX_FILE_BYTES'].default == safefile.DEFAULT_MAX_BYTES
    assert settings.BY_ENV['MLPROJ_MAX_LOCK_BYTES'].default == safefile.DEFAULT_MAX_LOCK_BYTES
    assert settings.BY_ENV['MLPROJ_TRACKING_RETRY_SECONDS'].default == tracking.DEFAULT_TRACKING_RETRY_SECONDS
    assert settings.BY_ENV['MLPROJ_GITHUB_WRITE_INTERVAL'].default == github.DEFAULT_WRITE_INTERVAL


def test_env_managers_match_the_cli_choices():
    from mlproj.request import ENV_MANAGERS

    assert settings.ENV_MANAGERS == ENV_MANAGERS


@pytest.mark.parametrize('name, raw, expected', [
    ('MLPROJ_REUSE', 'yes', True), ('MLPROJ_REUSE', 'off', False), ('MLPROJ_REUSE', 'maybe', False),
    ('MLPROJ_REUSE', '', False), ('MLPROJ_STALE_CHECK', '0', False), ('MLPROJ_STALE_CHECK', 'junk', True),
    ('MLPROJ_KILL_GRACE', '2.5', 2.5), ('MLPROJ_KILL_GRACE', 'soon', 10.0), ('MLPROJ_KILL_GRACE', 'nan', 10.0),
    ('MLPROJ_MAX_FILE_BYTES', '12', 12), ('MLPROJ_MAX_FILE_BYTES', '١٢', 1 << 20),  # non-ASCII digits
    ('MLPROJ_MAX_FILE_BYTES', '1e3', 1 << 20),
])
def test_env_value(name, raw, expected):
    assert settings.env_value(name, {name: raw}) == expected


# -- precedence, one layer at a time ----------------------------------------------------------


@pytest.fixture
def layers(tmp_path, monkeypatch):
    """A project dir with mlproj.toml + pyproject.toml and a user file; returns a writer."""
    project = tmp_path / 'project'
    project.mkdir()
    xdg = tmp_path / 'xdg'
    (xdg / 'mlproj').mkdir(parents=True)
    monkeypatch.setenv('XDG_CONFIG_HOME', str(xdg))
    monkeypatch.delenv('MLPROJ_REUSE', raising=False)
    monkeypatch.delenv('MLPROJ_MAX_PARALLEL', raising=False)

    def write(which: str, text: str) -> Path:
        path = {'user': xdg / 'mlproj' / 'config.toml', 'mlproj': project / 'mlproj.toml',
                'pyproject': project / 'pyproject.toml'}[which]
        path.write_text(text)
        return path

    write.project = project
    return write


def test_builtin_default(layers):
    r = resolve(layers.project)['sweep.max-parallel']
    assert (r.value, r.source, r.where) == (1, 'default', None)


def test_user_file_over_default(layers):
    user = layers('user', '[sweep]\nmax-parallel = 3\n')
    r = resolve(layers.project)['sweep.max-parallel']
    assert (r.value, r.source, r.where) == (3, 'user', f'{user}:2')


def test_pyproject_over_user_file(layers):
    layers('user', '[sweep]\nmax-parallel = 3\n')
    py = layers('pyproject', '[project]\nname = "x"\n\n[tool.mlproj.sweep]\nmax-parallel = 4\n')
    r = resolve(layers.project)['sweep.max-parallel']
    assert (r.value, r.source, r.where) == (4, 'project', f'{py}:5')


def test_mlproj_toml_over_pyproject_key_by_key(layers):
    layers('pyproject', '[tool.mlproj.sweep]\nmax-parallel = 4\n[tool.mlproj.run]\nreuse = true\n')
    mt = layers('mlproj', '[sweep]\nmax-parallel = 5\n')
    r = resolve(layers.project)
    assert (r['sweep.max-parallel'].value, r['sweep.max-parallel'].where) == (5, f'{mt}:2')
    assert (r['run.reuse'].value, r['run.reuse'].source) == (True, 'project')  # from pyproject.toml


def test_env_over_project_file(layers, monkeypatch):
    layers('mlproj', '[sweep]\nmax-parallel = 5\n')
    monkeypatch.setenv('MLPROJ_MAX_PARALLEL', '6')
    r = resolve(layers.project)['sweep.max-parallel']
    assert (r.value, r.source, r.where) == (6, 'env', 'MLPROJ_MAX_PARALLEL')


def test_cli_over_env(layers, monkeypatch):
    layers('mlproj', '[sweep]\nmax-parallel = 5\n')
    monkeypatch.setenv('MLPROJ_MAX_PARALLEL', '6')
    r = resolve(layers.project, {'sweep.max-parallel': 7})['sweep.max-parallel']
    assert (r.value, r.source) == (7, 'cli')


def test_no_project_dir_no_project_file(layers):
    layers('mlproj', '[sweep]\nmax-parallel = 5\n')
    assert resolve(None)['sweep.max-parallel'].source == 'default'


def test_local_project_dir_only_for_directories(tmp_path):
    assert settings.local_project_dir(str(tmp_path)) == tmp_path
    assert settings.local_project_dir('https://github.com/o/r') is None
    assert settings.local_project_dir('git@github.com:o/r.git') is None
    assert settings.local_project_dir(f'{tmp_path}#sub') is None
    assert settings.local_project_dir(str(tmp_path / 'missing')) is None


def test_run_options_apply_config(layers, monkeypatch):
    layers('user', '[run]\nbackend = "ray"\ntracking-uri = "http://t:5000"\nexperiment-name = "u"\n'
                   '[run.backend-config.ray]\naddress = "ray://h:10001"\n')
    layers('mlproj', '[run]\nenv-manager = "local"\nexperiment-name = "p"\n')
    monkeypatch.delenv('MLFLOW_TRACKING_URI', raising=False)
    o = settings.run_options(str(layers.project), env_manager=None, backend=None, backend_config=None,
                             experiment_name=None, experiment_id=None, tracking_uri=None, reuse=None)
    assert o.backend == 'ray' and o.backend_config == {'address': 'ray://h:10001'}
    assert (o.env_manager, o.experiment_name, o.tracking_uri) == ('local', 'p', 'http://t:5000')
    # CLI and MLflow's variables win; -b another backend gets no table
    monkeypatch.setenv('MLFLOW_TRACKING_URI', 'http://env:5000')
    monkeypatch.setenv('MLFLOW_EXPERIMENT_ID', '3')
    o = settings.run_options(str(layers.project), env_manager='uv', backend='local', backend_config=None,
                             experiment_name=None, experiment_id=None, tracking_uri=None, reuse=False)
    assert (o.env_manager, o.backend, o.backend_config) == ('uv', 'local', None)
    assert (o.experiment_name, o.tracking_uri, o.reuse) == (None, None, False)


# -- bad files ---------------------------------------------------------------------------------


@pytest.mark.parametrize('which, text, needle, line', [
    ('user', '[run]\nreuse = \n', 'invalid TOML', 2),
    ('user', '[run]\nreuse = "yes"\n', 'run.reuse must be true or false', 2),
    ('user', '[run]\nenv-manager = "pip"\n', 'one of local, uv', 2),
    ('user', '\n[sweep]\nmax-paralel = 2\n', 'unknown setting sweep.max-paralel', 3),
    ('user', '[sweep]\nmax-parallel = 0\n', 'integer >= 1', 2),
    ('mlproj', '[run]\ntracking-uri = "http://evil"\n', 'cannot be set in a project file', 2),
    ('mlproj', '[run.backend-config.databricks]\nhost = "h"\n', 'run.backend-config cannot be set', 1),
    ('pyproject', '[tool.mlproj.cache]\ndir = "/tmp/x"\n', 'tool.mlproj.cache.dir cannot be set', 2),
    ('mlproj', '[lint]\nselect = ["MLP0"]\n', '[tool.mlproj.lint]', 1),
])
def test_bad_files(layers, which, text, needle, line):
    path = layers(which, text)
    with pytest.raises(ConfigFileError) as e:
        resolve(layers.project)
    assert needle in str(e.value)
    assert f'{path}:{line}' in str(e.value)
    assert e.value.exit_code == 64


def test_pyproject_lint_table_is_left_to_lint(layers):
    layers('pyproject', '[tool.mlproj.lint]\nselect = ["MLP0"]\n[tool.black]\nline-length = 1\n')
    assert resolve(layers.project)['run.reuse'].source == 'default'
