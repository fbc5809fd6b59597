#!/usr/bin/env python3
"""Benchmark: real projects' own test suites, and a class of small projects,
graded five ways: plain pytest (fresh, and with its bytecode kept),
pytest-xdist, evalmesh on 1 node and on 4.

Two corpora:

- real: pure-Python projects built from their pinned PyPI sdists (file name
  and sha256 checked, downloaded into bench/.work/, which git ignores). Each
  becomes a folder holding its package source at the top (so that the tests
  import it as they would import it installed), its own tests, a pytest.ini
  carrying the options of the project's own pytest configuration that change
  outcomes, and a requirements.txt of its pinned test dependencies. Modules
  whose result depends on the order they run in or on the machine are left
  out, each with its reason in EXCLUDED.
- class: 60 generated student projects of 2 test modules of 3 trivial tests,
  all with the same requirements.txt.

Every requirements.txt pins pytest and pytest-xdist, so the ways run the
same environment. Each corpus is measured, all warm, in one run:

  a. plain: `python -m pytest` in each project folder, one after the other,
     on a fresh copy of the projects (no bytecode), as a grader runs it on
     submissions it has not run before;
  b. plain, bytecode kept: the same in the same folders each time, where
     the run before left its bytecode;
  c. xdist: `python -m pytest -n CORES` in each folder, fresh as in a;
  d. evalmesh on 1 node of the release binary with slots = CORES;
  e. evalmesh on 4 nodes of 1 slot each on loopback (the first the seed).

Python writes bytecode in a, b and c as it does by default (the bench clears
PYTHONDONTWRITEBYTECODE); evalmesh gets each evaluation as a new zip, and so
compiles each project once per node.

Warm: the bench's own environments (one per requirements file, built with
uv like the node's) exist and every way has run the corpus once, untimed,
before the --reps timed repetitions; each cluster is warmed up by whole
evaluations until no node builds another environment (at least two). The figure is the median wall time:
for a, b and c from the first pytest started to the last ended (the copies
are made before), for d and e
from the POST of the corpus's zip (all projects in one evaluation) to the
poll that sees it done (every 0.1 s); `_run_info.eval_time` is shown too.

Counts: per module, passed/failed/skipped/errors. For a and b a plugin
(installed into the bench's environments only, passed with -p) reads the
terminal reporter's statistics at the end of the session, which are what
pytest's summary line counts: passed and xpassed count passed, skipped and
xfailed skipped, failed failed, error errors. Each module's counts must be
the same in all the ways, in every repetition; the bench lists every
difference and exits with status 1 if there is one. A module that pytest
skips at import (`pytest.skip(allow_module_level=True)`, a module-level
`importorskip`) collects no test: pytest counts it as 1 skipped, evalmesh
grades only modules that collected tests and does not list it. Such modules
are shown apart and are not a difference.

Python 3 standard library only (plus uv to build the bench's environments).
Run from the crate root:

    cargo build --release && python3 bench/realworld.py

Options: --only real|class (both), --reps N (3), --cores N (os.cpu_count()),
--binary PATH (target/release/evalmesh), --keep (leave the nodes' folders).
"""

import argparse
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.parse
import urllib.request

from makespan import Node, evaluate, request, wait
from overhead import zip_project

HERE = os.path.dirname(os.path.abspath(__file__))
WORK = os.path.join(HERE, ".work")
# The index's simple API (PEP 691, JSON), as pip and uv read it: it lists
# every file of a project with where it is (a URL that may be relative).
SIMPLE_URL = "https://pypi.org/simple/{name}/"

# In every requirements.txt: every way runs the same pytest and plugins.
PYTEST = ["pytest==9.2.0", "pytest-xdist==3.8.0"]


class Project:
    """One real project: where its sdist is, what of it the project folder
    holds, and what it needs."""

    def __init__(self, name, version, filename, sha256, layout, requirements=(), ini=""):
        self.name = name
        self.version = version
        self.filename = filename
        self.sha256 = sha256
        # sdist path (below its top folder) -> path in the project folder.
        self.layout = layout
        self.requirements = list(requirements)
        # The options of the project's own pytest configuration that change
        # what runs or how it counts (markers, warnings as errors, strict
        # xfail, test file names); coverage and output options are dropped.
        self.ini = ini


# The newest versions on PyPI on 2026-12-05, each shipping its tests in its
# sdist, its suite running offline in seconds. Tried and left out: attrs,
# more-itertools, packaging and pyparsing (their suites take 50 to 70 s of
# plain pytest each here, hypothesis, subtests by the ten thousand and 64,000
# parametrized cases), wcwidth (every test asserts, in an autouse fixture,
# that WCWIDTH_PYTHON in the environment matches the C extension it loaded:
# the node clears the environment of its runs), sortedcontainers and tomli
# (no tests in the sdist).
PROJECTS = [
    Project("boltons", "26.2.0", "boltons-26.2.0.tar.gz",
            "d39cfd15c1a1c3bd4d705c82252fa9edb8e4f5e8cc039f8e39afac7b1b47e92c",
            {"boltons": "boltons", "tests": "tests"}, [],
            "testpaths = tests\n"),
    Project("cachetools", "8.0.2", "cachetools-8.0.2.tar.gz",
            "30ac523adfc118b51d2b2e7bad8a0ddb31370dfe2700c7f10ca224f36ccf81e0",
            {"src/cachetools": "cachetools", "tests": "tests"}, [],
            "testpaths = tests\n"),
    Project("click", "8.5.1", "click-8.5.1.tar.gz",
            "9bbfada76703fd1d784b83eea012e3e8c6a001a876543ef104fa56aaaeb072b4",
            {"src/click": "click", "tests": "tests"}, [],
            "testpaths = tests\nfilterwarnings = error\nmarkers = stress: high-iteration stress tests\n"
            "addopts = -m 'not stress'\n"),
    Project("idna", "3.21", "idna-3.21.tar.gz",
            "13c8b14853c5c336eaab526f3390817e9c8fcd8fa175abdd1a7480a5c94f99cb",
            {"idna": "idna", "tests": "tests"}, [],
            "testpaths = tests\n"),
    Project("iniconfig", "2.3.1", "iniconfig-2.3.1.tar.gz",
            "67f4b9c50da0dedf52af349e7749a80a9057a5031199791b906c3bb3ae878960",
            {"src/iniconfig": "iniconfig", "testing": "testing"}, [],
            "testpaths = testing\n"),
    Project("itsdangerous", "2.2.0", "itsdangerous-2.2.0.tar.gz",
            "e0050c0b7da1eea53ffaf149c0cfbb5c6e2e2b69c4bef22c81fa6eb73e5f6173",
            {"src/itsdangerous": "itsdangerous", "tests": "tests"}, ["freezegun==1.5.5"],
            "testpaths = tests\nfilterwarnings = error\n"),
    Project("markupsafe", "3.0.4", "markupsafe-3.0.4.tar.gz",
            "2e9ad7dd851bf45fab9f75cbff4cb493fee9979e8d8c7c9c3ee119022518edd6",
            {"src/markupsafe": "markupsafe", "tests": "tests"}, [],
            "testpaths = tests\nfilterwarnings = error\nmarkers = thread_unsafe: not thread safe\n"),
    Project("pyasn1", "0.6.5", "pyasn1-0.6.5.tar.gz",
            "6b11616a6bcf3a40e635f082bb232fa57b5e0dd7f517bd7ddd69ec3794508a47",
            {"pyasn1": "pyasn1", "tests": "tests"}, [],
            "testpaths = tests\n"),
    Project("python-dateutil", "4.0.0", "python_dateutil-4.0.0.tar.gz",
            "d7295ff14fdc0f92f662100bfb6c551d160ca090f2939f1ec5b9794265c03f06",
            {"src/dateutil": "dateutil", "tests": "tests"},
            ["tzdata==2026.6", "freezegun==1.5.5", "hypothesis==6.170.27", "attrs==26.1.0"],
            "testpaths = tests\nxfail_strict = true\n"
            "filterwarnings =\n    error\n    error::DeprecationWarning\n    error::PendingDeprecationWarning\n"
            "markers =\n    gettz\n    import_star\n    isoparser\n    parserinfo\n    rrule\n    rruleset\n"
            "    rrulestr\n    smoke\n    tz_resolve_imaginary\n    tzdata_properties\n    tzfile\n    tzlocal\n"
            "    tzoffset\n    tzstr\n    no_cover: pytest-cov's, which the project's conftest sets\n"),
    Project("six", "1.17.0", "six-1.17.0.tar.gz",
            "ff70335d468e7eb6ec65b95b99d3a2836546063f63acc5171de367e834932a81",
            {"six.py": "six.py", "test_six.py": "test_six.py"}, [], ""),
    Project("sqlparse", "0.6.1", "sqlparse-0.6.1.tar.gz",
            "ca722573f848ff2d30e40ea30f53a104b7dea7635ea9285891263eb2c58fb6e7",
            {"sqlparse": "sqlparse", "tests": "tests"}, [],
            "testpaths = tests\n"),
    Project("tabulate", "0.10.0", "tabulate-0.10.0.tar.gz",
            "e2cfde8f79420f6deeffdeda9aaec3b6bc5abce947655d17ac662b126e48a60d",
            {"tabulate": "tabulate", "test": "test"}, [],
            "testpaths = test\n"),
    Project("toolz", "1.2.0", "toolz-1.2.0.tar.gz",
            "9667a038e9d6ecba37995e26cb2f59ec6420b6ad8dd9677de59db9b956b08490",
            {"toolz": "toolz", "tlz": "tlz"}, [],
            "testpaths = toolz\nxfail_strict = true\naddopts = --strict-markers\n"
            "filterwarnings =\n    error\n"
            "    ignore:The toolz.compatibility module is no longer needed:DeprecationWarning:\n"),
]

# Modules left out of the project folders, with the reason: their result
# depends on the order modules run in (plain pytest runs a project's modules
# in one process, evalmesh each in its own) or on the machine.
EXCLUDED = {
    "click": {
        # Reads click's installed metadata (importlib.metadata.version), which
        # a project folder holding click's source does not have: an error in
        # every way, as a collection error under pytest and an error module
        # under evalmesh, which the counts cannot compare.
        "tests/test_deprecations.py": "layout",
        # Reaches click._termui_impl as an attribute of click, which is set
        # only once another module has imported it: passes after the other
        # modules in one process, fails alone (61 failed).
        "tests/test_utils/test_echo_via_pager.py": "order",
        # 31,000 stress tests, which the project's own addopts deselect
        # (-m 'not stress') but every pytest process still collects: about
        # 6 s a process for 24 tests that run.
        "tests/test_stream_lifecycle.py": "collection time",
    },
    "python-dateutil": {
        # Compare the tz database of the machine (/usr/share/zoneinfo, which
        # the sandbox shows read-only) with the tzdata package's: which links
        # and transitions agree depends on the machine's tzdata release (here
        # Europe/Monaco is no link to Europe/Paris, 1 failed each), and the
        # second reads every zone, 10 s.
        "tests/test_tz.py": "machine",
        "tests/test_tzpath_data.py": "machine",
        # Expects the machine's local zone to have alphabetic abbreviations
        # unless it is UTC (the local zone is UTC here: 1 failed).
        "tests/test_tzfile.py": "machine",
        # Imports its helpers from tests/test_tzfile.py, left out above.
        "tests/test_zoneinfo.py": "machine",
        # Hypothesis: an example slower than its deadline (200 ms) fails, so
        # the result depends on the load of the machine.
        "tests/property/test_isoparse_prop.py": "load",
        "tests/property/test_parser_prop.py": "load",
        "tests/property/test_rrule_prop.py": "load",
        "tests/property/test_tz_prop.py": "load",
    },
    "idna": {
        # Hypothesis, as above; without hypothesis installed it is a
        # collection error.
        "tests/test_idna_properties.py": "load",
    },
}

CLASS_SIZE = 60
CLASS_REQUIREMENTS = "\n".join(PYTEST) + "\n"
CLASS_SOURCE = '''\
def add(a, b):
    return a + b


def mean(values):
    return sum(values) / len(values)
'''
CLASS_TESTS = [
    "from calc import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n\n\n"
    "def test_add_negative():\n    assert add(-1, -2) == -3\n\n\n"
    "def test_add_zero():\n    assert add(0, 5) == 5\n",
    "from calc import mean\n\n\ndef test_mean():\n    assert mean([1, 2, 3]) == 2\n\n\n"
    "def test_mean_one():\n    assert mean([4]) == 4\n\n\n"
    "def test_mean_floats():\n    assert mean([0.5, 1.5]) == 1.0\n",
]

# Installed into the bench's environments (never the nodes'): writes the
# terminal reporter's statistics by module to $EVALMESH_BENCH_COUNTS.
COUNTS_PLUGIN = '''\
"""evalmesh bench: pytest's summary counts, by module."""
import json
import os

import pytest

KINDS = {"passed": 0, "xpassed": 0, "failed": 1, "skipped": 2, "xfailed": 2, "error": 3}


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session):
    config = session.config
    if hasattr(config, "workerinput"):
        return
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    modules, import_skips = {}, []
    for kind, reports in reporter.stats.items():
        if kind not in KINDS:
            continue
        for report in reports:
            module = report.nodeid.split("::", 1)[0]
            if kind == "skipped" and isinstance(report, pytest.CollectReport):
                import_skips.append(module)
                continue
            counts = modules.setdefault(module, [0, 0, 0, 0])
            counts[KINDS[kind]] += 1
    with open(os.environ["EVALMESH_BENCH_COUNTS"], "w") as f:
        json.dump({"modules": modules, "import_skips": import_skips}, f)
'''


# --- the corpora -------------------------------------------------------------------


def fetch(project):
    """The sdist in bench/.work/sdists, downloaded once; its sha256 checked
    on every run."""
    folder = os.path.join(WORK, "sdists")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, project.filename)
    if not os.path.exists(path):
        index = SIMPLE_URL.format(name=project.name)
        asked = urllib.request.Request(index, headers={"Accept": "application/vnd.pypi.simple.v1+json"})
        with urllib.request.urlopen(asked, timeout=60) as answer:
            files = json.load(answer)["files"]
        found = [f["url"] for f in files if f["filename"] == project.filename]
        if not found:
            sys.exit(f"{project.name}: the index lists no {project.filename}")
        url = urllib.parse.urljoin(index, found[0])
        with urllib.request.urlopen(url, timeout=120) as answer, open(path + ".part", "wb") as f:
            shutil.copyfileobj(answer, f)
        os.replace(path + ".part", path)
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    if digest != project.sha256:
        sys.exit(f"{project.filename}: sha256 {digest}, expected {project.sha256}")
    return path


def build_real(root):
    """Lays out every real project under `root`; answers their folders."""
    folders = []
    for project in PROJECTS:
        archive = fetch(project)
        unpacked = os.path.join(WORK, "unpacked")
        top = os.path.join(unpacked, project.filename[: -len(".tar.gz")])
        if not os.path.isdir(top):
            with tarfile.open(archive) as tar:
                tar.extractall(unpacked, filter="data")
        folder = os.path.join(root, project.name)
        os.makedirs(folder)
        for source, target in project.layout.items():
            source = os.path.join(top, source)
            if os.path.isdir(source):
                shutil.copytree(source, os.path.join(folder, target), ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(source, os.path.join(folder, target))
        for module in EXCLUDED.get(project.name, {}):
            os.remove(os.path.join(folder, module))
        with open(os.path.join(folder, "pytest.ini"), "w") as f:
            f.write("[pytest]\n" + project.ini)
        with open(os.path.join(folder, "requirements.txt"), "w") as f:
            f.write("\n".join(PYTEST + project.requirements) + "\n")
        folders.append(folder)
    return folders


def build_class(root):
    folders = []
    for i in range(CLASS_SIZE):
        folder = os.path.join(root, f"student{i:02}")
        os.makedirs(os.path.join(folder, "tests"))
        with open(os.path.join(folder, "requirements.txt"), "w") as f:
            f.write(CLASS_REQUIREMENTS)
        with open(os.path.join(folder, "calc.py"), "w") as f:
            f.write(CLASS_SOURCE)
        for j, source in enumerate(CLASS_TESTS):
            with open(os.path.join(folder, "tests", f"test_{j}.py"), "w") as f:
                f.write(source)
        folders.append(folder)
    return folders


# --- plain pytest and pytest-xdist ----------------------------------------------


def bench_env(requirements):
    """The bench's environment for a requirements file, built once with uv
    (bytecode compiled, as the node builds its own) with the counting plugin
    added."""
    with open(requirements, "rb") as f:
        key = hashlib.sha256(f.read()).hexdigest()[:16]
    env = os.path.join(WORK, "envs", key)
    ready = os.path.join(env, ".ready")
    if not os.path.exists(ready):
        shutil.rmtree(env, ignore_errors=True)
        subprocess.run(["uv", "venv", "--quiet", "--python", sys.executable, env], check=True)
        subprocess.run(["uv", "pip", "install", "--quiet", "--compile-bytecode", "--python",
                        os.path.join(env, "bin", "python"), "-r", requirements], check=True)
        site = subprocess.run([os.path.join(env, "bin", "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              check=True, capture_output=True, text=True).stdout.strip()
        with open(os.path.join(site, "_evalmesh_bench_counts.py"), "w") as f:
            f.write(COUNTS_PLUGIN)
        open(ready, "w").close()
    return env


def run_pytest(folders, envs, cores, scratch, fresh):
    """Runs pytest in each folder, one after the other (with -n `cores` when
    given); when `fresh`, in copies of the folders made before the clock
    starts and without their bytecode. Python writes bytecode as it does by
    default. Answers (wall seconds, {project: {module: counts}}, {project:
    [modules skipped at import]})."""
    counts_file = os.path.join(scratch, "counts.json")
    counts, skips = {}, {}
    places = {folder: folder for folder in folders}
    if fresh:
        copies = os.path.join(scratch, "fresh")
        shutil.rmtree(copies, ignore_errors=True)
        for folder in folders:
            places[folder] = os.path.join(copies, os.path.basename(folder))
            shutil.copytree(folder, places[folder], ignore=shutil.ignore_patterns("__pycache__"))
    started = time.monotonic()
    for folder in folders:
        python = os.path.join(envs[folder], "bin", "python")
        args = [python, "-m", "pytest", "-p", "no:cacheprovider", "--continue-on-collection-errors",
                "-p", "_evalmesh_bench_counts"]
        if cores:
            args += ["-n", str(cores)]
        env = {**os.environ, "EVALMESH_BENCH_COUNTS": counts_file, "LANG": "C.UTF-8"}
        for name in ("PYTHONPATH", "PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX"):
            env.pop(name, None)
        done = subprocess.run(args, cwd=places[folder], env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        name = os.path.basename(folder)
        if not os.path.exists(counts_file):
            sys.exit(f"{name}: pytest wrote no counts (exit {done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
        with open(counts_file) as f:
            found = json.load(f)
        os.remove(counts_file)
        counts[name] = found["modules"]
        skips[name] = sorted(found["import_skips"])
    return time.monotonic() - started, counts, skips


# --- evalmesh ---------------------------------------------------------------------


def start_cluster(binary, root, size, slots):
    nodes = []
    for i in range(size):
        nodes.append(Node(binary, root, f"node{i}", nodes[0].addr if nodes else None, slots=slots))

    def all_alive():
        _, net = request(nodes[0].addr, "GET", "/network")
        return sum(m["status"] == "alive" for m in net["members"]) == size

    wait(all_alive, 30, f"{size} members alive")
    return nodes


def ready_envs(node):
    envs = os.path.join(node.dir, "data", "envs")
    if not os.path.isdir(envs):
        return 0
    return sum(os.path.exists(os.path.join(envs, e, ".evalmesh-ready")) for e in os.listdir(envs))


def run_evalmesh(nodes, archive):
    """One evaluation of the whole corpus. Answers (client wall seconds,
    eval_time, {project: {module: counts}}, [modules not done])."""
    started = time.monotonic()
    e = evaluate(nodes[0].addr, archive, 3600)
    wall = time.monotonic() - started
    counts, not_done = {}, []
    for project, modules in e["module_results"].items():
        for module, r in modules.items():
            counts.setdefault(project, {})[module] = [r["passed"], r["failed"], r["skipped"], r["errors"]]
            if r["status"] != "done":
                not_done.append(f"{project}/{module}: {r['status']}")
    for project, p in e["projects"].items():
        if p.get("error"):
            # Its first line and the exception's own line, past the
            # interpreter's closing ResourceWarnings.
            lines = [line for line in p["error"].splitlines() if line.strip()]
            raised = [line for line in lines[1:] if re.match(r"[\w.]+(Error|Warning|Exception): ", line)
                      and not line.startswith("ResourceWarning")]
            shown = f"{lines[0]} … {raised[-1]}" if raised else lines[0]
            not_done.append(f"{project}: {shown}")
    return wall, e["_run_info"]["eval_time"], counts, not_done


# --- the comparison -----------------------------------------------------------------


def differences(ways, skips):
    """Every module whose counts are not the same in all ways, as text. A
    module pytest skips at import is expected to be absent from evalmesh's."""
    out = []
    names = list(ways)
    projects = sorted(set().union(*[set(c) for c in ways.values()]))
    for project in projects:
        modules = sorted(set().union(*[set(ways[w].get(project, {})) for w in names]))
        for module in modules:
            seen = {w: tuple(ways[w].get(project, {}).get(module, ())) for w in names}
            if len(set(seen.values())) > 1:
                shown = ", ".join(f"{w} {list(c) if c else 'absent'}" for w, c in seen.items())
                out.append(f"{project}/{module}: {shown}")
    for way, by_project in skips.items():
        for project, modules in by_project.items():
            if modules != skips["plain"].get(project, []):
                out.append(f"{project}: {way} skips {modules} at import, plain {skips['plain'].get(project, [])}")
    return out


def corpus_size(counts):
    modules = sum(len(m) for m in counts.values())
    tests = sum(sum(c) for m in counts.values() for c in m.values())
    return len(counts), modules, tests


def measure(label, folders, args, scratch):
    """All the ways on one corpus, warm; answers the table's rows and the
    differences."""
    envs = {}
    for folder in folders:
        envs[folder] = bench_env(os.path.join(folder, "requirements.txt"))
    distinct = len(set(envs.values()))
    # Before any pytest run writes bytecode into the folders.
    archive = zip_project(os.path.dirname(folders[0]))
    print(f"\n## {label}: {len(folders)} projects, {distinct} environments, zip {len(archive) / 1e6:.1f} MB\n",
          flush=True)

    times = {w: [] for w in ("plain", "plain, bytecode kept", "xdist", "1 node", "4 nodes")}
    eval_times = {"1 node": [], "4 nodes": []}
    ways, skips, problems = {}, {w: {} for w in times if "node" not in w}, []

    def record(way, counts):
        if way in ways and ways[way] != counts:
            problems.append(f"{way}: counts changed between repetitions")
        ways[way] = counts

    # Warm-up: the file system's cache, and the bytecode that "plain,
    # bytecode kept" finds in the folders from the run before.
    for cores in (0, args.cores):
        run_pytest(folders, envs, cores, scratch, fresh=False)
    ways_of_pytest = (("plain", 0, True), ("plain, bytecode kept", 0, False), ("xdist", args.cores, True))
    for _ in range(args.reps):
        for way, cores, fresh in ways_of_pytest:
            wall, counts, skipped = run_pytest(folders, envs, cores, scratch, fresh)
            times[way].append(wall)
            record(way, counts)
            skips[way] = skipped
            print(f"  {way}: {wall:.2f} s", flush=True)

    for way, size, slots in (("1 node", 1, args.cores), ("4 nodes", 4, 1)):
        root = tempfile.mkdtemp(prefix=f"evalmesh-realworld-{size}-")
        nodes = []
        try:
            nodes = start_cluster(args.binary, root, size, slots)
            # Warm-up: until no node builds another environment (a node builds
            # one the first time it runs a module of it; the supervisor
            # prefers nodes that hold a project's environment, so a node may
            # never need one), and at least twice, so that warm servers and
            # duration records are in place.
            held = None
            for attempt in range(6):
                run_evalmesh(nodes, archive)
                now = [ready_envs(n) for n in nodes]
                if attempt >= 1 and now == held:
                    break
                held = now
            print(f"  {way}: environments held by each node after the warm-up: {held}", flush=True)
            for _ in range(args.reps):
                wall, eval_time, counts, not_done = run_evalmesh(nodes, archive)
                times[way].append(wall)
                eval_times[way].append(eval_time)
                record(way, counts)
                problems.extend(f"{way}: {p}" for p in not_done)
                print(f"  {way}: {wall:.2f} s (eval_time {eval_time:.2f} s)", flush=True)
        finally:
            for n in nodes:
                n.stop()
            if not args.keep:
                shutil.rmtree(root, ignore_errors=True)

    # Evalmesh never lists a module skipped at import: plain pytest's
    # statistics do not count it under the module's tests either (see
    # COUNTS_PLUGIN), so all agree on the modules they share.
    diffs = problems + differences(ways, skips)
    projects, modules, tests = corpus_size(ways["plain"])
    plain = statistics.median(times["plain"])
    rows = []
    for way, walls in times.items():
        median = statistics.median(walls)
        ev = statistics.median(eval_times[way]) if way in eval_times else None
        rows.append((way, median, ev, median / plain))
    return {"label": label, "projects": projects, "modules": modules, "tests": tests, "rows": rows,
            "import_skips": skips["plain"], "diffs": diffs}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=("real", "class"))
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--cores", type=int, default=os.cpu_count())
    parser.add_argument("--binary", default="target/release/evalmesh")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    if not os.access(args.binary, os.X_OK):
        sys.exit(f"no binary at {args.binary}: cargo build --release")
    started = time.monotonic()
    scratch = tempfile.mkdtemp(prefix="evalmesh-realworld-")
    results = []
    try:
        if args.only in (None, "real"):
            results.append(measure("real projects", build_real(os.path.join(scratch, "real")), args, scratch))
        if args.only in (None, "class"):
            results.append(measure("class", build_class(os.path.join(scratch, "class")), args, scratch))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\n{args.reps} repetitions, median wall time; {args.cores} cores; load average at the end {load};"
          f" took {time.monotonic() - started:.0f} s")
    failed = False
    for r in results:
        print(f"\n### {r['label']}: {r['projects']} projects, {r['modules']} modules, {r['tests']} tests\n")
        print("| way | wall (s) | eval_time (s) | vs plain |")
        print("| --- | ---: | ---: | ---: |")
        for way, wall, ev, ratio in r["rows"]:
            shown = f"{ev:.2f}" if ev is not None else "–"
            print(f"| {way} | {wall:.2f} | {shown} | {ratio:.2f} |")
        skipped = [f"{p}/{m}" for p, ms in r["import_skips"].items() for m in ms]
        if skipped:
            print(f"\nskipped at import (pytest: 1 skipped each; evalmesh: not listed): {', '.join(skipped)}")
        if r["diffs"]:
            failed = True
            print(f"\n{len(r['diffs'])} differences:")
            for d in r["diffs"]:
                print(f"- {d}")
        else:
            print("\ncounts: every module the same in all the ways")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
