"""evalmesh fork server: a warm pytest that forks a fresh child per run.

The node starts it inside the sandbox, with the environment's Python::

    python forkserver.py

with ``EVALMESH_CONTROL_FD`` naming a Unix socket (SOCK_SEQPACKET) to the
node. The server

1. sets RLIMIT_NPROC as the launcher does, makes itself non-dumpable, so that
   no child of its can trace it or read its memory, and imports pytest, its
   built-in plugins, the plugins installed in the environment (the
   ``pytest11`` entry points, through pytest's assertion rewriter as pytest
   imports them; with ``EVALMESH_PLUGINS``, only those its runs may load)
   and what they depend on — never a project's code;
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
   answers, then exits, and the node starts a new one;
5. with ``EVALMESH_ISOLATE``, for a request that names a ``zygote`` key (a
   run of one module; the key names its project and folder) and follows
   one of the same key, forks the child from a zygote instead (see
   ``Zygote``): a child of the server that runs the launcher on that
   request up to pytest's collection and forks, for it and each next
   request of the same key, a child that collects and runs its module from
   there. Between two of them the server brings the
   sandbox back to the zygote's state; where it cannot, or the zygote could
   not be made as a fresh run would be, it forks that key's modules itself.

The server ends when the node closes the socket.
"""

import ctypes
import gc
import importlib
import json
import os
import re
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
# How long past a run's time-out the server waits for its zygote's answer:
# the zygote kills its child at the time-out itself.
ZYGOTE_MARGIN = 2.0


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
    # With a reference suite, only the plugins its runs may load (see the
    # launcher's `allowed_plugins`): a module imported here runs in every child.
    try:
        allowed = runpy.run_path(LAUNCHER, run_name="evalmesh_launcher")["allowed_plugins"]()[0]
    except ValueError:  # refused: each child's launcher says why
        allowed = set()
    for name in _plugin_dependencies(allowed):
        try:
            importlib.import_module(name)
        except Exception:  # the child imports it again, as a fresh run would
            pass
    _import_plugins_rewritten(allowed)


def _import_plugins_rewritten(allowed):
    """Imports the modules of the plugins' distributions as a fresh pytest
    does: through its assertion rewriter, which pytest puts in place and
    tells about them before it imports them. A child's pytest then finds
    them rewritten, by a rewriter like its own, and takes them as its own
    imports. Where pytest's inner API is not what this expects, the child
    imports them itself. With ``allowed`` (not None), only the modules of
    those distributions."""
    from importlib import metadata

    # Read only with a list to keep to: it opens every distribution's files.
    owners = {} if allowed is None else getattr(metadata, "packages_distributions", dict)()

    def mine(name):
        dists = owners.get(name.partition(".")[0], [])
        return allowed is None or (dists and all(re.sub(r"[-_.]+", "-", d).lower() in allowed for d in dists))

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
        for name in sorted(filter(mine, hook._must_rewrite)):
            try:
                importlib.import_module(name)
            except Exception:  # the child's pytest reports it as a fresh run would
                pass
    except Exception:
        pass
    finally:
        config._ensure_unconfigure()


def _plugin_dependencies(allowed):
    """The top-level modules of what the ``pytest11`` plugins (of the
    ``allowed`` distributions, when not None) require. A
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
    plugins = [
        d
        for d in metadata.distributions()
        if any(e.group == "pytest11" for e in d.entry_points)
        and (allowed is None or canonicalize_name(d.metadata["Name"] or "") in allowed)
    ]
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


def _sweep(keep):
    """Kills every process of this PID namespace but its init and `keep`
    (the server, and its zygote while it has one), until none is left.
    False if some would not go."""
    for _ in range(2000):
        # Without a zygote, one signal reaches them all at once.
        for pid in _others(keep) if len(keep) > 1 else [-1]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
        if not _others(keep):
            return True
        time.sleep(0.001)
    return False


def _others(keep):
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != 1 and int(p) not in keep]


IPC_REMOVERS = {"shm": "shmctl", "msg": "msgctl", "sem": "semctl"}


def _ipc_ids():
    """The System V shared memory, message queue and semaphore ids of this
    IPC namespace, by kind."""
    ids = []
    for kind in IPC_REMOVERS:
        with open(f"/proc/sysvipc/{kind}") as table:
            ids += [(kind, int(line.split()[1])) for line in table.readlines()[1:]]
    return ids


def _remove_ipc():
    """Removes the System V IPC objects of this IPC namespace, which outlive
    the processes that made them. False if one is left."""
    libc = ctypes.CDLL(None, use_errno=True)
    left = False
    for kind, ipc_id in _ipc_ids():
        args = (ipc_id, 0, IPC_RMID, None) if kind == "sem" else (ipc_id, IPC_RMID, None)
        left |= getattr(libc, IPC_REMOVERS[kind])(*args) != 0
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
    """What ``folder`` holds, by path, with each entry's identity and mode,
    and for what is not a folder its size and times, the change time being
    one no process of the sandbox can set back: at start, the folders bwrap
    made to reach mounts shown inside it, and the mount points, none of
    which a wipe may remove; with a zygote, what it holds when it is ready."""
    top = os.lstat(folder).st_dev
    entries = {}
    stack = [folder]
    while stack:
        for entry in os.scandir(stack.pop()):
            st = entry.stat(follow_symlinks=False)
            identity = (st.st_dev, st.st_ino, st.st_mode, st.st_uid)
            if stat.S_ISDIR(st.st_mode):
                if st.st_dev == top:
                    stack.append(entry.path)
            else:
                identity += (st.st_size, st.st_mtime_ns, st.st_ctime_ns)
            entries[entry.path] = identity
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


def _ended(status, timed_out):
    """How a child ended, as the node reads it, from its wait status."""
    return {
        "status": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
        "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
        "timed_out": timed_out,
    }


class Child:
    """The run a forked child does, once it has left the server's loop: the
    launcher, run as the main script exactly as in a fresh process, so that
    ``__main__`` is the launcher (``multiprocessing``'s spawn imports it)."""

    def __init__(self, request, zygote=None):
        self.request = request
        # A zygote's socket to the server: the launcher then pauses pytest
        # before collection and forks a child per module (`_zygote_plugin`).
        self.zygote = zygote

    def run(self):
        request = self.request
        _ballast(request["project"], int(request["ballast"]))
        sys.argv = [LAUNCHER, request["base"], request["project"], request["mode"], "--", *request["args"]]
        extra = {} if self.zygote is None else {"_EVALMESH_ZYGOTE": _zygote_plugin(self.zygote)}
        try:
            runpy.run_path(LAUNCHER, init_globals=extra, run_name="__main__")
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


def _leave_server(output):
    """What a process forked from the server does first: drops the server's
    variables and modules, and takes `output` as its standard output and
    error, in a session of its own."""
    for name in SERVER_ONLY:
        os.environ.pop(name, None)
    os.setsid()
    for name in [m for m in sys.modules if m.split(".")[0] in SERVER_MODULES]:
        del sys.modules[name]
    _take_output(output)


def _take_output(output):
    """Reads nothing, and writes to `output`."""
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(output, 1)
    os.dup2(output, 2)
    os.close(output)


def _fork(control, request, results, output):
    """Forks the child of one request. Answers the child's `Child` in the
    child, its pid in the server."""
    pid = os.fork()
    if pid != 0:
        return pid
    control.close()
    if results != 3:
        os.dup2(results, 3)
        os.close(results)
    _leave_server(output)
    os.environ["EVALMESH_RESULTS_FD"] = "3"
    # The child may be traced and dumped like any process: only the
    # server is kept out of reach.
    _prctl(PR_SET_DUMPABLE, 1)
    return Child(request)


class Zygote:
    """The server's end of a zygote: a child that copied one project and ran
    pytest on it up to collection (its configuration read, its initial
    conftests imported, the session started), and that forks from there a
    child per module of the group it was made for. A module that a fresh
    process would run with the same initial conftests: same project, same
    options, a module in the same folder (``key``, from the node).

    It is kept only while it is what a fresh process would be at that
    point: no thread, timer, other process or System V IPC object of its
    own, and after each child the server brings the writable folders back
    to what they held when it said ready (``state``), or drops it."""

    def __init__(self, pid, sock, request):
        self.pid = pid
        self.sock = sock
        self.key = request["zygote"]
        self.args = request["args"]
        self.state = None

    def serves(self, key, request):
        return key == self.key and request["args"][:-1] == self.args[:-1]

    def answer(self, timeout):
        """Its next message, or None when it sends none in time, closes the
        socket or sends something else than JSON."""
        poller = select.poll()
        poller.register(self.sock, select.POLLIN)
        if not poller.poll(max(0, int(timeout * 1000))):
            return None
        try:
            answer = json.loads(self.sock.recv(REQUEST_CAP))
        except (OSError, ValueError):
            return None
        return answer if isinstance(answer, dict) else None

    def run(self, request, results, output):
        """Has it fork the request's child and answers how the child ended;
        None when the zygote did not answer that in time. The zygote runs
        project code: what it says is only believed for its own modules."""
        try:
            socket.send_fds(self.sock, [json.dumps(request).encode()], [results, output])
        except OSError:
            return None
        finally:
            os.close(results)
            os.close(output)
        answer = self.answer(float(request["timeout"]) + ZYGOTE_MARGIN)
        if answer is None or answer.get("event") != "exit":
            return None
        status, sig = answer.get("status"), answer.get("signal")
        return {
            "status": status if type(status) is int else None,
            "signal": sig if type(sig) is int else None,
            "timed_out": answer.get("timed_out") is True,
        }

    def stop(self):
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass
        self.sock.close()


def _start_zygote(control, request, me, wipe):
    """Forks a zygote for the request. Answers its `Child` in the zygote; in
    the server its `Zygote` once ready, else None (it is gone then)."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    pid = os.fork()
    if pid == 0:
        control.close()
        ours.close()
        _leave_server(os.open(os.devnull, os.O_WRONLY))
        return Child(request, zygote=theirs)
    theirs.close()
    zygote = Zygote(pid, ours, request)
    ready = zygote.answer(float(request["timeout"]))
    if ready == {"event": "ready", "forkable": True} and not _others({me, pid}) and not _ipc_ids():
        zygote.state = [(folder, stat.S_IMODE(os.stat(folder).st_mode), _snapshot(folder)) for folder, _, _ in wipe]
        return zygote
    zygote.stop()
    return None


def _zygote_plugin(sock):
    """The plugin class of a zygote's pytest, made with the zygote's socket
    to the server; the launcher makes it with its reporter."""
    import pytest

    class ZygotePlugin:
        def __init__(self, reporter):
            self.reporter = reporter

        @pytest.hookimpl(tryfirst=True)
        def pytest_collection(self, session):
            """In the zygote, never returns: forks a child per request and
            answers how it ended. In a child, returns at once, so that
            pytest collects and runs its module as a fresh process would."""
            _flush()
            timers = (signal.ITIMER_REAL, signal.ITIMER_VIRTUAL, signal.ITIMER_PROF)
            quiet = not any(signal.getitimer(t)[0] for t in timers)
            alone = threading.active_count() == 1 and len(os.listdir("/proc/self/task")) == 1
            forkable = quiet and alone and _fits(session.config)
            _send(sock, {"event": "ready", "forkable": forkable})
            if not forkable:
                os._exit(0)
            while True:
                try:
                    message, fds, _, _ = socket.recv_fds(sock, REQUEST_CAP, 2)
                except OSError:
                    os._exit(0)
                if not message or len(fds) != 2:
                    os._exit(0)
                request = json.loads(message)
                results, output = fds
                _flush()
                pid = os.fork()
                if pid == 0:
                    self._become(session, request, results, output)
                    return None
                os.close(results)
                os.close(output)
                _send(sock, {"event": "exit", **_ended(*_wait(pid, float(request["timeout"])))})

        def _become(self, session, request, results, output):
            """Makes this child what a fresh run of the request's module is
            when pytest is about to collect it: its own output, results
            channel, capture files and faulthandler target, and the module
            as pytest's argument."""
            sock.close()
            os.setsid()
            _prctl(PR_SET_DUMPABLE, 1)
            config = session.config
            capture = config.pluginmanager.getplugin("capturemanager")
            if capture is not None:
                # Its files are the zygote's, shared with every child.
                capture.stop_global_capturing()
            _take_output(output)
            _faulthandler_to_stderr(config)
            if capture is not None:
                capture.start_global_capturing()
                capture.suspend_global_capture()
            os.set_inheritable(results, False)
            os.environ["EVALMESH_RESULTS_FD"] = str(results)
            self.reporter.out = os.fdopen(results, "w", encoding="utf-8")
            args = request["args"]
            sys.argv = [sys.argv[0], *args]
            config.args = [args[-1]]
            config.option.file_or_dir = [args[-1]]
            params = config.invocation_params
            config.invocation_params = type(params)(args=tuple(args), plugins=params.plugins, dir=params.dir)
            _restart_clock(config)

    return ZygotePlugin


def _fits(config):
    """Whether this pytest has the insides a zygote's child changes (pytest
    7 to 9 have): where it has not, its modules are forked from the server."""
    capture = config.pluginmanager.getplugin("capturemanager")
    methods = ("stop_global_capturing", "start_global_capturing", "suspend_global_capture")
    return (
        isinstance(getattr(config, "args", None), list)
        and hasattr(config.option, "file_or_dir")
        and all(hasattr(config.invocation_params, name) for name in ("args", "plugins", "dir"))
        and (capture is None or all(hasattr(capture, name) for name in methods))
    )


def _flush():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass


def _faulthandler_to_stderr(config):
    """Points the descriptor pytest's faulthandler writes to (a copy of the
    zygote's standard error) at this child's."""
    try:
        from _pytest import faulthandler as plugin
    except ImportError:
        return
    fd_key = getattr(plugin, "fault_handler_stderr_fd_key", None)  # pytest 8 and later
    file_key = getattr(plugin, "fault_handler_stderr_key", None)  # pytest 7: a file
    if fd_key is not None and fd_key in config.stash:
        os.dup2(2, config.stash[fd_key])
    elif file_key is not None and file_key in config.stash:
        os.dup2(2, config.stash[file_key].fileno())


def _restart_clock(config):
    # The summary's "in N s" counts from the session's start.
    from _pytest import timing

    reporter = config.pluginmanager.getplugin("terminalreporter")
    if hasattr(reporter, "_session_start"):
        reporter._session_start = timing.Instant()
    elif hasattr(reporter, "_sessionstarttime"):
        reporter._sessionstarttime = timing.time()


def serve(control, isolate, wipe):
    """Answers requests until the node closes the socket; in a child or a
    zygote, answers its run instead."""
    me = os.getpid()
    zygote = None
    # Groups whose zygote could not be made, or not cleaned after a child:
    # their modules are forked from the server.
    refused = set()
    # The key of the request before: a zygote is made for the second request
    # of a group in a row, so that a group that brings this server a single
    # module (the other slot took the rest) costs no zygote.
    last = None

    def clean():
        return _sweep({me}) and _remove_ipc() and _wipe(wipe)

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
        key = request.get("zygote") if isolate else None
        again, last = key == last, key
        if zygote is not None and not zygote.serves(key, request):
            zygote.stop()
            zygote = None
            if not clean():
                return None
        if key is not None and zygote is None and again and key not in refused:
            zygote = _start_zygote(control, request, me, wipe)
            if isinstance(zygote, Child):
                os.close(results)
                os.close(output)
                return zygote
            if zygote is None:
                refused.add(key)
                if not clean():
                    return None
        if zygote is not None:
            ended = zygote.run(request, results, output)
            if ended is None:
                # The node runs the module again, in a fresh process.
                return None
            tidy = _sweep({me, zygote.pid}) and _remove_ipc() and _wipe(zygote.state)
            if not tidy:
                zygote.stop()
                zygote = None
                refused.add(key)
                tidy = clean()
        else:
            child = _fork(control, request, results, output)
            if isinstance(child, Child):
                return child
            os.close(results)
            os.close(output)
            ended = _ended(*_wait(child, float(request["timeout"])))
            tidy = not isolate or clean()
        _send(control, {"event": "exit", **ended, "clean": tidy})
        if not tidy:
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
