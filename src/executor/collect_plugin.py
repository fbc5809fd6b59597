"""evalmesh collection probe: a pytest plugin that counts the test items of
each module and records every collection failure, as JSON.

The executor writes this file as ``evalmesh_collect.py`` into a folder on
PYTHONPATH and runs::

    python -m pytest --collect-only -q -p evalmesh_collect \
        --continue-on-collection-errors --maxfail=0 --rootdir <project_root>

with ``EVALMESH_COLLECT_OUT`` naming the report file. The report is::

    {"modules": {"tests/test_a.py": 3, ...},
     "errors": {"tests/test_broken.py": "<longrepr text>", ...}}

``modules`` is keyed by the path part of each item's nodeid (before the
first "::", relative to the rootdir, "/" separators); ``errors`` by the
nodeid of each failed collect report. A module that fails to import is in
``errors`` only. Only pytest itself is imported, so the plugin runs inside
any project's environment, on pytest 7 and later.

The plugin only observes: it never changes what pytest collects, whether it
stops on a collection error, or its exit status.
"""

import json
import os

OUTPUT_ENV = "EVALMESH_COLLECT_OUT"


class _Recorder:
    """Holds one session's collection failures.

    An instance registered per config, rather than module globals, keeps two
    in-process sessions (pytester, pytest.main twice) from sharing state.
    """

    def __init__(self):
        self.errors = {}

    def pytest_collectreport(self, report):
        if report.failed:
            self.errors[report.nodeid] = _report_text(report)

    def pytest_sessionfinish(self, session):
        # sessionfinish runs even when pytest stops with "Interrupted: N errors
        # during collection", so the errors are reported in that case too.
        path = os.environ.get(OUTPUT_ENV)
        if not path:
            return
        modules = {}
        # session.items is only set once collection completed; without it the
        # errors alone are still worth writing.
        for item in getattr(session, "items", None) or []:
            module = item.nodeid.split("::", 1)[0]
            modules[module] = modules.get(module, 0) + 1
        report = {
            "modules": {_clean(k): v for k, v in modules.items()},
            "errors": {_clean(k): _clean(v) for k, v in self.errors.items()},
        }
        # Written beside the target and renamed, so the reader never sees a
        # half-written report.
        partial = path + ".partial"
        with open(partial, "w", encoding="utf-8") as out:
            json.dump(report, out, ensure_ascii=False, sort_keys=True)
        os.replace(partial, path)


def _report_text(report):
    try:
        return report.longreprtext
    except Exception:  # a plugin's own longrepr may fail to render
        return str(report.longrepr)


def _clean(text):
    # Undecodable file names reach Python as lone surrogates, which are not
    # valid UTF-8 and which a strict JSON reader rejects.
    return text.encode("utf-8", "replace").decode("utf-8")


def pytest_configure(config):
    config.pluginmanager.register(_Recorder(), "evalmesh_collect_recorder")
