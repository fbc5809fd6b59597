"""evalmesh fork server: a warm pytest that forks a fresh child per run.

The node starts it inside the sandbox, with the environment's Python::

    python forkserver.py

with ``EVALMESH_CONTROL_FD`` naming a Unix socket (SOCK_SEQPACKET) to the
node. The server

1. sets RLIMIT_NPROC as the launcher does, makes itself non-dumpable, so that
   no child of its can trace it or read its memory, and imports pytest, its
   built-in plugins, the plugins installed in the environment (the
   ``pytest11`` entry points, through pytest's assertion rewriter as pytest
   imports them) and what they depend on — never a project's code;
2. freezes the garbage collector's view of what it imported, so that the
   children's collections skip it (and copy-on-write pages stay shared);
3. says ``{"event": "ready", "forkable": bool}``: not forkable when the
   imports started a thread, since a forked child would inherit its locks
   but not the thread (the node then runs that environment's tests in fresh
   processes);
4. for each request ``{"mode", "base", "project", "args", "timeout"}``, sent
   with two descriptors (the results channel and the console output), forks
   a child that does what the launcher does in a fresh process: copies BASE
   into PROJECT and runs pytest on it, reporting over the channel. The
   server kills the child's process group at the time-out, then — when
   ``EVALMESH_ISOLATE`` is 1, in the sandbox's own PID and IPC namespaces —
   kills every other process left in it, removes the System V IPC objects
   and empties the writable folders (``EVALMESH_WIPE``), and answers ``{"event": "exit", "status",
   "signal", "timed_out", "clean"}``. So every child starts from what the
   server was when it said ready, and nothing one child leaves behind
   reaches the next. Not clean (a leftover it could not remove): the server
   answers, then exits, and the node starts a new one.

The server ends when the node closes the socket.
"""

import ctypes
import gc
import importlib
import json
import os
import resource
import runpy
import select
import shutil
import signal
import socket
import stat
import sys
import threading
import time
import traceback

PR_SET_DUMPABLE = 4
IPC_RMID = 0
LAUNCHER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "launcher.py")
# The variables of the server's that a fresh run does not have.
SERVER_ONLY = ("EVALMESH_CONTROL_FD", "EVALMESH_ISOLATE", "EVALMESH_WIPE")
# Modules the server imports and pytest does not: a child forgets them, so
# that a project's own module of one of these names is the one it imports.
# (The launcher forgets `resource` itself, in a fresh process as in a child.)
SERVER_MODULES = ("ctypes",)
# A request is a few kilobytes of JSON.
REQUEST_CAP = 1 << 20


def _prctl(option, value):
    ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)


def _warm():
    """Imports what every pytest run imports: pytest, its built-in plugins,
    the environment's plugins and what they depend on."""
    import pytest  # noqa: F401
    from _pytest.config import default_plugins

    # Only pytest's own modules and the plugins': a module of the standard
    # library that pytest imports after it loaded a project's conftest
    # (pdb, code, ...) may be a project's own module of that name.
    for name in default_plugins:
        importlib.import_module("_pytest." + name)
    for name in _plugin_dependencies():
        try:
            importlib.import_module(name)
        except Exception:  # the child imports it again, as a fresh run would
            pass
    _import_plugins_rewritten()


def _import_plugins_rewritten():
    """Imports the modules of the plugins' distributions as a fresh pytest
    does: through its assertion rewriter, which pytest puts in place and
    tells about them before it imports them. A child's pytest then finds
    them rewritten, by a rewriter like its own, and takes them as its own
    imports. Where pytest's inner API is not what this expects, the child
    imports them itself."""
    try:
        from _pytest.assertion import install_importhook
        from _pytest.config import get_config

        config = get_config()
    except Exception:
        return
    try:
        hook = install_importhook(config)
        try:
            config._mark_plugins_for_rewrite(hook, False)
        except TypeError:  # pytest before 8.4
            config._mark_plugins_for_rewrite(hook)
        for name in sorted(hook._must_rewrite):
            try:
                importlib.import_module(name)
            except Exception:  # the child's pytest reports it as a fresh run would
                pass
    except Exception:
        pass
    finally:
        config._ensure_unconfigure()


def _plugin_dependencies():
    """The top-level modules of what the ``pytest11`` plugins require. A
    plugin's own modules are left to ``_import_plugins_rewritten``: pytest
    marks them for assertion rewriting before it imports them, and one
    imported otherwise would be neither rewritten nor quiet
    (``PytestAssertRewriteWarning``, an error under ``filterwarnings =
    error``)."""
    from importlib import metadata

    modules_of = getattr(metadata, "packages_distributions", None)
    if modules_of is None:
        return []
    try:
        from packaging.requirements import InvalidRequirement, Requirement
        from packaging.utils import canonicalize_name
    except ImportError:
        return []

    tops = {}
    for module, dists in modules_of().items():
        for dist in dists:
            tops.setdefault(canonicalize_name(dist), set()).add(module)
    plugins = [d for d in metadata.distributions() if any(e.group == "pytest11" for e in d.entry_points)]
    own = set().union(*(tops.get(canonicalize_name(d.metadata["Name"] or ""), set()) for d in plugins))
    wanted = set()
    for plugin in plugins:
        for line in plugin.requires or []:
            try:
                requirement = Requirement(line)
            except InvalidRequirement:
                continue
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                wanted |= tops.get(canonicalize_name(requirement.name), set())
    return sorted(wanted - own - {"pytest", "_pytest", "py"})


def _send(control, record):
    control.send(json.dumps(record).encode())


def _sweep(me):
    """Kills every process of this PID namespace but the server and its init,
    until none is left. False if some would not go."""
    for _ in range(2000):
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            pass
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
        left = [p for p in os.listdir("/proc") if p.isdigit() and int(p) not in (1, me)]
        if not left:
            return True
        time.sleep(0.001)
    return False


def _remove_ipc():
    """Removes the System V shared memory, message queues and semaphores of
    this IPC namespace, which outlive the processes that made them. False if
    one is left."""
    libc = ctypes.CDLL(None, use_errno=True)
    removers = {"shm": libc.shmctl, "msg": libc.msgctl, "sem": libc.semctl}
    left = False
    for kind, remove in removers.items():
        with open(f"/proc/sysvipc/{kind}") as table:
            ids = [int(line.split()[1]) for line in table.readlines()[1:]]
        for ipc_id in ids:
            args = (ipc_id, 0, IPC_RMID, None) if kind == "sem" else (ipc_id, IPC_RMID, None)
            left |= remove(*args) != 0
    return not left


def _unlock(function, path, _excinfo):
    # A run may have taken away its own permission on what it made.
    parent = os.path.dirname(path)
    os.chmod(parent, stat.S_IRWXU)
    if os.path.isdir(path) and not os.path.islink(path):
        os.chmod(path, stat.S_IRWXU)
        shutil.rmtree(path, onerror=_unlock)
    else:
        os.unlink(path)


def _snapshot(folder):
    """What ``folder`` holds, by path, with each entry's identity and mode:
    at start, the folders bwrap made to reach mounts shown inside it, and the
    mount points, none of which a wipe may remove."""
    top = os.lstat(folder).st_dev
    entries = {}
    stack = [folder]
    while stack:
        for entry in os.scandir(stack.pop()):
            st = entry.stat(follow_symlinks=False)
            entries[entry.path] = (st.st_dev, st.st_ino, st.st_mode, st.st_uid)
            if stat.S_ISDIR(st.st_mode) and st.st_dev == top:
                stack.append(entry.path)
    return entries


def _empty(folder, keep, top):
    for entry in os.scandir(folder):
        if entry.path in keep:
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode) and st.st_dev == top:
                _empty(entry.path, keep, top)
        elif entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, onerror=_unlock)
        else:
            os.unlink(entry.path)


def _wipe(folders):
    """Brings each folder back to what it held at start, without following a
    link, and gives it back its mode. False if it cannot, or if what it held
    at start was changed."""
    try:
        for folder, mode, keep in folders:
            if os.stat(folder).st_uid == os.getuid():
                os.chmod(folder, mode)
            _empty(folder, keep, os.lstat(folder).st_dev)
        return all(_snapshot(folder) == keep for folder, _, keep in folders)
    except OSError:
        return False


def _wait(pid, timeout):
    """Waits for the child; kills its group at the time-out. Answers the
    wait status and whether it timed out."""
    pidfd = os.pidfd_open(pid)
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        timed_out = not poller.poll(max(0, int(timeout * 1000)))
    finally:
        os.close(pidfd)
    if timed_out:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    _, status = os.waitpid(pid, 0)
    try:
        # What the child started in its group would hold the pipes open.
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return status, timed_out


class Child:
    """The run a forked child does, once it has left the server's loop: the
    launcher, run as the main script exactly as in a fresh process, so that
    ``__main__`` is the launcher (``multiprocessing``'s spawn imports it)."""

    def __init__(self, request):
        self.request = request

    def run(self):
        request = self.request
        _ballast(request["project"], int(request["ballast"]))
        sys.argv = [LAUNCHER, request["base"], request["project"], request["mode"], "--", *request["args"]]
        try:
            runpy.run_path(LAUNCHER, run_name="__main__")
            code = 0
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else int(done.code is not None)
        except BaseException:
            traceback.print_exc()
            code = 1
        # The launcher has sent its results and closed the channel: what an
        # interpreter's exit still does (atexit handlers, tearing down every
        # module) cannot change them, and costs a child as much as a test.
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)


def _ballast(folder, size):
    """Takes `size` bytes of the folder's tmpfs with a file that has no name
    and lives as long as this process: the server's project folder is sized
    for the largest project it may serve, and a run of a smaller one may
    write no more than a fresh process could."""
    if size <= 0:
        return
    fd = os.open(folder, os.O_TMPFILE | os.O_RDWR, 0o600)
    os.posix_fallocate(fd, 0, size)


def _fork(control, request, results, output):
    """Forks the child of one request. Answers the child's `Child` in the
    child, its pid in the server."""
    pid = os.fork()
    if pid != 0:
        return pid
    control.close()
    for name in SERVER_ONLY:
        os.environ.pop(name, None)
    if results != 3:
        os.dup2(results, 3)
        os.close(results)
    os.environ["EVALMESH_RESULTS_FD"] = "3"
    os.setsid()
    # The child may be traced and dumped like any process: only the
    # server is kept out of reach.
    _prctl(PR_SET_DUMPABLE, 1)
    for name in [m for m in sys.modules if m.split(".")[0] in SERVER_MODULES]:
        del sys.modules[name]
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(output, 1)
    os.dup2(output, 2)
    os.close(output)
    return Child(request)


def serve(control, isolate, wipe):
    """Answers requests until the node closes the socket; in a child,
    answers the child's run instead."""
    me = os.getpid()
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(control, REQUEST_CAP, 2)
        except ConnectionResetError:
            return None
        if not message:
            return None
        if len(fds) != 2:
            for fd in fds:
                os.close(fd)
            raise SystemExit("a request came without its two descriptors")
        request = json.loads(message)
        results, output = fds
        child = _fork(control, request, results, output)
        if isinstance(child, Child):
            return child
        os.close(results)
        os.close(output)
        status, timed_out = _wait(child, float(request["timeout"]))
        clean = True
        if isolate:
            clean = _sweep(me) and _remove_ipc() and _wipe(wipe)
        _send(
            control,
            {
                "event": "exit",
                "status": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
                "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
                "timed_out": timed_out,
                "clean": clean,
            },
        )
        if not clean:
            return None


def main():
    limit = int(os.environ["EVALMESH_PROCESS_LIMIT"])
    resource.setrlimit(resource.RLIMIT_NPROC, (limit, limit))
    control = socket.socket(fileno=int(os.environ["EVALMESH_CONTROL_FD"]))
    os.set_inheritable(control.fileno(), False)
    _prctl(PR_SET_DUMPABLE, 0)
    _warm()
    forkable = threading.active_count() == 1
    gc.collect()
    gc.freeze()
    _send(control, {"event": "ready", "forkable": forkable})
    if not forkable:
        return None
    isolate = os.environ.get("EVALMESH_ISOLATE") == "1"
    wipe = [
        (p, stat.S_IMODE(os.stat(p).st_mode), _snapshot(p)) for p in os.environ.get("EVALMESH_WIPE", "").split(":") if p
    ]
    return serve(control, isolate, wipe)


if __name__ == "__main__":
    child = main()
    if child is not None:
        child.run()
