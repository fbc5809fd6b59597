"""Replaces requirements.txt by a symbolic link to the node's config, so
that a node that reads requirements.txt after a run, following links, reads
its own config (and hands it to pip, whose error quotes it)."""

import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _relink():
    requirements = os.path.join(ROOT, "requirements.txt")
    try:
        if not os.path.islink(requirements):
            os.unlink(requirements)
            os.symlink("@CONFIG@", requirements)
    except OSError:
        pass


_relink()
