"""--quiet: the project's output byte for byte, mlproj's own lines dropped, errors kept."""
from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest

from mlproj.quiet import QuietStream
from tests.helpers import mlproj_bin, write_project


def test_the_filter_keeps_errors_and_tracebacks_and_drops_the_rest():
    out = io.StringIO()
    q = QuietStream(out)
    q.write("=== Running command 'x' in run with ID 'r' ===\n")
    q.write('mlproj: warning: the working tree has uncommitted changes\n')
    q.write('mlproj: error: parameter ')          # a line written in pieces
    q.write("'n' expects an int\nmlproj: creating MLflow store ./mlflow.db\n")
    q.write('Traceback (most recent call last):\n  File "x", line 1\nValueError: boom\n')
    q.write("\n=== Run (ID 'r') failed ===\n")
    q.write('mlproj: internal error: KeyError: 1 (run with --debug for the traceback)')
    q.flush()
    assert out.getvalue() == ("mlproj: error: parameter 'n' expects an int\n"
                              'Traceback (most recent call last):\n  File "x", line 1\nValueError: boom\n'
                              'mlproj: internal error: KeyError: 1 (run with --debug for the traceback)')


@pytest.mark.slow
@pytest.mark.parametrize('where', [['-q', 'run'], ['run', '-q'], ['run', '--quiet']])
def test_a_quiet_run_prints_exactly_the_projects_output(tmp_path, where):
    proj = write_project(tmp_path / 'p', 'entry_points:\n  main:\n    parameters:\n      n: {type: int, default: 1}\n'
                                         '    command: "printf \'out %s\\\\n\' {n}; printf \'err\\\\n\' >&2"\n')
    env = {**os.environ, 'MLFLOW_TRACKING_URI': f'sqlite:///{tmp_path}/mlflow.db'}
    args = [mlproj_bin(), *where, str(proj), '--env-manager', 'local']
    r = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, stdin=subprocess.DEVNULL, timeout=120)
    assert (r.returncode, r.stdout, r.stderr) == (0, b'out 1\n', b'err\n')
    loud = subprocess.run([mlproj_bin(), 'run', str(proj), '--env-manager', 'local'], cwd=tmp_path, env=env,
                          capture_output=True, stdin=subprocess.DEVNULL, timeout=120)
    assert b'=== Run (ID' in loud.stderr                        # what quiet mode leaves out
    bad = subprocess.run([*args, '-P', 'n=x'], cwd=tmp_path, env=env, capture_output=True, timeout=120)
    assert bad.returncode == 66 and bad.stdout == b''
    assert bad.stderr.decode().startswith("mlproj: error: parameter 'n' expects an int") and \
        bad.stderr.count(b'\n') == 1


def test_quiet_leaves_stdout_alone():
    q = QuietStream(sys.stderr)
    assert q.isatty() == sys.stderr.isatty() and q.encoding == sys.stderr.encoding
