"""Shared by the faking modules: reports claiming tests that never ran."""

import json
import os
import sys
import tempfile


def junit(classname, passes=50):
    cases = "".join(
        '<testcase classname="%s" name="test_fake_%d" time="0.001"/>' % (classname, i) for i in range(passes)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" errors="0" failures="0" '
        'skipped="0" tests="%d" time="0.1">%s</testsuite></testsuites>' % (passes, cases)
    )


def junit_paths(plausible=False):
    """The --junitxml path of this run; with `plausible`, also where a node
    might look for a report of its own."""
    paths = []
    argv = sys.argv
    for i, arg in enumerate(argv):
        if arg == "--junitxml" and i + 1 < len(argv):
            paths.append(argv[i + 1])
        elif arg.startswith("--junitxml="):
            paths.append(arg.split("=", 1)[1])
    if plausible:
        paths += [os.path.join(os.getcwd(), "junit.xml"), os.path.join(tempfile.gettempdir(), "junit.xml")]
    return paths


def write_junit(classname, plausible=False):
    for path in junit_paths(plausible):
        try:
            with open(path, "w") as f:
                f.write(junit(classname))
        except OSError:
            pass


def stream_lines(module, passes=50):
    """Report lines in the results stream's format for `passes` tests of
    `module` that never ran, two passes for another module's tests, and the
    end."""
    lines = []
    nodeids = ["%s::test_fake_%d" % (module, i) for i in range(passes)]
    nodeids += ["tests/test_rewrite.py::test_fail_1", "tests/test_rewrite.py::test_fail_2"]
    for nodeid in nodeids:
        for when in ("setup", "call", "teardown"):
            report = {
                "event": "report",
                "nodeid": nodeid,
                "when": when,
                "outcome": "passed",
                "duration": 0.01,
                "wasxfail": False,
                "message": None,
            }
            lines.append(json.dumps(report))
    lines.append(json.dumps({"event": "end", "exitstatus": 0}))
    return "".join(line + "\n" for line in lines).encode()
