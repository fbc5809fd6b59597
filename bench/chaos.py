#!/usr/bin/env python3
"""Chaos trials: a random node SIGKILLed at a random moment of an evaluation.

Each trial starts a fresh cluster of --nodes release-binary nodes on loopback
(slots = 1, default timings), lets every node build its environment with a
warm-up evaluation, then submits the measured evaluation — --modules modules
of one passing test that sleeps --sleep seconds and one failing test — to a
random node. At a random moment between the submission and the time the
evaluation takes without a kill (measured first, --baseline runs), a random
node is SIGKILLed: the supervisor, a worker, the coordinator, whichever the
draw gives. The survivors are polled until one of them serves the evaluation
closed, for at most 300 s.

Per trial it reports whether the evaluation was lost (not closed `done`
within 300 s), how many modules have no result (missing) and how many were
counted more than once (doubled: a module whose tallies are not exactly one
passed and one failed), whether every survivor gives the same answer, and
the extra time against the median run without a kill. Target: 0 lost, 0
missing, 0 doubled, one answer. Exits with status 1 when missed.

Python 3 standard library only; shares the cluster helpers of makespan.py.
Run from the crate root (about 5 minutes at 20 trials):

    cargo build --release && python3 bench/chaos.py

Options: --trials N (20), --nodes N (4), --modules N (16), --sleep S (0.5),
--baseline N (3), --seed N (random; printed, to replay the draws),
--binary PATH (target/release/evalmesh).
"""

import argparse
import io
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
import zipfile

from makespan import Node, evaluate, project_zip, request, wait


def graded_zip(modules, sleep_s):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("proj/requirements.txt", "")
        for i in range(modules):
            z.writestr(f"proj/tests/test_m{i:02}.py",
                       f"import time\n\ndef test_pass():\n    time.sleep({sleep_s})\n\n"
                       f"def test_fail():\n    assert {i} < 0\n")
    return buf.getvalue()


def start_cluster(binary, root, n):
    nodes = []
    for i in range(n):
        nodes.append(Node(binary, root, f"node{i}", nodes[0].addr if nodes else None))

    def all_alive():
        _, net = request(nodes[0].addr, "GET", "/network")
        return sum(m["status"] == "alive" for m in net["members"]) == n

    wait(all_alive, 30, "every member alive")
    evaluate(nodes[0].addr, project_zip(2 * n, 0.1), 600)
    return nodes


def get(addr, path):
    try:
        return request(addr, "GET", path)
    except OSError:
        return None, None


def one_trial(args, rng, baseline):
    """Runs one trial; `baseline` None runs it without a kill."""
    root = tempfile.mkdtemp(prefix="evalmesh-chaos-")
    nodes = []
    try:
        nodes = start_cluster(args.binary, root, args.nodes)
        target = rng.randrange(args.nodes)
        status, body = request(nodes[target].addr, "POST", "/evaluation", graded_zip(args.modules, args.sleep),
                               {"Content-Type": "application/zip"})
        if status != 202:
            sys.exit(f"submission refused: {status} {body}")
        ident, started = body["id"], time.monotonic()
        victim, at = None, None
        if baseline is not None:
            victim, at = rng.randrange(args.nodes), rng.uniform(0, baseline)
        while True:
            now = time.monotonic() - started
            if victim is not None and nodes[victim].proc.poll() is None and now >= at:
                nodes[victim].proc.kill()
                nodes[victim].proc.wait()
            live = [n for i, n in enumerate(nodes) if i != victim or now < at]
            _, e = get(live[0].addr, f"/evaluation/{ident}")
            if e and e.get("status") in ("done", "failed", "cancelled"):
                break
            if now > 300:
                e = None
                break
            time.sleep(0.05)
        took = time.monotonic() - started
        survivors = [n for i, n in enumerate(nodes) if i != victim]
        answers = set()
        for n in survivors:
            _, a = get(n.addr, f"/evaluation/{ident}")
            answers.add(json.dumps([a.get("status"), a.get("epoch"), a.get("module_results")], sort_keys=True)
                        if a else "none")
        results = (e or {}).get("module_results", {}).get("proj", {})
        missing = sum(f"tests/test_m{i:02}.py" not in results for i in range(args.modules))
        doubled = sum(1 for r in results.values() if (r.get("passed"), r.get("failed")) != (1, 1))
        lost = e is None or e["status"] != "done"
        who = "none" if victim is None else role(nodes, victim, target)
        return {"victim": who, "at": at, "took": took, "lost": lost, "missing": missing, "doubled": doubled,
                "answers": len(answers)}
    finally:
        for n in nodes:
            if n.proc.poll() is None:
                n.stop()
        shutil.rmtree(root, ignore_errors=True)


def role(nodes, victim, supervisor):
    highest = max(range(len(nodes)), key=lambda i: tuple(map(int, nodes[i].addr.replace(":", ".").split("."))))
    roles = ["supervisor"] if victim == supervisor else []
    if victim == highest:
        roles.append("coordinator")
    return "+".join(roles) or "worker"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--modules", type=int, default=16)
    parser.add_argument("--sleep", type=float, default=0.5)
    parser.add_argument("--baseline", type=int, default=3)
    parser.add_argument("--seed", type=int, default=random.randrange(1 << 32))
    parser.add_argument("--binary", default="target/release/evalmesh")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    print(f"seed {args.seed}: {args.trials} trials on {args.nodes} nodes of one slot, {args.modules} modules "
          f"of {args.sleep} s and one failing test each\n")
    runs = [one_trial(args, rng, None)["took"] for _ in range(args.baseline)]
    baseline = statistics.median(runs)
    print(f"without a kill: {', '.join(f'{t:.2f}' for t in runs)} s (median {baseline:.2f} s)\n")
    print("| trial | killed | at (s) | lost | missing | doubled | answers | took (s) | extra (s) |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    trials = []
    for t in range(1, args.trials + 1):
        r = one_trial(args, rng, baseline)
        trials.append(r)
        print(f"| {t} | {r['victim']} | {r['at']:.2f} | {int(r['lost'])} | {r['missing']} | {r['doubled']} | "
              f"{r['answers']} | {r['took']:.2f} | {r['took'] - baseline:+.2f} |", flush=True)
    extra = [r["took"] - baseline for r in trials]
    lost = sum(r["lost"] for r in trials)
    missing = sum(r["missing"] for r in trials)
    doubled = sum(r["doubled"] for r in trials)
    split = sum(r["answers"] != 1 for r in trials)
    print(f"\nlost {lost}, missing {missing}, doubled {doubled}, trials with more than one answer {split}; "
          f"extra time median {statistics.median(extra):+.2f} s, worst {max(extra):+.2f} s")
    if lost or missing or doubled or split:
        sys.exit(1)


if __name__ == "__main__":
    main()
