"""`mlproj lint` as a user runs it: exit codes, selection, config, stdin, --list-rules."""
from __future__ import annotations

import json
import shutil

import pytest

from mlproj.rules import RULES
from tests.lint.conftest import FIXTURES, run_cli

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
    assert r.out == ("p/MLproject:3:14: MLP012 error: command of entry point 'main' uses {nope} but declares no "
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
    assert r.out.count('MLP012') == 1 and r.out.startswith('a/b/c/MLproject:3:14:')


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
    assert r.code == 1 and r.out.startswith('p/MLproject:3:14: MLP012')
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
    assert r.out.startswith('::error file=p/MLproject,line=3,col=14,title=MLP012 unknown-placeholder::')
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
