"""`mlproj lint` as a user runs it: exit codes, selection, config, stdin, --list-rules."""
from __future__ import annotations

import json
import shutil

import pytest

from mlproj.rules import RULES
from tests.helpers.git import git
from tests.helpers.lint import FIXTURES, run_cli

GOOD = 'name: ok\nentry_points:\n  main:\n    parameters: {a: {type: int, default: 1}}\n    command: "echo {a}"\n'
WARN_ONLY = 'name: ok\nentry_points:\n  main:\n    parameters: {a: {type: int, default: 1}}\n    command: "echo"\n'
ERROR = 'entry_points:\n  main:\n    command: "echo {nope}"\n'


def project(tmp_path, text, name='MLproject', sub='p'):
    d = tmp_path / sub
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_text(text)
    return d


def test_clean_exits_0_with_a_summary_on_stderr(tmp_path):
    project(tmp_path, GOOD)
    r = run_cli(['lint'], tmp_path)
    assert (r.code, r.out) == (0, '')
    assert r.err == 'mlproj lint: no problems (1 file checked)\n'


def test_error_exits_1_with_path_line_col_id(tmp_path):
    project(tmp_path, ERROR)
    r = run_cli(['lint', 'p'], tmp_path)
    assert r.code == 1
    assert r.out == ("p/MLproject:3:20: MLP012 error: command of entry point 'main' uses {nope} but declares no "
                     "parameter 'nope'\n")
    assert 'Traceback' not in r.err


def test_warnings_exit_0_unless_strict(tmp_path):
    project(tmp_path, WARN_ONLY)
    r = run_cli(['lint'], tmp_path)
    assert r.code == 0 and 'MLP016 warning:' in r.out
    assert run_cli(['lint', '--strict'], tmp_path).code == 1


def test_usage_errors_exit_2(tmp_path):
    assert run_cli(['lint', 'missing-dir'], tmp_path).code == 2
    r = run_cli(['lint', '--select', 'MLP999'], tmp_path)
    assert r.code == 2 and "unknown rule 'MLP999'" in r.err
    assert run_cli(['lint', '--format', 'xml'], tmp_path).code == 2


def test_select_and_ignore_by_id_name_and_prefix(tmp_path):
    project(tmp_path, ERROR)
    project(tmp_path, WARN_ONLY, sub='q')
    assert run_cli(['lint', '--ignore', 'MLP012'], tmp_path).code == 0
    r = run_cli(['lint', '--select', 'unused-param'], tmp_path)
    assert r.code == 0 and r.out.count('MLP016') == 1 and 'MLP012' not in r.out
    r = run_cli(['lint', '--select', 'MLP01', '--ignore', 'unknown-placeholder'], tmp_path)
    assert 'MLP016' in r.out and 'MLP012' not in r.out


def test_directories_are_walked_and_vcs_dirs_skipped(tmp_path):
    project(tmp_path, ERROR, sub='a/b/c')
    project(tmp_path, ERROR, sub='.git/x')
    project(tmp_path, ERROR, sub='node_modules/x')
    r = run_cli(['lint', '.'], tmp_path)
    assert r.out.count('MLP012') == 1 and r.out.startswith('a/b/c/MLproject:3:20:')


def test_pyproject_config(tmp_path):
    project(tmp_path, WARN_ONLY)
    project(tmp_path, ERROR, sub='vendor/x')
    (tmp_path / 'pyproject.toml').write_text(
        '[project]\nname = "x"\n\n[tool.mlproj.lint]\nstrict = true\nexclude = ["vendor"]\n'
        'severity = { unused-param = "error" }\n')
    r = run_cli(['lint'], tmp_path / 'p')  # found by walking up from the current directory
    assert r.code == 1 and 'MLP016 error:' in r.out
    r = run_cli(['lint', '.'], tmp_path)
    assert 'vendor' not in r.out
    assert run_cli(['lint', '--no-config'], tmp_path / 'p').code == 0
    (tmp_path / 'pyproject.toml').write_text('[tool.mlproj.lint]\nselcet = ["MLP001"]\n')
    r = run_cli(['lint'], tmp_path)
    assert r.code == 2 and "unknown key 'selcet'" in r.err


def test_ignore_in_config_and_select_on_the_command_line(tmp_path):
    project(tmp_path, ERROR)
    (tmp_path / 'pyproject.toml').write_text('[tool.mlproj.lint]\nignore = ["MLP012"]\n')
    assert run_cli(['lint'], tmp_path).code == 0
    cfg = tmp_path / 'other.toml'
    cfg.write_text('[tool.mlproj.lint]\nselect = ["MLP012"]\n')
    assert run_cli(['lint', '--config', str(cfg)], tmp_path).code == 1


def test_suppression_comments(tmp_path):
    text = ('name: ok\nentry_points:\n  main:\n    parameters:\n'
            '      a: {type: int, default: 1}  # mlproj: disable=MLP016\n'
            '      # mlproj: disable=unused-param\n      b: {type: int, default: 1}\n'
            '      c: {type: int, default: 1}\n    command: "echo"\n')
    project(tmp_path, text)
    r = run_cli(['lint', '--strict'], tmp_path)
    assert r.code == 1 and r.out.count('MLP016') == 1 and "'c'" in r.out
    project(tmp_path, text + '# mlproj: disable-file=MLP016\n')
    assert run_cli(['lint', '--strict'], tmp_path).code == 0


def test_errors_that_stop_run_cannot_be_suppressed(tmp_path):
    project(tmp_path, 'entry_points:\n  main:\n    command: "echo {nope}"  # mlproj: disable=MLP012\n')
    r = run_cli(['lint'], tmp_path)
    assert r.code == 1 and 'MLP012 error' in r.out and 'MLP023' in r.out and 'cannot be disabled' in r.out


def test_stdin_with_a_filename(tmp_path):
    d = project(tmp_path, GOOD)
    (d / 'train.py').write_text('')
    r = run_cli(['lint', '--stdin-filename', 'p/MLproject', '-'], tmp_path,
                stdin=b'entry_points:\n  main:\n    command: python train.py {x}\n')
    assert r.code == 1 and r.out.startswith('p/MLproject:3:30: MLP012')
    r = run_cli(['lint', '-'], tmp_path, stdin=b'name: \xff\n')
    assert r.code == 1 and 'MLP001' in r.out and 'UTF-8' in r.out


def test_list_rules(tmp_path):
    r = run_cli(['lint', '--list-rules'], tmp_path)
    assert r.code == 0 and len(r.out.splitlines()) == len(RULES)
    rules = json.loads(run_cli(['lint', '--list-rules', '--format', 'json'], tmp_path).out)
    assert [x['id'] for x in rules] == sorted(RULES)


def test_github_format_is_automatic_in_actions(tmp_path):
    project(tmp_path, ERROR)
    r = run_cli(['lint'], tmp_path, env={'GITHUB_ACTIONS': 'true'})
    assert r.out.startswith('::error file=p/MLproject,line=3,col=20,title=MLP012 unknown-placeholder::')
    assert run_cli(['lint', '--format', 'text'], tmp_path, env={'GITHUB_ACTIONS': 'true'}).out.startswith('p/')


def test_misnamed_file_and_the_real_one(tmp_path):
    d = project(tmp_path, GOOD, name='MLproject.yaml')
    r = run_cli(['lint'], tmp_path)
    assert r.code == 0 and r.out.startswith('p/MLproject.yaml: MLP015 warning:')
    assert run_cli(['lint', '--select', 'MLP015', '--strict', 'p/MLproject.yaml'], tmp_path).code == 1
    (d / 'MLproject').write_text(GOOD)
    r = run_cli(['lint'], tmp_path)
    assert r.out.count('MLP015') == 1 and 'MLP0' not in r.out.replace('MLP015', '')


def test_examples_and_fixtures_run_through_the_cli(tmp_path):
    shutil.copytree(FIXTURES, tmp_path / 'fx')
    # the fixtures live in a Git repository: MLP026 (an env file above the project) needs one as its root

    git('init', '-q', str(tmp_path / 'fx'))
    r = run_cli(['lint', '--format', 'json', 'fx'], tmp_path)
    doc = json.loads(r.out)
    assert r.code == 1 and 'Traceback' not in r.err
    assert {f['rule'] for f in doc['findings']} == set(RULES) - {'MLP018'}


@pytest.mark.parametrize('cmd', [['--help'], ['lint', '--help'], ['schema', '--help'], ['hooks', '--help']])
def test_help(tmp_path, cmd):
    assert run_cli(cmd, tmp_path).code == 0


def test_lint_does_not_import_heavy_modules(tmp_path):
    project(tmp_path, GOOD)
    import subprocess
    import sys

    code = ('import sys\nfrom mlproj.cli import main\nrc = main(["lint", "-q", "."])\n'
            'heavy = [m for m in ("mlflow", "pygit2", "sqlalchemy", "jsonschema", "github") if m in sys.modules]\n'
            'print(rc, heavy)\n')
    out = subprocess.run([sys.executable, '-c', code], cwd=tmp_path, capture_output=True, text=True).stdout
    assert out.strip() == '0 []'


def test_fail_on_and_exit_zero(tmp_path):
    project(tmp_path, WARN_ONLY)
    assert run_cli(['lint'], tmp_path).code == 0
    assert run_cli(['lint', '--fail-on', 'warning'], tmp_path).code == 1
    assert run_cli(['lint', '--fail-on', 'error'], tmp_path).code == 0
    project(tmp_path, ERROR, sub='e')
    r = run_cli(['lint', '--exit-zero'], tmp_path)
    assert r.code == 0 and 'MLP012 error' in r.out and 'MLP016 warning' in r.out
    assert run_cli(['lint', '--exit-zero', '--select', 'NOPE'], tmp_path).code == 2  # usage errors still fail
    (tmp_path / 'pyproject.toml').write_text('[tool.mlproj.lint]\nfail-on = "warning"\n')
    assert run_cli(['lint', 'p'], tmp_path).code == 1
    (tmp_path / 'pyproject.toml').write_text('[tool.mlproj.lint]\nfail-on = "info"\n')
    r = run_cli(['lint', 'p'], tmp_path)
    assert r.code == 2 and 'fail-on must be "error" or "warning"' in r.err


def test_a_misspelled_key_is_an_error_an_unknown_one_a_warning(tmp_path):
    project(tmp_path, 'name: t\nentry_point:\n  main:\n    command: "true"\nowner: me\n')
    r = run_cli(['lint'], tmp_path)
    assert r.code == 1
    assert r.out.splitlines() == [
        "p/MLproject:2:1: MLP030 error: unknown key 'entry_point' in MLproject (did you mean 'entry_points'?); "
        'expected one of: name, entry_points, conda_env, python_env, docker_env, databricks_spark_job',
        "p/MLproject:5:1: MLP004 warning: unknown key 'owner' in MLproject; expected one of: name, entry_points, "
        'conda_env, python_env, docker_env, databricks_spark_job']


def test_exclude_extend_exclude_and_force_exclude(tmp_path):
    project(tmp_path, ERROR, sub='src/a')
    project(tmp_path, ERROR, sub='tests/fixtures/bad')
    project(tmp_path, ERROR, sub='build/x')  # a default exclude
    (tmp_path / 'pyproject.toml').write_text('[tool.mlproj.lint]\nextend-exclude = ["tests/fixtures/"]\n')
    r = run_cli(['lint'], tmp_path)
    assert r.out.count('MLP012') == 1 and r.out.startswith('src/a/MLproject:')
    r = run_cli(['lint'], tmp_path / 'tests')  # patterns are relative to the pyproject's directory
    assert (r.code, r.out, r.err) == (0, '', '')  # nothing to check, nothing said
    # a file named on the command line is linted, unless --force-exclude (what the pre-commit hook passes)
    assert run_cli(['lint', 'tests/fixtures/bad/MLproject'], tmp_path).code == 1
    assert run_cli(['lint', '--force-exclude', 'tests/fixtures/bad/MLproject'], tmp_path).code == 0
    # `exclude` replaces the defaults: build/ is walked again
    (tmp_path / 'pyproject.toml').write_text('[tool.mlproj.lint]\nexclude = ["tests"]\n')
    r = run_cli(['lint'], tmp_path)
    assert r.out.count('MLP012') == 2 and 'build/x/MLproject' in r.out and 'tests/' not in r.out
    r = run_cli(['lint', '--no-config', '--extend-exclude', 'src/'], tmp_path)
    assert 'src/' not in r.out and 'tests/fixtures/bad/MLproject' in r.out


def test_gitignore_is_respected_when_walking_unless_no_ignore(tmp_path):
    (tmp_path / '.git').mkdir()  # the work tree's root: .gitignore files from here down apply
    project(tmp_path, ERROR, sub='kept')
    project(tmp_path, ERROR, sub='generated/run1')
    project(tmp_path, ERROR, sub='sub/scratch')
    project(tmp_path, ERROR, sub='sub/keep-me')
    (tmp_path / '.gitignore').write_text('generated/\n')
    (tmp_path / 'sub' / '.gitignore').write_text('*\n!keep-me/\n!keep-me/**\n')
    r = run_cli(['lint'], tmp_path / 'sub')  # walking a subdirectory still honours the root's file
    assert r.out.count('MLP012') == 1 and r.out.startswith('keep-me/MLproject'), r.out
    r = run_cli(['lint'], tmp_path)
    assert sorted(line.split(':')[0] for line in r.out.splitlines()) == ['kept/MLproject', 'sub/keep-me/MLproject']
    r = run_cli(['lint', '--no-ignore'], tmp_path)
    assert r.out.count('MLP012') == 4
    (tmp_path / 'pyproject.toml').write_text('[tool.mlproj.lint]\nrespect-gitignore = false\n')
    assert run_cli(['lint'], tmp_path).out.count('MLP012') == 4
    assert run_cli(['lint', 'generated/run1/MLproject'], tmp_path).code == 1  # named files are always linted


def test_an_env_file_named_on_the_command_line_lints_its_projects(tmp_path):
    d = project(tmp_path, 'name: e\npython_env: envs/py.yaml\nentry_points:\n  main:\n    command: "true"\n',
                sub='proj')
    (d / 'envs').mkdir()
    (d / 'envs' / 'py.yaml').write_text('python: 3.10\ndependencies: ["-r requirements.txt"]\n')
    (d / 'requirements.txt').write_text('numpy\n')
    (d / 'conda.yaml').write_text('dependencies: []\n')  # not the env of this project (python_env is declared)
    for named in ('proj/requirements.txt', 'proj/envs/py.yaml'):
        r = run_cli(['lint', named], tmp_path)
        assert r.code == 1 and 'proj/envs/py.yaml:1:9: MLP017 error: python must be a string' in r.out, (named, r)
        assert r.err == 'mlproj lint: 1 error (1 file checked)\n'
    r = run_cli(['lint', 'proj/conda.yaml'], tmp_path)
    assert (r.code, r.out, r.err) == (0, '', '')
    (tmp_path / 'proj' / 'MLproject').write_text('name: e\nentry_points:\n  main:\n    command: "true"\n')
    (d / 'envs' / 'py.yaml').unlink()
    (d / 'python_env.yaml').write_text('python: 3.10\n')  # now the conventional env file
    r = run_cli(['lint', 'proj/python_env.yaml'], tmp_path)
    assert r.code == 1 and 'proj/python_env.yaml:1:9: MLP017' in r.out


def test_lint_at_the_root_of_this_repository_is_clean():
    """The README's "check every MLproject below here", in mlproj's own home (its fixtures are excluded)."""
    from tests.helpers import REPO

    r = run_cli(['lint'], REPO)
    assert (r.code, r.out) == (0, ''), r.out + r.err
    assert r.err.startswith('mlproj lint: no problems (')
