"""mlproj.clicore.fast_exit: the process ends without finalization only when nothing runs at exit."""
from __future__ import annotations

import subprocess
import sys
import textwrap


def _run(body: str) -> subprocess.CompletedProcess:
    code = textwrap.dedent('''
        import atexit, sys, threading, time
        from mlproj import clicore
        ''') + textwrap.dedent(body)
    return subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=60)


def test_fast_exit_keeps_the_exit_code_and_flushes_buffered_output():
    r = _run('''
        sys.stdout.write('x' * 100000)   # buffered, not yet written
        clicore.fast_exit(7)
        print('not reached')
        ''')
    assert r.returncode == 7 and r.stdout == 'x' * 100000


def test_an_atexit_callback_gets_the_normal_exit():
    r = _run('''
        atexit.register(lambda: print('atexit ran'))
        clicore.fast_exit(3)
        sys.exit(3)
        ''')
    assert r.returncode == 3 and r.stdout == 'atexit ran\n'


def test_a_running_non_daemon_thread_gets_the_normal_exit():
    r = _run('''
        t = threading.Thread(target=lambda: (time.sleep(0.3), print('thread finished')))
        t.start()
        clicore.fast_exit(0)
        print('main continues')
        ''')
    assert r.returncode == 0 and r.stdout == 'main continues\nthread finished\n'


RUN_THROUGH_CONSOLE = '''
import os, sys
real_exit = os._exit
def recorded_exit(code):
    os.write(2, b'fast exit %d\\n' % code)
    real_exit(code)
os._exit = recorded_exit
sys.argv = ['mlproj', 'run', sys.argv[1], '--env-manager', 'local']
from mlproj.console import main
main()
'''


def test_a_run_ends_through_the_fast_exit_with_its_commands_code(tmp_path):
    """`mlproj run` ends with sys.exit(its run's code) inside the command; the CLI takes that as
    its exit code and still ends without finalization (it used to skip the fast exit)."""
    project = tmp_path / 'p'
    project.mkdir()
    (project / 'MLproject').write_text('name: p\nentry_points:\n  main:\n    command: "exit 3"\n')
    env = {k: v for k, v in __import__('os').environ.items() if not k.startswith('MLFLOW_')}
    env['MLFLOW_TRACKING_URI'] = f'sqlite:///{tmp_path}/mlflow.db'
    def run() -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, '-c', RUN_THROUGH_CONSOLE, str(project)], capture_output=True,
                              text=True, timeout=120, env=env, cwd=tmp_path)

    first = run()  # creates the store through MLflow, whose atexit callback takes the normal exit
    assert first.returncode == 3 and 'creating MLflow store' in first.stderr and 'fast exit' not in first.stderr
    r = run()
    assert r.returncode == 3, r.stderr
    assert 'fast exit 3' in r.stderr


def test_a_commands_system_exit_becomes_the_cli_status(capsys, monkeypatch):
    """The status Python would give: None is 0, an int itself, other values printed and 1."""
    import click

    from mlproj import cli

    for value, status, printed in ((None, 0, ''), (4, 4, ''), ('why it stopped', 1, 'why it stopped\n')):
        @click.command()
        def command(value=value):
            sys.exit(value)

        monkeypatch.setattr(cli, 'cli', command)
        assert cli.main([]) == status
        assert capsys.readouterr().err == printed
