"""Run ``docker run`` / ``podman run`` so that the container never outlives the run.

``python -m mlproj.envs.container ENGINE NAME -- ENGINE run ... --name NAME ...`` starts a tiny
watchdog in its own session, then *execs* the engine's CLI client with the write end of a pipe
inherited.  The local backend signals the client's process group on cancel: the client forwards
SIGTERM/SIGINT to the container (``--sig-proxy``, ``--init`` relays them to the command) and the
container ends; if the client is SIGKILLed instead, or dies any other way, the pipe closes and
the watchdog runs ``ENGINE rm -f NAME``.  ``--rm`` removes a container that ended normally.
"""
from __future__ import annotations

import os
import subprocess
import sys


def _watch(engine: str, name: str) -> int:
    try:
        while os.read(0, 4096):
            pass
    except OSError:
        pass
    subprocess.run([engine, 'rm', '-f', name], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return 0


def main(argv: list[str]) -> int:
    if len(argv) >= 3 and argv[0] == '--watch':
        return _watch(argv[1], argv[2])
    if len(argv) < 4 or argv[2] != '--':
        print('usage: python -m mlproj.envs.container ENGINE NAME -- COMMAND...', file=sys.stderr)
        return 2
    engine, name, command = argv[0], argv[1], argv[3:]
    read_end, write_end = os.pipe()
    subprocess.Popen([sys.executable, '-m', 'mlproj.envs.container', '--watch', engine, name],
                     stdin=read_end, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     start_new_session=True, close_fds=True)
    os.close(read_end)
    os.set_inheritable(write_end, True)
    try:
        os.execvp(command[0], command)
    except OSError as e:
        print(f'mlproj: error: cannot run {command[0]!r}: {e.strerror}', file=sys.stderr)
        return 127
    return 0  # not reached


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
