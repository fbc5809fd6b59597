"""Shared by the hijacking modules: the report files a node may read after
pytest returns, as this process can see them."""

import os
import sys


def report_paths():
    """The --junitxml path of this pytest run, and the old collection
    report's, when the node gave them."""
    paths = []
    argv = sys.argv
    for i, arg in enumerate(argv):
        if arg == "--junitxml" and i + 1 < len(argv):
            paths.append(argv[i + 1])
        elif arg.startswith("--junitxml="):
            paths.append(arg.split("=", 1)[1])
    collect_out = os.environ.get("EVALMESH_COLLECT_OUT")
    if collect_out:
        paths.append(collect_out)
    return paths


def replace(path, make):
    try:
        os.unlink(path)
    except OSError:
        pass
    try:
        make(path)
    except OSError:
        pass
