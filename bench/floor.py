#!/usr/bin/env python3
"""Benchmark: how fast the real corpus of realworld.py can be graded on this
machine at all, by ways that skip part of what evalmesh does, against plain
pytest in the same run. It measures the floor under the target "at most 0.6
x plain" of issue 10, not evalmesh.

The ways, all on the corpus's own environments, outside any node and
sandbox, two at a time where they run in parallel (CORES workers):

  a. plain: `python -m pytest` in each project folder, one after the other,
     on fresh copies (no bytecode), as in realworld.py;
  b. projects in parallel: the same, CORES projects at once (the longest
     first, by a), each project still one pytest process: parallel, with
     no isolation per module;
  c. a fork per module: one Python per environment and worker with pytest
     imported forks a child per module, which runs `pytest.main` on that
     module alone (stdout to /dev/null, no report read back); the bytecode
     is already compiled and the project is not collected first, so
     neither is counted;
  d. the same from a Python per project and worker that has collected the
     whole project in-process first, so that every module the project's
     tests import, its test modules included, is imported before the fork.

c and d are what a process per module costs at the least, with none of the
sandbox, collection, compilation, results or bookkeeping; d also gives up
the isolation between modules. A module whose child ends with a status
other than 0 or 1 fails the bench.

    python3 bench/floor.py [--reps N] [--cores N]
"""

import argparse
import json
import os
import queue
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import realworld

SERVER = r"""
import os, sys, json, pytest
mode, project = sys.argv[1], sys.argv[2]
if mode == "imported":
    os.chdir(project)
    sys.path.insert(0, project)
    saved, null = os.dup(1), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    pytest.main(["-q", "--collect-only", "-p", "no:cacheprovider"])
    sys.stdout.flush()
    os.dup2(saved, 1)
for line in sys.stdin:
    folder, module = json.loads(line)
    pid = os.fork()
    if pid == 0:
        os.chdir(folder)
        sys.path.insert(0, folder)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os._exit(pytest.main(["-p", "no:cacheprovider", module]))
    _, status = os.waitpid(pid, 0)
    print(os.waitstatus_to_exitcode(status), flush=True)
"""


def clean_env():
    env = {**os.environ, "LANG": "C.UTF-8"}
    for name in ("PYTHONPATH", "PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX"):
        env.pop(name, None)
    return env


def fresh_copies(folders, scratch):
    copies = os.path.join(scratch, "fresh")
    shutil.rmtree(copies, ignore_errors=True)
    places = {}
    for folder in folders:
        places[folder] = os.path.join(copies, os.path.basename(folder))
        shutil.copytree(folder, places[folder], ignore=shutil.ignore_patterns("__pycache__"))
    return places


def in_parallel(jobs, workers, run):
    """Runs `run(job, worker)` for every job, `workers` at a time, in the
    order given; answers the wall seconds."""
    todo = queue.Queue()
    for job in jobs:
        todo.put(job)

    def work(worker):
        while True:
            try:
                job = todo.get_nowait()
            except queue.Empty:
                return
            run(job, worker)

    started = time.monotonic()
    threads = [threading.Thread(target=work, args=(w,)) for w in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.monotonic() - started


def plain(folders, envs, scratch, workers, order):
    """Ways a and b: answers wall seconds and each project's own seconds."""
    places = fresh_copies(folders, scratch)
    each = {}

    def run(folder, _):
        started = time.monotonic()
        subprocess.run([os.path.join(envs[folder], "bin", "python"), "-m", "pytest", "-p", "no:cacheprovider",
                        "--continue-on-collection-errors"], cwd=places[folder], env=clean_env(),
                       stdin=subprocess.DEVNULL, capture_output=True)
        each[folder] = time.monotonic() - started

    return in_parallel(order, workers, run), each


def forked(folders, envs, modules, workers, mode, order):
    """Ways c and d: answers wall seconds and the modules whose child ended
    with a status other than 0 or 1."""
    servers = {}
    for folder in folders:
        for worker in range(workers):
            key = (folder if mode == "imported" else envs[folder], worker)
            if key not in servers:
                servers[key] = subprocess.Popen(
                    [os.path.join(envs[folder], "bin", "python"), "-c", SERVER, mode, folder], cwd=folder,
                    env=clean_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    # Ready when each has answered a module of no tests' worth: a probe
    # that waits out the server's start and, for d, its collection.
    for (key, _), server in servers.items():
        folder = key if mode == "imported" else next(f for f in folders if envs[f] == key)
        server.stdin.write(json.dumps([folder, "--version"]) + "\n")
        server.stdin.flush()
        server.stdout.readline()
    bad = []

    def run(job, worker):
        folder, module = job
        server = servers[(folder if mode == "imported" else envs[folder], worker)]
        server.stdin.write(json.dumps([folder, module]) + "\n")
        server.stdin.flush()
        status = int(server.stdout.readline())
        if status not in (0, 1):
            bad.append(f"{os.path.basename(folder)}/{module}: status {status}")

    jobs = [(folder, module) for folder in order for module in modules[folder]]
    wall = in_parallel(jobs, workers, run)
    for server in servers.values():
        server.stdin.close()
        server.wait()
    return wall, bad


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--cores", type=int, default=os.cpu_count())
    args = parser.parse_args()
    started = time.monotonic()
    scratch = tempfile.mkdtemp(prefix="evalmesh-floor-")
    try:
        folders = realworld.build_real(os.path.join(scratch, "real"))
        envs = {f: realworld.bench_env(os.path.join(f, "requirements.txt")) for f in folders}
        # Warm-up, and the modules (with tests) of each project; it leaves
        # bytecode in the folders for c and d.
        _, counts, _ = realworld.run_pytest(folders, envs, 0, scratch, fresh=False)
        modules = {f: sorted(counts[os.path.basename(f)]) for f in folders}
        _, each = plain(folders, envs, scratch, 1, folders)
        order = sorted(folders, key=lambda f: -each[f])
        times = {w: [] for w in ("plain", "projects in parallel", "a fork per module",
                                 "a fork per module, project imported")}
        problems = []
        for _ in range(args.reps):
            times["plain"].append(plain(folders, envs, scratch, 1, folders)[0])
            times["projects in parallel"].append(plain(folders, envs, scratch, args.cores, order)[0])
            for way, mode in (("a fork per module", "pytest"), ("a fork per module, project imported", "imported")):
                wall, bad = forked(folders, envs, modules, args.cores, mode, order)
                times[way].append(wall)
                problems.extend(bad)
            print("  " + ", ".join(f"{w} {t[-1]:.2f} s" for w, t in times.items()), flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    total = sum(len(m) for m in modules.values())
    print(f"\n{args.reps} repetitions, median wall time; {args.cores} workers; {len(folders)} projects, {total} modules;"
          f" load average at the end {load}; took {time.monotonic() - started:.0f} s\n")
    base = statistics.median(times["plain"])
    print("| way | wall (s) | vs plain |")
    print("| --- | ---: | ---: |")
    for way, walls in times.items():
        print(f"| {way} | {statistics.median(walls):.2f} | {statistics.median(walls) / base:.2f} |")
    if problems:
        print(f"\n{len(problems)} modules ended badly:")
        for p in sorted(set(problems)):
            print(f"- {p}")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
