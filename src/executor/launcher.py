"""evalmesh launcher: the first Python code of every pytest run.

The node runs, inside the sandbox and with the project's environment::

    python launcher.py BASE PROJECT collect|run -- PYTEST_ARGS...

with ``EVALMESH_RESULTS_FD`` naming an inherited pipe. The launcher

1. sets RLIMIT_NPROC to ``EVALMESH_PROCESS_LIMIT`` here, once the sandbox's
   user namespace exists, so that the kernel counts this run's processes
   alone (set before, it would count every process of the node's user);
2. copies BASE, the project as the node unpacked it and mounted read-only,
   into PROJECT, this run's private writable folder, and runs pytest there
   with PROJECT first on ``sys.path``, as ``python -m pytest`` would;
3. runs pytest in this process with a reporter that writes one JSON object
   a line to the pipe: in ``collect`` mode ``{"event": "collected",
   "modules": {path: tests}, "errors": {nodeid: text}}`` when the session
   ends; in ``run`` mode ``{"event": "report", "nodeid", "when", "outcome",
   "duration", "wasxfail", "message", "subtest"}`` for each phase of each
   test and for each subtest (unittest's ``subTest``, pytest's ``subtests``
   fixture), which pytest reports as one more ``call`` of its test, there
   with ``subtest`` true; and ``{"event": "collecterror", "nodeid",
   "message"}`` for each collector that fails;
4. writes ``{"event": "end", "exitstatus": N}`` once pytest has returned and
   closes the pipe, before ``atexit`` handlers run: the node reads nothing
   after it.

In ``compile`` mode (no pytest arguments) it runs no pytest and none of the
project's code: it compiles the project's sources as the children of its
runs would, each to the bytes Python or pytest writes in ``__pycache__``,
and sends ``{"event": "bytecode", "source", "path", "data"}`` for each
(paths relative to PROJECT, data in base64), then the end. See
``_compile``.

A fork server (``forkserver.py``) runs the launcher the same way in each
child it forks, as the main script with these arguments, on descriptor 3.

Only the standard library and pytest are imported, so the launcher runs in
any project's environment, on pytest 7 and later. The reporter observes
only: it never changes what pytest collects, runs or returns.
"""

import base64
import fnmatch
import importlib.util
import json
import marshal
import os
import re
import resource
import shutil
import sys

# Bound before any test runs, so that a test that replaces json.dumps (and
# does not put it back) still has its results reported.
_dumps = json.dumps


class _Reporter:
    def __init__(self, out, mode, message_cap):
        self.out = out
        self.mode = mode
        self.message_cap = message_cap
        self.errors = {}

    def _write(self, record):
        self.out.write(_dumps(record, ensure_ascii=False) + "\n")
        self.out.flush()

    def _text(self, text):
        text = _clean(text)
        if len(text) > self.message_cap:
            text = text[: self.message_cap]
        return text

    def pytest_collectreport(self, report):
        if not report.failed:
            return
        text = self._text(_longrepr_text(report))
        if self.mode == "collect":
            self.errors[_clean(report.nodeid)] = text
        else:
            self._write({"event": "collecterror", "nodeid": _clean(report.nodeid), "message": text})

    def pytest_runtest_logreport(self, report):
        if self.mode != "run":
            return
        message = None
        if report.failed:
            message = self._text(_longrepr_text(report))
        elif report.skipped:
            longrepr = report.longrepr
            if isinstance(longrepr, tuple) and len(longrepr) == 3:
                message = self._text(str(longrepr[2]))
            elif hasattr(report, "wasxfail"):
                message = self._text("expected failure: " + str(report.wasxfail))
        self._write(
            {
                "event": "report",
                "nodeid": _clean(report.nodeid),
                "when": report.when,
                "outcome": report.outcome,
                "duration": float(getattr(report, "duration", 0.0) or 0.0),
                "wasxfail": hasattr(report, "wasxfail"),
                "message": message,
                "subtest": _is_subtest(report),
            }
        )

    def pytest_sessionfinish(self, session):
        if self.mode != "collect":
            return
        modules = {}
        # session.items is only set once collection completed; without it the
        # errors alone are still worth reporting.
        for item in getattr(session, "items", None) or []:
            module = _clean(item.nodeid.split("::", 1)[0])
            modules[module] = modules.get(module, 0) + 1
        self._write({"event": "collected", "modules": modules, "errors": self.errors})


def _is_subtest(report):
    # pytest 9's SubtestReport, and pytest-subtests' SubTestReport before it:
    # a TestReport of the test's call phase, one per subtest. By class name,
    # so that neither needs to be importable.
    return any(c.__name__ in ("SubtestReport", "SubTestReport") for c in type(report).__mro__)


def _longrepr_text(report):
    try:
        return report.longreprtext
    except Exception:  # a plugin's own longrepr may fail to render
        return str(report.longrepr)


def _clean(text):
    # Undecodable file names reach Python as lone surrogates, which are not
    # valid UTF-8 and which a strict JSON reader rejects.
    return str(text).encode("utf-8", "replace").decode("utf-8")


def _copy_into(base, project):
    # Entry by entry: PROJECT itself is a mount point this run may not chmod.
    for entry in os.scandir(base):
        target = os.path.join(project, entry.name)
        if entry.is_dir(follow_symlinks=False):
            shutil.copytree(entry.path, target, symlinks=True)
        else:
            shutil.copy2(entry.path, target, follow_symlinks=False)


# What pytest rewrites without being told: conftests and the files its
# default `python_files` names.
_REWRITTEN = ("conftest.py", "test_*.py", "*_test.py")
# Where pytest's configuration may live: a project that turns the assertion
# pass hook on (it changes the rewritten code) has its tests rewritten in
# each run, as without this cache.
_CONFIG_FILES = ("pytest.ini", ".pytest.ini", "pytest.toml", ".pytest.toml", "pyproject.toml", "tox.ini", "setup.cfg")


def _pyc(code, st):
    # What importlib writes for a source of stat `st` (PEP 552, timestamp-checked).
    return (
        importlib.util.MAGIC_NUMBER
        + (0).to_bytes(4, "little")
        + (int(st.st_mtime) & 0xFFFFFFFF).to_bytes(4, "little")
        + (st.st_size & 0xFFFFFFFF).to_bytes(4, "little")
        + marshal.dumps(code)
    )


def _is_rewritten(name):
    return any(fnmatch.fnmatch(name, p) for p in _REWRITTEN)


def _rewriter(project):
    """pytest's own rewrite of a test file and the pyc it writes for it, or
    None where that cannot be had the same as in a run."""
    for folder, _, files in os.walk(project):
        for name in files:
            if name in _CONFIG_FILES:
                with open(os.path.join(folder, name), "rb") as f:
                    if b"enable_assertion_pass_hook" in f.read():
                        return None
    try:
        from _pytest.assertion.rewrite import PYC_TAIL, _rewrite_test, _write_pyc_fp
    except ImportError:
        return None
    import io
    from pathlib import Path

    def rewrite(path):
        # The config only says whether the pass hook is on; it is not.
        key, code = _rewrite_test(Path(path), None)
        out = io.BytesIO()
        _write_pyc_fp(out, key, code)
        return os.path.join("__pycache__", os.path.basename(path)[:-3] + PYC_TAIL), out.getvalue()

    return rewrite


def _imported_here(folder, files):
    # Bytecode for a folder Python imports from: a package, a folder of
    # tests (and the project's top). A folder of other .py files (data a test
    # reads, examples) gets no __pycache__ a run would not have made.
    return "__init__.py" in files or any(_is_rewritten(f) for f in files)


def _compile(project, out):
    """Sends the bytecode of the project's sources, compiled as a run's
    imports would compile them at PROJECT: plain modules to importlib's pyc,
    conftests and test files to pytest's rewritten pyc. A source that does
    not compile is left to the run, which reports it as it would."""
    rewrite = _rewriter(project)
    for folder, dirs, files in os.walk(project):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        if folder != project and not _imported_here(folder, files):
            continue
        for name in sorted(f for f in files if f.endswith(".py")):
            path = os.path.join(folder, name)
            try:
                if _is_rewritten(name):
                    if rewrite is None:
                        continue
                    pyc, data = rewrite(path)
                else:
                    with open(path, "rb") as f:
                        source = f.read()
                    code = compile(source, path, "exec", dont_inherit=True)
                    pyc = os.path.relpath(importlib.util.cache_from_source(path), folder)
                    data = _pyc(code, os.stat(path))
            except (SyntaxError, ValueError, OverflowError, RecursionError, MemoryError, OSError):
                continue
            record = {
                "event": "bytecode",
                "source": os.path.relpath(path, project),
                "path": os.path.relpath(os.path.join(folder, pyc), project),
                "data": base64.b64encode(data).decode("ascii"),
            }
            out.write(_dumps(record) + "\n")
    out.write(_dumps({"event": "end", "exitstatus": 0}) + "\n")
    out.close()


def _canonical(name):
    return re.sub(r"[-_.]+", "-", name or "").lower()


def allowed_plugins():
    """With ``EVALMESH_PLUGINS``, the distributions (canonical names, comma
    separated) that a reference suite's requirements name: the distributions
    whose ``pytest11`` plugins may load, those and what they require, and
    the ``-p no:NAME`` arguments that keep every other plugin out. Without
    it, ``(None, [])``: every plugin loads, as under plain pytest. Names of
    pytest's own plugins are never blocked: pytest loads its own under them
    and skips an entry point that takes one.

    A plugin kept out that shares its name with one let in (or that name
    without ``pytest_``: ``-p no:mock`` also blocks ``pytest_mock``) would
    either keep that one out too or load in its place, and so would a second
    distribution of a name let in: refused, so that a submission can neither
    switch off nor stand in for a suite's plugin."""
    named = os.environ.get("EVALMESH_PLUGINS")
    if named is None:
        return None, []
    from importlib import metadata

    # One pass: each distribution's metadata and entry points are files.
    dists = {}
    for dist in metadata.distributions():
        dists.setdefault(_canonical(dist.metadata["Name"]), []).append(dist)
    allowed, todo = set(), [n for n in named.split(",") if n]
    while todo:
        name = todo.pop()
        if name in allowed or name not in dists:
            continue
        if len(dists[name]) > 1:
            # A second copy of a name let in, whichever is the real one,
            # would have its plugins let in too.
            raise ValueError(f"the environment holds {len(dists[name])} distributions named {name!r}")
        allowed.add(name)
        for line in dists[name][0].requires or []:
            marker = line.partition(";")[2]
            if "extra" not in marker:
                todo.append(_canonical(re.match(r"[A-Za-z0-9._-]*", line.strip()).group(0)))

    entry_points = [
        (name in allowed, ep.name)
        for name, same in dists.items()
        for dist in same
        for ep in dist.entry_points
        if ep.group == "pytest11"
    ]
    try:
        from _pytest.config import builtin_plugins
    except ImportError:
        builtin_plugins = set()
    kept = {name for ok, name in entry_points if ok}
    blocked = sorted({name for ok, name in entry_points if not ok} - set(builtin_plugins))
    for name in blocked:
        if name in kept or "pytest_" + name in kept:
            raise ValueError(
                f"a package of the submission's requirements registers the pytest plugin {name!r}, "
                "which would switch off a plugin of the reference suite"
            )
    return allowed, [arg for name in blocked for arg in ("-p", "no:" + name)]


def main():
    base, project, mode = sys.argv[1:4]
    pytest_args = sys.argv[5:]
    limit = int(os.environ["EVALMESH_PROCESS_LIMIT"])
    resource.setrlimit(resource.RLIMIT_NPROC, (limit, limit))
    # pytest does not import it: a project's own module of that name is the
    # one its conftest imports, as under plain pytest.
    del sys.modules["resource"]
    # Set by a fork server in a zygote, which has no channel of its own: the
    # plugin it makes gives each child it forks its own (see forkserver.py).
    zygote = globals().get("_EVALMESH_ZYGOTE")
    out = None
    if zygote is None:
        fd = int(os.environ["EVALMESH_RESULTS_FD"])
        # Children the tests start do not inherit the channel.
        os.set_inheritable(fd, False)
        out = os.fdopen(fd, "w", encoding="utf-8")
    _copy_into(base, project)
    if mode == "compile":
        _compile(project, out)
        return
    os.chdir(project)
    sys.path[0] = project

    import pytest

    try:
        pytest_args = [*allowed_plugins()[1], *pytest_args]
    except ValueError as refused:
        print(f"evalmesh: {refused}", file=sys.stderr, flush=True)
        raise SystemExit(pytest.ExitCode.USAGE_ERROR) from None
    sys.argv = [os.path.join(os.path.dirname(pytest.__file__), "__main__.py"), *pytest_args]
    reporter = _Reporter(out, mode, int(os.environ.get("EVALMESH_MESSAGE_CAP", "4096")))
    plugins = [reporter] if zygote is None else [reporter, zygote(reporter)]
    status = pytest.main(pytest_args, plugins=plugins)
    # A zygote that stopped before its first child has no channel.
    if reporter.out is not None:
        reporter.out.write(_dumps({"event": "end", "exitstatus": int(status)}) + "\n")
        reporter.out.close()
    raise SystemExit(int(status))


if __name__ == "__main__":
    main()
