"""Looks for the node's data and config from inside a run. Of the data dir a
run may see at most the way to what it needs — its environment, its own copy
of the project, what is on its sys.path — wherever the node mounts them."""

import os
import sys

DATA = "@DATA@"
CONFIG = "@CONFIG@"


def _visible(data):
    own = [os.path.realpath(p) for p in [sys.prefix, os.getcwd()] + sys.path if p]
    seen = []
    for top, dirs, files in os.walk(data):
        for name in dirs + files:
            path = os.path.join(top, name)
            if not any(o == path or o.startswith(path + "/") or path.startswith(o + "/") for o in own):
                seen.append(path)
        # Down the way to what the run needs only.
        dirs[:] = [d for d in dirs if any(o.startswith(os.path.join(top, d) + "/") for o in own)]
    return seen


def test_reads_the_node():
    assert _visible(os.path.realpath(DATA)) == []
    try:
        with open(CONFIG) as f:
            text = f.read()
    except OSError:
        text = ""
    assert text == "", "the config is readable"
