#!/usr/bin/env python3
"""Benchmark: the node's own time per module, beyond pytest's.

Builds a project of N modules of one trivial test each and starts two nodes
of the release binary, each with slots = 1, modules_per_task = 1 and its own
data dir: one with `executor.sandbox = "none"`, which gives the own-time
figure, and one with the default bwrap sandbox, which gives what the sandbox
adds. A warm-up evaluation on each builds its environment; then, repetition
by repetition:

- baseline: each module in its own pytest run, one after the other, made by
  this script exactly as the node without a sandbox makes it
  (src/executor/pytest.rs, `launch` + `run`): the environment's python on the
  node's launcher (<data_dir>/sandbox/launcher.py, written by the node at
  start) with a fresh empty project folder, the node's arguments and its
  cleared environment, and a pipe as descriptor 3 whose JSON lines are
  drained and checked;
- collect: one collection pass made the same way (`launch` + `collect`), as
  the node makes once per project per evaluation;
- node: the same project submitted as a zip to both nodes, in alternating
  order; `_run_info.eval_time` read once each evaluation is done.

Three figures per repetition:

1. raw: (eval_time - baseline) / N, the baseline taken from the separate
   sequential run, on the node without a sandbox. On a shared 2-core machine
   its noise (seconds over a 20 s run) is larger than the 2 s that 50 ms x 40
   modules amounts to.
2. own time, timed at process boundaries (the verdict), on the node without
   a sandbox: a hook installed in that node's environment (a .pth file) makes
   every pytest run's process append its start (at interpreter site-init) and
   end (atexit) times to a file. The node clears the environment of its runs,
   so the file's absolute path is written into the hook itself; without a
   sandbox a run sees the host's files, so it can append to it. Then
       own = (eval_time - sum(module processes' spans) - N * floor) / N
   where floor is what a pytest process costs outside its span (exec and
   interpreter start before site-init, shutdown after atexit), measured on
   the baseline's processes as wall time minus span, and capped at the
   node's own mean gap between two module processes, so that a harness
   slower than the node cannot credit the node with negative time. pytest's
   work is thus subtracted as measured inside the same evaluation, and load
   on the machine mostly cancels out. A span holds the launcher's work too
   (copying the project into the run's private folder, writing results to
   the pipe), in the baseline as in the node. The collection pass is the
   node's own work and is counted; the figure without it is shown too, with
   a breakdown of where the node's time goes.
3. sandbox: (eval_time with bwrap - eval_time without) / N, what the sandbox
   adds to each module, its share of the collection pass's sandbox counted.
   No hook in the bwrap node's environment: inside the sandbox no host path
   is visible.

4. node and fork: a third node, with bwrap and the fork server on (the
   default; the first two have `fork_server = false`, so that figures 1 to 3
   keep measuring fresh processes), against pytest's own work: every module
   given to its own `pytest.main` in one warm process of the node's
   environment, with the node's arguments. What a module costs this node
   beyond that, (eval_time - in-process time) / N, is the fork server's and
   the node's overhead: fork, the child's copy of the project, the clean-up
   between children, the collection child, the node's dispatch.

Side figure: the same modules run with the node's environment and with one
built by uv without --compile-bytecode, alternating module by module, and the
number of .pyc files in the node's environment. pytest runs with
PYTHONDONTWRITEBYTECODE=1, so an environment without compiled bytecode makes
every module's process compile pytest again (cb36af8 fixed that for uv; this
guards it).

Targets (issues): under 50 ms per module for figure 2 (collection counted),
under 30 ms for figure 4. Exits with status 1 when a median misses its
target.

Python 3 standard library only. Needs bwrap (and setpriv as root) for the
second node, as the node itself does. Run from the crate root (about 4
minutes on 2 cores):

    cargo build --release && python3 bench/overhead.py

Options: --modules N (40), --reps N (3), --bytecode-modules N (6, 0 skips
the side figure), --binary PATH (target/release/evalmesh), --keep (leave the
scratch folder).
"""

import argparse
import glob
import http.client
import io
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile

REQUIREMENTS = "six==1.16.0\niniconfig\n"
TEST_SOURCE = "def test_ok():\n    assert 1 + 1 == 2\n"
TARGET_MS = 50.0
FORK_TARGET_MS = 30.0
IN_PROCESS = """\
import json, sys, time
import pytest
args, modules = json.loads(sys.argv[1]), json.loads(sys.argv[2])
started = time.monotonic()
for module in modules:
    if pytest.main(args + ["-q", "--", module]) != 0:
        sys.exit("in-process run of %s failed" % module)
print(time.monotonic() - started)
"""
READY = ".evalmesh-ready"
# src/executor/sandbox/mod.rs, RESULTS_FD; executor.process_limit and
# executor.message_cap_bytes at their defaults (config/node.toml).
RESULTS_FD = 3
PROCESS_LIMIT = 256
MESSAGE_CAP = 4096
TIMING_HOOK = '''\
"""evalmesh bench: appends this process's start and end times to a file."""
import atexit, os, sys, time
_START = time.time()
_OUT = @OUT@
def _record():
    kind = "collect" if "--collect-only" in sys.argv else "run"
    line = "%.6f %.6f %s\\n" % (_START, time.time(), kind)
    fd = os.open(_OUT, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
atexit.register(_record)
'''


def write_project(root, modules):
    os.makedirs(os.path.join(root, "tests"))
    with open(os.path.join(root, "requirements.txt"), "w") as f:
        f.write(REQUIREMENTS)
    names = []
    for i in range(modules):
        name = "tests/test_m%03d.py" % i
        with open(os.path.join(root, name), "w") as f:
            f.write(TEST_SOURCE)
        names.append(name)
    return names


def zip_project(root):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for dirpath, _, files in os.walk(root):
            for f in sorted(files):
                path = os.path.join(dirpath, f)
                z.write(path, os.path.relpath(path, root))
    return buf.getvalue()


def read_timings(path):
    """[(start, end, kind)] sorted by start, and empties the file."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        rows = [line.split() for line in f if line.strip()]
    os.remove(path)
    return sorted((float(a), float(b), kind) for a, b, kind in rows)


def mean_gap(spans):
    gaps = [b[0] - a[1] for a, b in zip(spans, spans[1:])]
    return statistics.mean(gaps) if gaps else 0.0


def parse_stamp(text):
    # "2026-11-25T16:50:17.123Z" -> seconds since the epoch, ms kept
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# --- the nodes ----------------------------------------------------------------


class Node:
    """The release binary on 127.0.0.1:0 with its own data dir and sandbox."""

    def __init__(self, binary, scratch, name, sandbox, fork_server):
        self.name = name
        self.data_dir = os.path.join(scratch, name)
        config = os.path.join(scratch, name + ".toml")
        with open(config, "w") as f:
            f.write(
                "[node]\n"
                'listen = "127.0.0.1:0"\n'
                'data_dir = "%s"\n'
                "slots = 1\n"
                "[executor]\n"
                "modules_per_task = 1\n"
                "use_uv = true\n"
                "fork_server = %s\n"
                'sandbox = "%s"\n' % (self.data_dir, "true" if fork_server else "false", sandbox)
            )
        self.log_path = os.path.join(scratch, name + ".log")
        self.proc = subprocess.Popen(
            [binary, "node", "--config", config],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.port = None
        found = threading.Event()

        def drain():
            with open(self.log_path, "w") as log:
                for line in self.proc.stderr:
                    log.write(line)
                    log.flush()
                    m = re.search(r"serving on 127\.0\.0\.1:(\d+)", line)
                    if m and self.port is None:
                        self.port = int(m.group(1))
                        found.set()
            found.set()

        threading.Thread(target=drain, daemon=True).start()
        if not found.wait(30) or self.port is None:
            self.stop()
            sys.exit("node %s did not start; its log is in %s (use --keep)" % (name, self.log_path))

    def request(self, method, path, body=None, headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, json.loads(resp.read() or b"null")
        except OSError as e:
            code = self.proc.poll()
            state = "still runs" if code is None else "exited with %s" % code
            sys.exit("%s %s: %s; node %s %s, its log is in %s (use --keep)"
                     % (method, path, e, self.name, state, self.log_path))
        finally:
            conn.close()

    def evaluate(self, archive, timeout=600, poll=0.1):
        """Submits `archive`; returns (final JSON, wall seconds POST→done)."""
        started = time.monotonic()
        status, answer = self.request(
            "POST",
            "/evaluation",
            archive,
            {"Content-Type": "application/zip", "Content-Length": str(len(archive))},
        )
        if status != 202:
            sys.exit("node %s refused the submission: %s %s" % (self.name, status, answer))
        path = "/evaluation/%s" % answer["id"]
        while time.monotonic() - started < timeout:
            status, view = self.request("GET", path)
            if status == 200 and view["status"] in ("done", "failed"):
                return view, time.monotonic() - started
            time.sleep(poll)
        sys.exit("node %s: evaluation %s not done after %s s" % (self.name, answer["id"], timeout))

    def mode(self):
        """The sandbox mode the node reports: kind, users, limits."""
        _, stats = self.request("GET", "/stats?scope=local")
        return stats["sandbox"]

    def env_dir(self):
        ready = glob.glob(os.path.join(self.data_dir, "envs", "*", READY))
        if len(ready) != 1:
            sys.exit("node %s: expected one built environment, found %d" % (self.name, len(ready)))
        return os.path.dirname(ready[0])

    def launcher(self):
        path = os.path.join(self.data_dir, "sandbox", "launcher.py")
        if not os.path.isfile(path):
            sys.exit("node %s wrote no launcher at %s" % (self.name, path))
        return path

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def install_timing_hook(env_dir, timing):
    """Makes every process of `env_dir`'s python append its span to `timing`.
    The path is in the hook's source: the node's runs get a cleared
    environment, so an environment variable would not reach them."""
    site = glob.glob(os.path.join(env_dir, "lib", "python*", "site-packages"))
    if len(site) != 1:
        sys.exit("cannot find the site-packages of %s" % env_dir)
    with open(os.path.join(site[0], "_evalmesh_bench_timing.py"), "w") as f:
        f.write(TIMING_HOOK.replace("@OUT@", repr(os.path.abspath(timing))))
    with open(os.path.join(site[0], "_evalmesh_bench_timing.pth"), "w") as f:
        f.write("import _evalmesh_bench_timing\n")


# --- the baseline: the node's runs, made by hand ----------------------------------


def base_args(project):
    # src/executor/pytest.rs, base_args
    return [
        "-p", "no:cacheprovider", "--continue-on-collection-errors", "--maxfail=0",
        "--rootdir", project,
    ]


def run_env(env_dir):
    # src/executor/sandbox/mod.rs, base_env, then src/executor/pytest.rs,
    # launch: the node starts every run from a cleared environment.
    return {
        "HOME": "/tmp",
        "LANG": "C.UTF-8",
        "PATH": "%s:/usr/local/bin:/usr/bin:/bin" % os.path.join(env_dir, "bin"),
        "VIRTUAL_ENV": env_dir,
        "PYTHONDONTWRITEBYTECODE": "1",
        "EVALMESH_RESULTS_FD": str(RESULTS_FD),
        "EVALMESH_PROCESS_LIMIT": str(PROCESS_LIMIT),
        "EVALMESH_MESSAGE_CAP": str(MESSAGE_CAP),
    }


def launch(env_dir, launcher, base, scratch, mode, pytest_args):
    """One run as the node without a sandbox makes it (src/executor/pytest.rs,
    `launch`): the launcher copies `base` into a fresh empty project folder
    and runs pytest there, writing JSON lines to descriptor 3. Returns
    (seconds from spawn to reaped and drained, the records, exit code,
    console output)."""
    project = tempfile.mkdtemp(prefix="project-", dir=scratch)
    cmd = [os.path.join(env_dir, "bin", "python"), launcher, base, project, mode, "--"]
    cmd += base_args(project) + pytest_args
    read, write = os.pipe()

    def results_as_fd3():
        # Runs in the child before exec; dup2 leaves the copy inheritable.
        if write != RESULTS_FD:
            os.dup2(write, RESULTS_FD)

    chunks = []

    def drain():
        while True:
            data = os.read(read, 65536)
            if not data:
                return
            chunks.append(data)

    started = time.monotonic()
    try:
        # pass_fds keeps descriptor 3 open past close_fds, which runs after
        # the preexec_fn has made it the pipe.
        proc = subprocess.Popen(
            cmd, cwd=project, env=run_env(env_dir), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=(RESULTS_FD,),
            preexec_fn=results_as_fd3, process_group=0,
        )
    except OSError:
        os.close(read)
        raise
    finally:
        os.close(write)
    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    out, err = proc.communicate()
    reader.join()
    elapsed = time.monotonic() - started
    os.close(read)
    shutil.rmtree(project)
    output = out.decode(errors="replace") + err.decode(errors="replace")
    try:
        records = [json.loads(line) for line in b"".join(chunks).decode().splitlines() if line]
    except ValueError as e:
        sys.exit("%s run: unreadable results (%s):\n%s" % (mode, e, output))
    return elapsed, records, proc.returncode, output


def ended_well(records):
    return bool(records) and records[-1] == {"event": "end", "exitstatus": 0}


def run_module(env_dir, launcher, base, module, scratch):
    """Seconds of one module's run, as the node makes it."""
    elapsed, records, code, output = launch(
        env_dir, launcher, base, scratch, "run", ["-q", "--", module])
    passed = [r for r in records if r.get("event") == "report" and r.get("when") == "call"
              and r.get("outcome") == "passed" and r.get("nodeid", "").startswith(module + "::")]
    if code != 0 or not ended_well(records) or len(passed) != 1:
        sys.exit("baseline run of %s failed (%s), results %s:\n%s" % (module, code, records, output))
    return elapsed


def baseline(env_dir, launcher, base, modules, scratch):
    """Seconds to run every module in its own pytest, one after the other,
    and each process's wall time (spawned to reaped)."""
    started = time.monotonic()
    walls = [run_module(env_dir, launcher, base, module, scratch) for module in modules]
    return time.monotonic() - started, walls


def collect(env_dir, launcher, base, scratch, modules):
    """Seconds of one collection pass as the node makes it."""
    elapsed, records, code, output = launch(
        env_dir, launcher, base, scratch, "collect", ["--collect-only", "-q"])
    found = [r for r in records if r.get("event") == "collected"]
    if code != 0 or not ended_well(records) or len(found) != 1 \
            or sorted(found[0]["modules"]) != sorted(modules):
        sys.exit("collection failed (%s), results %s:\n%s" % (code, records, output))
    return elapsed


def in_process(env_dir, base, modules, scratch):
    """Seconds pytest takes for every module, each its own `pytest.main`, in
    one warm process of the node's environment: pytest's own work, with no
    process start, no copy, no node."""
    project = tempfile.mkdtemp(prefix="inproc-", dir=scratch)
    shutil.copytree(base, project, dirs_exist_ok=True)
    env = dict(run_env(env_dir))
    del env["EVALMESH_RESULTS_FD"]
    out = subprocess.run(
        [os.path.join(env_dir, "bin", "python"), "-c", IN_PROCESS,
         json.dumps(base_args(project)), json.dumps(modules)],
        cwd=project, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    shutil.rmtree(project)
    if out.returncode != 0:
        sys.exit("in-process pytest failed:\n%s%s" % (out.stdout, out.stderr))
    return float(out.stdout.strip().splitlines()[-1])


def no_bytecode_env(scratch, python):
    """An environment like the node's without compiled bytecode; None without uv."""
    uv = shutil.which("uv")
    if uv is None:
        return None
    env_dir = os.path.join(scratch, "env-no-pyc")
    reqs = os.path.join(scratch, "requirements-no-pyc.txt")
    with open(reqs, "w") as f:
        f.write(REQUIREMENTS)
    subprocess.run([uv, "venv", "--quiet", "--python", python, env_dir], check=True)
    subprocess.run(
        [uv, "pip", "install", "--quiet", "--python",
         os.path.join(env_dir, "bin", "python"), "-r", reqs, "pytest"],
        check=True,
    )
    return env_dir


def count_pyc(env_dir):
    return sum(f.endswith(".pyc") for _, _, files in os.walk(env_dir) for f in files)


# --- report -------------------------------------------------------------------------


def check_view(view, n, name):
    info = view["_run_info"]
    if view["status"] != "done" or info["passed"] != n or info["modules_done"] != n:
        sys.exit("node %s: unexpected evaluation: %s" % (name, json.dumps(info)))
    return info["eval_time"]


def floor_of(walls, spans):
    """Mean seconds a pytest process lives outside its own timed span:
    exec and interpreter start before site-init, shutdown after atexit."""
    if len(walls) != len(spans):
        sys.exit("timed %d baseline processes, %d spans" % (len(walls), len(spans)))
    return statistics.mean(w - (b - a) for w, (a, b, _) in zip(walls, spans))


def breakdown(view, spans, n, floor):
    """Where one evaluation's time went, from the node's stamps and the
    processes' own start and end times."""
    start = parse_stamp(view["started_at"])
    end = parse_stamp(view["finished_at"])
    collects = [s for s in spans if s[2] == "collect"]
    runs = [s for s in spans if s[2] == "run"]
    if len(collects) != 1 or len(runs) != n:
        sys.exit("expected 1 collection and %d runs, timed %d and %d"
                 % (n, len(collects), len(runs)))
    c = collects[0]
    # eval_time is these two stamps rounded to 10 ms; the stamps keep ms.
    eval_time = end - start
    run_life = sum(b - a for a, b, _ in runs)
    node_gap = mean_gap(runs)
    pytest_floor = min(floor, node_gap)
    return {
        "prep": (c[0] - start) * 1000.0,
        "collect_life": (c[1] - c[0]) * 1000.0,
        "collect_to_run": (runs[0][0] - c[1]) * 1000.0,
        "node_gap": node_gap * 1000.0,
        "floor": floor * 1000.0,
        "run_life": run_life / n * 1000.0,
        "tail": (end - runs[-1][1]) * 1000.0,
        "own": (eval_time - run_life - n * pytest_floor) / n * 1000.0,
        "own_no_collect": (eval_time - run_life - n * pytest_floor - (c[1] - c[0]) - pytest_floor)
        / n * 1000.0,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--modules", type=int, default=40)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--bytecode-modules", type=int, default=6)
    p.add_argument("--binary", default="target/release/evalmesh")
    p.add_argument("--keep", action="store_true")
    args = p.parse_args()
    if not os.path.isfile(args.binary):
        sys.exit("%s not found: run cargo build --release first" % args.binary)
    n = args.modules
    began = time.monotonic()

    scratch = tempfile.mkdtemp(prefix="evalmesh-bench-overhead-")
    nodes = []
    rows, pyc, modes = [], None, {}
    try:
        source = os.path.join(scratch, "source")
        modules = write_project(source, n)
        archive = zip_project(source)
        # The baseline's runs copy from their own base, as the node's copy
        # from the project it unpacked.
        base = os.path.join(scratch, "baseline")
        shutil.copytree(source, base)
        timing = os.path.join(scratch, "timing.log")
        runs = os.path.join(scratch, "runs")
        os.mkdir(runs)

        binary = os.path.abspath(args.binary)
        plain = Node(binary, scratch, "node-none", "none", False)
        nodes.append(plain)
        boxed = Node(binary, scratch, "node-bwrap", "bwrap", False)
        nodes.append(boxed)
        forked = Node(binary, scratch, "node-fork", "bwrap", True)
        nodes.append(forked)
        log = lambda msg: print(msg, file=sys.stderr, flush=True)
        for node in nodes:
            modes[node.name] = node.mode()
            log("%s on port %d, data dir %s, sandbox %s"
                % (node.name, node.port, node.data_dir, json.dumps(modes[node.name])))
            view, _ = node.evaluate(archive)
            log("%s: warm-up evaluation (builds the environment): eval_time %.2f s"
                % (node.name, check_view(view, n, node.name)))
        env_dir = plain.env_dir()
        launcher = plain.launcher()
        install_timing_hook(env_dir, timing)
        read_timings(timing)

        for rep in range(args.reps):
            base_s, walls = baseline(env_dir, launcher, base, modules, runs)
            floor = floor_of(walls, read_timings(timing))
            coll = collect(env_dir, launcher, base, runs, modules)
            inproc = in_process(env_dir, base, modules, runs)
            read_timings(timing)
            # Alternating, so that a drift in the machine's load does not
            # always fall on the same node.
            evals = {}
            for node in (nodes if rep % 2 == 0 else nodes[::-1]):
                view, wall = node.evaluate(archive)
                evals[node.name] = (view, wall, check_view(view, n, node.name))
            view, wall, ev = evals[plain.name]
            ev_bwrap = evals[boxed.name][2]
            ev_fork = evals[forked.name][2]
            row = {
                "inproc": inproc / n,
                "eval_time_fork": ev_fork,
                "fork": (ev_fork - inproc) / n * 1000.0,
                "baseline": base_s,
                "collect": coll,
                "eval_time": ev,
                "wall": wall,
                "eval_time_bwrap": ev_bwrap,
                "sandbox": (ev_bwrap - ev) / n * 1000.0,
                "raw": (ev - base_s) / n * 1000.0,
                "raw_no_collect": (ev - base_s - coll) / n * 1000.0,
            }
            row["base_module"] = statistics.mean(walls)
            row.update(breakdown(view, read_timings(timing), n, floor))
            rows.append(row)
            log("rep %d: baseline %.2f s, collect %.2f s, eval_time %.2f s (bwrap %.2f s), "
                "raw %.1f ms/module, own %.1f ms/module (%.1f without collection), "
                "sandbox %.1f ms/module; fork server: eval_time %.2f s, in-process pytest %.2f s, "
                "node and fork %.1f ms/module"
                % (rep, base_s, coll, ev, ev_bwrap, row["raw"], row["own"],
                   row["own_no_collect"], row["sandbox"], ev_fork, inproc, row["fork"]))

        if args.bytecode_modules > 0:
            other = no_bytecode_env(scratch, "python3")
            if other is None:
                log("uv not on PATH: no bytecode comparison")
            else:
                node_env, no_pyc = [], []
                for module in modules[: args.bytecode_modules]:
                    node_env.append(run_module(env_dir, launcher, base, module, runs))
                    no_pyc.append(run_module(other, launcher, base, module, runs))
                read_timings(timing)
                pyc = (statistics.median(node_env) * 1000.0, statistics.median(no_pyc) * 1000.0,
                       len(node_env), count_pyc(env_dir))
    finally:
        for node in nodes:
            node.stop()
        if args.keep:
            print("scratch kept in %s" % scratch, file=sys.stderr)
        else:
            shutil.rmtree(scratch, ignore_errors=True)

    def cells(key, fmt, scale=1.0):
        values = [r[key] * scale for r in rows]
        return tuple(fmt % v for v in (min(values), statistics.median(values), max(values)))

    print("%d modules of 1 test, %d repetitions, slots = 1, modules_per_task = 1, took %.0f s"
          % (n, args.reps, time.monotonic() - began))
    print("sandboxes: %s" % "; ".join(
        "%s: %s" % (name, ", ".join("%s %s" % kv for kv in sorted(mode.items())))
        for name, mode in modes.items()))
    print("load average at the end (1, 5, 15 min): %.2f %.2f %.2f" % os.getloadavg())
    print()
    print("| figure | min | median | max |")
    print("| --- | --- | --- | --- |")
    for label, key, fmt, scale in [
        ("baseline: %d pytest runs, sequential (s)" % n, "baseline", "%.2f", 1.0),
        ("baseline: one module's process, spawned to reaped, mean (ms)", "base_module", "%.0f", 1000.0),
        ("collection pass, once per evaluation (s)", "collect", "%.2f", 1.0),
        ("node `_run_info.eval_time`, no sandbox (s)", "eval_time", "%.2f", 1.0),
        ("client wall time, POST to done seen, no sandbox (s)", "wall", "%.2f", 1.0),
        ("raw: (eval_time - baseline) / N, collection counted (ms)", "raw", "%.1f", 1.0),
        ("raw: the same, collection not counted (ms)", "raw_no_collect", "%.1f", 1.0),
        ("**own time per module, process boundaries, collection counted (ms)**", "own", "%.1f", 1.0),
        ("own time per module, collection not counted (ms)", "own_no_collect", "%.1f", 1.0),
        ("node `_run_info.eval_time`, bwrap sandbox (s)", "eval_time_bwrap", "%.2f", 1.0),
        ("sandbox: (eval_time bwrap - eval_time none) / N (ms)", "sandbox", "%.1f", 1.0),
        ("pytest in one warm process, `pytest.main` per module, mean (ms)", "inproc", "%.1f", 1000.0),
        ("node `_run_info.eval_time`, fork server in bwrap (s)", "eval_time_fork", "%.2f", 1.0),
        ("**node and fork: (eval_time fork - in-process pytest) / N (ms)**", "fork", "%.1f", 1.0),
    ]:
        print("| %s | %s | %s | %s |" % ((label,) + cells(key, fmt, scale)))
    print()
    print("Where the node's time goes without a sandbox (ms, median of the repetitions):")
    print()
    print("| step | ms |")
    print("| --- | --- |")
    med = lambda key: statistics.median(r[key] for r in rows)
    for label, key in [
        ("evaluation start → collection process starts", "prep"),
        ("collection process, start to exit", "collect_life"),
        ("collection exits → first module process starts", "collect_to_run"),
        ("module process, site-init to atexit, mean (launcher and pytest's work)", "run_life"),
        ("between two module processes, node, mean", "node_gap"),
        ("of which a pytest process's own start and shutdown (baseline, mean)", "floor"),
        ("last module process exits → evaluation finished", "tail"),
    ]:
        print("| %s | %.1f |" % (label, med(key)))
    if pyc is not None:
        print()
        print("Bytecode: one module's pytest process, median of %d: %.0f ms with the node's "
              "environment (%d .pyc files), %.0f ms with an environment without compiled "
              "bytecode (PYTHONDONTWRITEBYTECODE=1 keeps pytest from caching it): %.0f ms a module."
              % (pyc[2], pyc[0], pyc[3], pyc[1], pyc[1] - pyc[0]))
    median = med("own")
    met = median < TARGET_MS
    print()
    print("target: node's own time under %.0f ms per module (median, process boundaries, "
          "collection counted, no sandbox): %s (%.1f ms); the bwrap sandbox adds %.1f ms "
          "a module (median)" % (TARGET_MS, "met" if met else "MISSED", median, med("sandbox")))
    fork = med("fork")
    fork_met = fork < FORK_TARGET_MS
    print("target: node and fork server overhead under %.0f ms per module (median, beyond "
          "pytest's own work in one warm process, collection counted, bwrap): %s (%.1f ms)"
          % (FORK_TARGET_MS, "met" if fork_met else "MISSED", fork))
    return 0 if met and fork_met else 1


if __name__ == "__main__":
    sys.exit(main())
