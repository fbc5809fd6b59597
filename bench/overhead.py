#!/usr/bin/env python3
"""Benchmark: the node's own time per module, beyond pytest's.

Builds a project of N modules of one trivial test each and starts the release
binary (slots = 1, modules_per_task = 1, its own data dir). A warm-up
evaluation builds the environment; then, repetition by repetition:

- baseline: each module in its own pytest process, one after the other, run
  by this script with the environment's python and exactly the node's command
  line (src/executor/pytest.rs, `base_command` + `run`);
- collect: one collection pass with the node's plugin, as the node runs once
  per project per evaluation (`base_command` + `collect`);
- node: the same project submitted as a zip; `_run_info.eval_time` read once
  the evaluation is done.

Two figures per repetition:

1. raw: (eval_time - baseline) / N, the baseline taken from the separate
   sequential run. On a shared 2-core machine its noise (seconds over a 40 s
   run) is larger than the 2 s that 50 ms x 40 modules amounts to.
2. own time, timed at process boundaries (the verdict): a hook installed in
   the environment (a .pth file) makes every pytest process append its
   start (at interpreter site-init) and end (atexit) times to a file. Then
       own = (eval_time - sum(module processes' spans) - N * floor) / N
   where floor is what a pytest process costs outside its span (exec and
   interpreter start before site-init, shutdown after atexit), measured on
   the baseline's processes as wall time minus span, and capped at the
   node's own mean gap between two module processes, so that a harness
   slower than the node cannot credit the node with negative time. pytest's
   work is thus subtracted as measured inside the same evaluation, and load
   on the machine mostly cancels out. The collection pass is the node's own work
   and is counted; the figure without it is shown too, with a breakdown of
   where the node's time goes.

Side figure: the same modules run with the node's environment and with one
built by uv without --compile-bytecode, alternating module by module, and the
number of .pyc files in the node's environment. pytest runs with
PYTHONDONTWRITEBYTECODE=1, so an environment without compiled bytecode makes
every module's process compile pytest again (cb36af8 fixed that for uv; this
guards it).

Target (issue): under 50 ms per module. Exits with status 1 when the median of
figure 2 (collection counted) misses it.

Python 3 standard library only. Run from the crate root (about 5 minutes on
2 cores):

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
READY = ".evalmesh-ready"
PLUGIN_MODULE = "evalmesh_collect"
OUTPUT_ENV = "EVALMESH_COLLECT_OUT"
TIMING_ENV = "EVALMESH_BENCH_TIMING"
TIMING_HOOK = '''\
"""evalmesh bench: appends this process's start and end times to $%s."""
import atexit, os, sys, time
_START = time.time()
_OUT = os.environ.get("%s")
def _record():
    kind = "collect" if "--collect-only" in sys.argv else "run"
    line = "%%.6f %%.6f %%s\\n" %% (_START, time.time(), kind)
    fd = os.open(_OUT, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
if _OUT:
    atexit.register(_record)
''' % (TIMING_ENV, TIMING_ENV)


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


# --- the node -----------------------------------------------------------------


class Node:
    """The release binary on 127.0.0.1:0 with its own data dir."""

    def __init__(self, binary, scratch):
        self.data_dir = os.path.join(scratch, "node")
        self.timing = os.path.join(scratch, "timing-node.log")
        config = os.path.join(scratch, "node.toml")
        with open(config, "w") as f:
            f.write(
                "[node]\n"
                'listen = "127.0.0.1:0"\n'
                'data_dir = "%s"\n'
                "slots = 1\n"
                "[executor]\n"
                "modules_per_task = 1\n"
                "use_uv = true\n" % self.data_dir
            )
        self.log_path = os.path.join(scratch, "node.log")
        env = dict(os.environ)
        env[TIMING_ENV] = self.timing
        self.proc = subprocess.Popen(
            [binary, "node", "--config", config],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
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
            sys.exit("node did not start; its log is in %s" % self.log_path)

    def request(self, method, path, body=None, headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, json.loads(resp.read() or b"null")
        except OSError as e:
            code = self.proc.poll()
            state = "still runs" if code is None else "exited with %s" % code
            sys.exit("%s %s: %s; the node %s, its log is in %s (use --keep)"
                     % (method, path, e, state, self.log_path))
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
            sys.exit("submission refused: %s %s" % (status, answer))
        path = "/evaluation/%s" % answer["id"]
        while time.monotonic() - started < timeout:
            status, view = self.request("GET", path)
            if status == 200 and view["status"] in ("done", "failed"):
                return view, time.monotonic() - started
            time.sleep(poll)
        sys.exit("evaluation %s not done after %s s" % (answer["id"], timeout))

    def env_dir(self):
        ready = glob.glob(os.path.join(self.data_dir, "envs", "*", READY))
        if len(ready) != 1:
            sys.exit("expected one built environment, found %d" % len(ready))
        return os.path.dirname(ready[0])

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def install_timing_hook(env_dir):
    site = glob.glob(os.path.join(env_dir, "lib", "python*", "site-packages"))
    if len(site) != 1:
        sys.exit("cannot find the site-packages of %s" % env_dir)
    with open(os.path.join(site[0], "_evalmesh_bench_timing.py"), "w") as f:
        f.write(TIMING_HOOK)
    with open(os.path.join(site[0], "_evalmesh_bench_timing.pth"), "w") as f:
        f.write("import _evalmesh_bench_timing\n")


# --- the baseline: the node's pytest command lines, run by hand ------------------


def base_command(python, root):
    # src/executor/pytest.rs, base_command
    return [
        python, "-m", "pytest", "-p", "no:cacheprovider",
        "--continue-on-collection-errors", "--maxfail=0", "--rootdir", root,
    ]


def child_env(extra=None):
    env = dict(os.environ)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.pop("PYTEST_ADDOPTS", None)
    env.pop("PYTHONPATH", None)
    env.update(extra or {})
    return env


def run_child(cmd, root, env):
    out = subprocess.run(
        cmd, cwd=root, env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    return out.returncode, out.stdout.decode(errors="replace") + out.stderr.decode(errors="replace")


def run_module(python, root, module, scratch, env):
    """Seconds of one module run, as the node runs it."""
    tmp = tempfile.mkdtemp(prefix="pytest-", dir=scratch)
    xml = os.path.join(tmp, "junit.xml")
    # src/executor/pytest.rs, run
    cmd = base_command(python, root) + [
        "-q", "-o", "junit_family=xunit1", "--junitxml", xml, "--", module,
    ]
    started = time.monotonic()
    code, output = run_child(cmd, root, env)
    elapsed = time.monotonic() - started
    if code != 0 or not os.path.exists(xml):
        sys.exit("baseline run of %s failed (%s):\n%s" % (module, code, output))
    shutil.rmtree(tmp)
    return elapsed


def baseline(python, root, modules, scratch, timing):
    """Seconds to run every module in its own pytest, one after the other,
    and each process's wall time (spawned to reaped)."""
    env = child_env({TIMING_ENV: timing})
    started = time.monotonic()
    walls = [run_module(python, root, module, scratch, env) for module in modules]
    return time.monotonic() - started, walls


def collect(python, root, plugin_dir, scratch, modules):
    """Seconds of one collection pass as the node runs it."""
    tmp = tempfile.mkdtemp(prefix="pytest-", dir=scratch)
    report = os.path.join(tmp, "collected.json")
    env = child_env({"PYTHONPATH": plugin_dir, OUTPUT_ENV: report})
    # src/executor/pytest.rs, collect
    cmd = base_command(python, root) + [
        "--collect-only", "-q", "--continue-on-collection-errors", "-p", PLUGIN_MODULE,
    ]
    started = time.monotonic()
    code, output = run_child(cmd, root, env)
    elapsed = time.monotonic() - started
    with open(report) as f:
        found = json.load(f)["modules"]
    if code != 0 or len(found) != len(modules):
        sys.exit("collection failed (%s):\n%s" % (code, output))
    shutil.rmtree(tmp)
    return elapsed


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
    return os.path.join(env_dir, "bin", "python")


def count_pyc(env_dir):
    return sum(f.endswith(".pyc") for _, _, files in os.walk(env_dir) for f in files)


# --- report -------------------------------------------------------------------------


def check_view(view, n):
    info = view["_run_info"]
    if view["status"] != "done" or info["passed"] != n or info["modules_done"] != n:
        sys.exit("unexpected evaluation: %s" % json.dumps(info))
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
    node = None
    rows, pyc = [], None
    try:
        source = os.path.join(scratch, "source")
        modules = write_project(source, n)
        archive = zip_project(source)
        # The baseline runs in a copy, as the node runs in its own workspace.
        root = os.path.join(scratch, "baseline")
        shutil.copytree(source, root)
        base_timing = os.path.join(scratch, "timing-baseline.log")

        node = Node(os.path.abspath(args.binary), scratch)
        log = lambda msg: print(msg, file=sys.stderr, flush=True)
        log("node on port %d, data dir %s" % (node.port, node.data_dir))
        view, _ = node.evaluate(archive)
        log("warm-up evaluation (builds the environment): eval_time %.2f s"
            % check_view(view, n))
        env_dir = node.env_dir()
        python = os.path.join(env_dir, "bin", "python")
        plugin_dir = os.path.join(node.data_dir, "plugins")
        install_timing_hook(env_dir)
        read_timings(node.timing)

        for rep in range(args.reps):
            base, walls = baseline(python, root, modules, scratch, base_timing)
            floor = floor_of(walls, read_timings(base_timing))
            coll = collect(python, root, plugin_dir, scratch, modules)
            read_timings(base_timing)
            view, wall = node.evaluate(archive)
            ev = check_view(view, n)
            row = {
                "baseline": base,
                "collect": coll,
                "eval_time": ev,
                "wall": wall,
                "raw": (ev - base) / n * 1000.0,
                "raw_no_collect": (ev - base - coll) / n * 1000.0,
            }
            row["base_module"] = statistics.mean(walls)
            row.update(breakdown(view, read_timings(node.timing), n, floor))
            rows.append(row)
            log("rep %d: baseline %.2f s, collect %.2f s, eval_time %.2f s, raw %.1f ms/module, "
                "own %.1f ms/module (%.1f without collection)"
                % (rep, base, coll, ev, row["raw"], row["own"], row["own_no_collect"]))

        if args.bytecode_modules > 0:
            other = no_bytecode_env(scratch, "python3")
            if other is None:
                log("uv not on PATH: no bytecode comparison")
            else:
                env = child_env()
                node_env, no_pyc = [], []
                for module in modules[: args.bytecode_modules]:
                    node_env.append(run_module(python, root, module, scratch, env))
                    no_pyc.append(run_module(other, root, module, scratch, env))
                pyc = (statistics.median(node_env) * 1000.0, statistics.median(no_pyc) * 1000.0,
                       len(node_env), count_pyc(env_dir))
    finally:
        if node is not None:
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
    print("load average at the end (1, 5, 15 min): %.2f %.2f %.2f" % os.getloadavg())
    print()
    print("| figure | min | median | max |")
    print("| --- | --- | --- | --- |")
    for label, key, fmt, scale in [
        ("baseline: %d pytest runs, sequential (s)" % n, "baseline", "%.2f", 1.0),
        ("baseline: one module's process, spawned to reaped, mean (ms)", "base_module", "%.0f", 1000.0),
        ("collection pass, once per evaluation (s)", "collect", "%.2f", 1.0),
        ("node `_run_info.eval_time` (s)", "eval_time", "%.2f", 1.0),
        ("client wall time, POST to done seen (s)", "wall", "%.2f", 1.0),
        ("raw: (eval_time - baseline) / N, collection counted (ms)", "raw", "%.1f", 1.0),
        ("raw: the same, collection not counted (ms)", "raw_no_collect", "%.1f", 1.0),
        ("**own time per module, process boundaries, collection counted (ms)**", "own", "%.1f", 1.0),
        ("own time per module, collection not counted (ms)", "own_no_collect", "%.1f", 1.0),
    ]:
        print("| %s | %s | %s | %s |" % ((label,) + cells(key, fmt, scale)))
    print()
    print("Where the node's time goes (ms, median of the repetitions):")
    print()
    print("| step | ms |")
    print("| --- | --- |")
    med = lambda key: statistics.median(r[key] for r in rows)
    for label, key in [
        ("evaluation start → collection process starts", "prep"),
        ("collection process, start to exit", "collect_life"),
        ("collection exits → first module process starts", "collect_to_run"),
        ("module process, site-init to atexit, mean (pytest's work)", "run_life"),
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
          "collection counted): %s (%.1f ms)" % (TARGET_MS, "met" if met else "MISSED", median))
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
