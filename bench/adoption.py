#!/usr/bin/env python3
"""Benchmark: from a supervisor's SIGKILL to its evaluation's adoption, and
to its completion, with the default settings.

Each run starts a fresh cluster of --nodes release-binary nodes on loopback
(the first the seed of the others, slots = 1, every timing at its default:
probes every 300 ms, suspicion 2 s, lock lease 3 s). A warm-up evaluation
lets every node build its environment. The measured evaluation — --modules
modules of one test sleeping --sleep seconds — is submitted to the second
node; once --before modules have a result, that node is SIGKILLed. The
survivors are polled every 20 ms: adoption is the first moment one of them
serves the evaluation in term 1, completion the moment it is done. The
remaining work itself takes (modules - before) * sleep / (nodes - 1)
seconds, which the table shows beside the completion time.

Python 3 standard library only; shares the cluster helpers of makespan.py.
Run from the crate root (about 2 minutes):

    cargo build --release && python3 bench/adoption.py

Options: --nodes N (4), --modules N (24), --sleep S (1), --before N (6),
--runs N (5), --binary PATH (target/release/evalmesh).
"""

import argparse
import shutil
import statistics
import tempfile
import time

from makespan import Node, evaluate, project_zip, request, wait


def one_run(args):
    root = tempfile.mkdtemp(prefix="evalmesh-adoption-")
    nodes = []
    try:
        for i in range(args.nodes):
            nodes.append(Node(args.binary, root, f"node{i}", nodes[0].addr if nodes else None))

        def all_alive():
            _, net = request(nodes[0].addr, "GET", "/network")
            return sum(m["status"] == "alive" for m in net["members"]) == args.nodes

        wait(all_alive, 30, "every member alive")
        evaluate(nodes[0].addr, project_zip(2 * args.nodes, 0.2), 600)
        supervisor, watcher = nodes[1], nodes[2]
        status, body = request(supervisor.addr, "POST", "/evaluation", project_zip(args.modules, args.sleep),
                               {"Content-Type": "application/zip"})
        if status != 202:
            raise SystemExit(f"submission refused: {status} {body}")
        ident = body["id"]

        def progressed():
            _, e = request(supervisor.addr, "GET", f"/evaluation/{ident}")
            return e["_run_info"]["modules_done"] >= args.before

        wait(progressed, 120, f"{args.before} modules done")
        supervisor.proc.kill()
        killed = time.monotonic()
        supervisor.proc.wait()
        adopted = None
        while True:
            _, e = request(watcher.addr, "GET", f"/evaluation/{ident}")
            now = time.monotonic()
            if adopted is None and e and e.get("epoch", 0) >= 1:
                adopted = now - killed
            if e and e["status"] in ("done", "failed"):
                break
            if now - killed > 300:
                raise SystemExit("not finished 300 s after the kill")
            time.sleep(0.02)
        passed = e["_run_info"]["passed"]
        if e["status"] != "done" or passed != args.modules:
            raise SystemExit(f"expected done with {args.modules} passed, got {e['status']} with {passed}")
        return adopted, now - killed
    finally:
        for n in nodes:
            if n.proc.poll() is None:
                n.stop()
        shutil.rmtree(root, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--modules", type=int, default=24)
    parser.add_argument("--sleep", type=float, default=1.0)
    parser.add_argument("--before", type=int, default=6)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--binary", default="target/release/evalmesh")
    args = parser.parse_args()
    remaining = (args.modules - args.before) * args.sleep / (args.nodes - 1)
    print(f"{args.nodes} nodes of one slot, {args.modules} modules of {args.sleep} s, supervisor killed after "
          f"{args.before}; the remaining work alone takes about {remaining:.1f} s\n")
    print("| run | kill → adopted (s) | kill → done (s) |")
    print("| ---: | ---: | ---: |")
    adoptions, completions = [], []
    for run in range(1, args.runs + 1):
        adopted, done = one_run(args)
        adoptions.append(adopted)
        completions.append(done)
        print(f"| {run} | {adopted:.2f} | {done:.2f} |", flush=True)
    print(f"| median | {statistics.median(adoptions):.2f} | {statistics.median(completions):.2f} |")
    print(f"| worst | {max(adoptions):.2f} | {max(completions):.2f} |")


if __name__ == "__main__":
    main()
