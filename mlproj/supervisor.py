"""The supervisor between mlproj and a local run's command: the run's processes die with mlproj.

The local backend does not start the command itself; it starts this file as
``python -I -S supervisor.py CTL STATUS CMD GRACE`` (stdlib only, no ``site``, an empty
environment) *before* the run exists, while the run is being created in MLflow, so the
interpreter's start-up (~10 ms) is not on the run's path.  The command comes later, as one message
on the CMD pipe (read to its end): NUL-terminated fields ``CWD``, the number of ``CLEANUP`` words
and the words, the number of ``COMMAND`` words and the words, the command's environment as
``NAME=VALUE`` items, and a final ``.`` (a message cut short, or none at all when the launch was
given up, starts nothing).  The supervisor

* takes the command's environment and directory as its own (the search for the command's
  executable uses that ``PATH``; its own environment at start is empty, so nothing the command may
  not see is readable in ``/proc/<pid>/environ``);
* becomes a *child subreaper* on Linux (``prctl(PR_SET_CHILD_SUBREAPER)`` through ctypes), so a
  descendant that leaves the command's session (``setsid``, double fork, ``nohup ... &``) is
  re-parented to the supervisor instead of init and can still be found and killed;
* starts the command in a new session (``posix_spawn`` with ``setsid``; its pgid is its pid) and
  reports ``ok <pid>`` or ``err <errno>`` on the STATUS pipe, so a command that cannot start is
  still a clean error in mlproj;
* reads one byte per request on the CTL pipe, whose write end only mlproj holds: a signal number
  to forward (once per process: to the command's process group, and to each descendant outside
  it), or ``9`` = kill every descendant now.  **End of file on CTL means mlproj is gone** (it
  exited or was SIGKILLed; the kernel closes the pipe either way, whatever thread started the
  run, which ``PR_SET_PDEATHSIG`` would not guarantee): the supervisor then sends SIGTERM to
  everything, waits ``min(GRACE, 2 s)`` and SIGKILLs what is left;
* when the command exits, terminates what it left behind (SIGTERM, GRACE, SIGKILL), runs the
  CLEANUP command if anything had to be signalled (docker: ``ENGINE rm -f NAME``, for a container
  whose client was killed), and exits with the command's status (128+N for signal N).

Start-up cost is kept down by importing only C modules (``_signal``, ``_ctypes``; measured in
``benchmarks/results/supervisor.md``).  Descendants are found by one scan of ``/proc/*/stat``
(parent pid and process group), only when
something has to be signalled; a run whose command leaves nothing behind costs one ``waitpid``.
Limits: without a subreaper (not Linux) only the command's process group is covered; a process
that escapes the tree entirely (a daemon started through systemd, a container engine, ssh) is
not a descendant; a supervisor SIGKILLed itself cannot clean up.
"""
import _signal as signal  # the C module: ``signal`` imports ``enum``, tens of ms on a busy machine
import errno
import os
import select
import sys
import time

LAUNCHER_GONE_GRACE = 2.0


def prctl(option, arg) -> bool:
    """``prctl(option, arg)`` of this process (Linux); False where it is unavailable or refused.
    (``mlproj.console`` marks mlproj not dumpable through it too.)"""
    if not sys.platform.startswith('linux'):
        return False
    try:  # ctypes' C core directly: ``import ctypes`` costs 3 ms idle, 50 ms on a loaded machine
        import _ctypes

        program = _ctypes.dlopen(None)  # type: ignore[arg-type]  # NULL: the program's own symbols
        return _ctypes.call_function(_ctypes.dlsym(program, 'prctl'), (option, arg, 0, 0, 0)) == 0
    except Exception:
        pass
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl(option, arg, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _subreaper() -> bool:
    PR_SET_CHILD_SUBREAPER = 36
    return prctl(PR_SET_CHILD_SUBREAPER, 1)


def _tree(root):
    """[(pid, pgid)] of every descendant of ``root`` (Linux /proc; [] elsewhere)."""
    children = {}
    try:
        names = os.listdir('/proc')
    except OSError:
        return []
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f'/proc/{name}/stat', 'rb') as f:
                data = f.read()
            fields = data[data.rindex(b')') + 2:].split()
            ppid, pgid = int(fields[1]), int(fields[2])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append((int(name), pgid))
    out, stack = [], [root]
    while stack:
        for item in children.get(stack.pop(), ()):
            out.append(item)
            stack.append(item[0])
    return out


class Supervisor:
    def __init__(self, ctl, grace):
        self.ctl, self.grace = ctl, grace
        self.cleanup, self.command = [], []
        self.me = os.getpid()
        self.pid = None
        self.code = None
        self.signalled = False
        self.reaper = _subreaper()
        self.wake_r, self.wake_w = os.pipe()
        for fd in (self.wake_r, self.wake_w):
            os.set_blocking(fd, False)
        self.received = []
        signal.signal(signal.SIGCHLD, lambda s, f: None)
        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(s, lambda s, f: self.received.append(s))
        signal.set_wakeup_fd(self.wake_w)

    def start(self):
        self.pid = os.posix_spawnp(self.command[0], self.command, os.environ, setsid=True,
                                   setsigdef=(signal.SIGPIPE, signal.SIGXFSZ))

    # -- bookkeeping ----------------------------------------------------------------------
    def reap(self):
        """Reap every exited child; True while any child (adopted ones included) remains."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return False
            if pid == 0:
                return True
            if pid == self.pid:
                code = os.waitstatus_to_exitcode(status)
                self.code = code if code >= 0 else 128 - code

    def left(self):
        return _tree(self.me) if sys.platform.startswith('linux') else []

    def group_alive(self):
        try:
            os.killpg(self.pid, 0)
            return True
        except OSError:
            return False

    def anything_left(self):
        if self.reap():
            return True
        # with a subreaper every descendant is reachable through a child: no child, nothing left
        return not self.reaper and (bool(self.left()) or self.group_alive())

    def pause(self, timeout):
        try:
            select.select([self.ctl, self.wake_r], [], [], timeout)
        except InterruptedError:
            pass
        try:
            while os.read(self.wake_r, 512):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    # -- signalling -----------------------------------------------------------------------
    def forward(self, sig):
        self.signalled = True
        try:
            os.killpg(self.pid, sig)
        except OSError:
            pass
        for pid, pgid in self.left():
            if pgid != self.pid:
                try:
                    os.kill(pid, sig)
                except OSError:
                    pass

    def kill_all(self):
        self.signalled = True
        for _ in range(200):  # bounded: a fork bomb must not keep us here forever
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except OSError:
                pass
            rest = self.left()
            for pid, _pgid in rest:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            if not self.reap() and not rest and not self.group_alive():
                return
            time.sleep(0.01)

    def terminate(self, grace, signal_first=True):
        if signal_first:
            self.forward(signal.SIGTERM)
        deadline = time.monotonic() + grace
        while self.anything_left() and time.monotonic() < deadline:
            self.pause(0.05)
        self.kill_all()

    def read_ctl(self):
        """Handle pending CTL bytes; False when mlproj is gone (end of file)."""
        try:
            data = os.read(self.ctl, 64)
        except BlockingIOError:
            return True
        except OSError:
            data = b''
        if not data:
            return False
        for b in data:
            if b == signal.SIGKILL:
                self.kill_all()
            else:
                self.forward(b)
        return True

    def run_cleanup(self):
        if not self.cleanup or not self.signalled:
            return
        try:
            devnull = os.open(os.devnull, os.O_RDWR)
            pid = os.posix_spawnp(self.cleanup[0], self.cleanup, os.environ, setsigdef=(signal.SIGPIPE,),
                                  file_actions=[(os.POSIX_SPAWN_DUP2, devnull, 0), (os.POSIX_SPAWN_DUP2, devnull, 1),
                                                (os.POSIX_SPAWN_DUP2, devnull, 2)])
        except OSError:
            return
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                return
            time.sleep(0.05)
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass

    def loop(self):
        os.set_blocking(self.ctl, False)
        while self.code is None:
            self.pause(None)
            if not self.read_ctl():
                self.terminate(min(self.grace, LAUNCHER_GONE_GRACE))
                self.run_cleanup()
                return 128 + signal.SIGKILL
            while self.received:
                self.forward(self.received.pop(0))
            self.reap()
        # the command is over: whatever it left behind goes too
        if self.anything_left():
            self.terminate(self.grace, signal_first=not self.signalled)
        self.run_cleanup()
        return self.code


def read_message(fd):
    """Everything written to ``fd`` until its end of file."""
    chunks = []
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b''.join(chunks)
        chunks.append(chunk)


def parse_message(message):
    """(cwd, cleanup, command, env) of the launcher's message; ValueError when it is incomplete."""
    fields = message.split(b'\0')
    if len(fields) < 6 or fields[-2:] != [b'.', b'']:
        raise ValueError('incomplete command message')
    fields = fields[:-2]
    cwd, n = fields[0], int(fields[1])
    cleanup = fields[2:2 + n]
    m = int(fields[2 + n])
    command = fields[3 + n:3 + n + m]
    if len(cleanup) != n or len(command) != m or not command:
        raise ValueError('incomplete command message')
    env = {}
    for item in fields[3 + n + m:]:
        name, sep, value = item.partition(b'=')
        if not sep or not name:
            raise ValueError('bad environment item')
        env[name] = value
    return cwd, cleanup, command, env


def main(argv):
    ctl, status, cmd, grace = int(argv[0]), int(argv[1]), int(argv[2]), float(argv[3])
    for fd in (ctl, status, cmd):
        os.set_inheritable(fd, False)
    sup = Supervisor(ctl, grace)  # a subreaper with its signals set up before the command is known
    try:
        message = read_message(cmd)
    finally:
        os.close(cmd)
    if not message:
        return 0  # the launch was given up before the run's command was known
    try:
        cwd, sup.cleanup, sup.command, env = parse_message(message)
    except ValueError:
        return 2
    try:
        os.chdir(cwd)
        os.environ.clear()
        os.environb.update(env)
        sup.start()
    except OSError as e:
        os.write(status, f'err {e.errno or errno.ENOENT}\n'.encode())
        return 127
    os.write(status, f'ok {sup.pid}\n'.encode())
    os.close(status)
    try:
        return sup.loop()
    except BaseException:
        sup.kill_all()
        raise


if __name__ == '__main__':
    # nothing is buffered and nothing runs at exit: skip the interpreter's finalization
    os._exit(main(sys.argv[1:]))
