#!/usr/bin/env python3
"""Benchmark: the makespan of one evaluation on 1, 2 and 4 nodes of one slot.

Each size gets a fresh cluster of release-binary nodes on loopback (the
first the seed of the others, slots = 1). A warm-up evaluation lets every
node build its environment; then the measured evaluation, a project of
--modules modules of one test that sleeps --sleep seconds, is submitted to
the first node and polled until done. The makespan is `_run_info.eval_time`.

Target (issues 3 and 10): 4 nodes at least 3.8x faster than 1. Exits with status 1
when missed.

Python 3 standard library only. Run from the crate root (about 3 minutes):

    cargo build --release && python3 bench/makespan.py

Options: --modules N (16), --sleep S (3), --sizes 1,2,4, --binary PATH
(target/release/evalmesh), --reps N (1).
"""

import argparse
import http.client
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile

TARGET = 3.8


def project_zip(modules, sleep_s):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("proj/requirements.txt", "")
        for i in range(modules):
            z.writestr(f"proj/tests/test_m{i:02}.py", f"import time\n\ndef test_sleep():\n    time.sleep({sleep_s})\n")
    return buf.getvalue()


def request(addr, method, path, body=None, headers=None):
    host, port = addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    conn.request(method, path, body=body, headers=headers or {})
    res = conn.getresponse()
    data = res.read()
    conn.close()
    return res.status, json.loads(data) if data else None


# Shared by the nodes of a benchmark cluster: a node with seeds refuses the
# default secret.
SECRET = "evalmesh-bench-secret-0123456789"


class Node:
    def __init__(self, binary, root, name, seed, slots=1):
        self.dir = os.path.join(root, name)
        os.makedirs(self.dir)
        config = os.path.join(self.dir, "node.toml")
        seeds = f'["{seed}"]' if seed else "[]"
        with open(config, "w") as f:
            f.write(f'[node]\nlisten = "127.0.0.1:0"\ndata_dir = "{self.dir}/data"\nslots = {slots}\n'
                    f'[cluster]\nseeds = {seeds}\nsecret = "{SECRET}"\n')
        self.log = os.path.join(self.dir, "node.log")
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen([binary, "node", "--config", config], stdout=log, stderr=log,
                                         env={**os.environ, "RUST_LOG": "info"})
        self.addr = wait(lambda: self._served(), 30, f"{name} serving")

    def _served(self):
        with open(self.log) as f:
            m = re.search(r"serving on (127\.0\.0\.1:\d+)", f.read())
        return m.group(1) if m else None

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def wait(probe, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.1)
    sys.exit(f"timed out waiting for {what}")


def evaluate(addr, zip_bytes, timeout):
    status, body = request(addr, "POST", "/evaluation", zip_bytes, {"Content-Type": "application/zip"})
    if status != 202:
        sys.exit(f"submission refused: {status} {body}")
    ident = body["id"]

    def done():
        _, e = request(addr, "GET", f"/evaluation/{ident}")
        return e if e and e["status"] in ("done", "failed") else None

    return wait(done, timeout, f"evaluation {ident}")


def run_size(binary, size, args):
    root = tempfile.mkdtemp(prefix=f"evalmesh-makespan-{size}-")
    nodes = []
    try:
        for i in range(size):
            nodes.append(Node(binary, root, f"node{i}", nodes[0].addr if nodes else None))

        def all_alive():
            _, net = request(nodes[0].addr, "GET", "/network")
            return sum(m["status"] == "alive" for m in net["members"]) == size

        wait(all_alive, 30, f"{size} members alive")
        warm = evaluate(nodes[0].addr, project_zip(2 * size, 0.5), 600)
        warmed = {r["node"] for r in warm["module_results"]["proj"].values()}
        results = []
        for _ in range(args.reps):
            e = evaluate(nodes[0].addr, project_zip(args.modules, args.sleep), 1200)
            passed = e["_run_info"]["passed"]
            if passed != args.modules:
                sys.exit(f"expected {args.modules} passed, got {passed}")
            used = len({r["node"] for r in e["module_results"]["proj"].values()})
            results.append((e["_run_info"]["eval_time"], used))
        return results, len(warmed)
    finally:
        for n in nodes:
            n.stop()
        shutil.rmtree(root, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modules", type=int, default=16)
    parser.add_argument("--sleep", type=float, default=3.0)
    parser.add_argument("--sizes", default="1,2,4")
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--binary", default="target/release/evalmesh")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"{args.modules} modules of one test sleeping {args.sleep} s; nodes of one slot\n")
    print("| nodes | makespan (s) | nodes used | speed-up vs 1 |")
    print("| ---: | ---: | ---: | ---: |")
    best = {}
    for size in sizes:
        results, _ = run_size(args.binary, size, args)
        best[size] = min(t for t, _ in results)
        used = max(u for _, u in results)
        speedup = best[sizes[0]] / best[size]
        print(f"| {size} | {best[size]:.2f} | {used} | {speedup:.2f}x |", flush=True)
    if 1 in best and 4 in best:
        ratio = best[1] / best[4]
        verdict = "met" if ratio >= TARGET else "MISSED"
        print(f"\n4 nodes vs 1: {ratio:.2f}x (target {TARGET}x): {verdict}")
        sys.exit(0 if ratio >= TARGET else 1)


if __name__ == "__main__":
    main()
