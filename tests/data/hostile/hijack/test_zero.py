"""At exit, puts a symbolic link to /dev/zero where each report was: a node
that reads the report to its end reads forever, into its own memory."""

import atexit
import os

from atexit_hijack import replace, report_paths


def _hijack():
    for path in report_paths():
        replace(path, lambda p: os.symlink("/dev/zero", p))


atexit.register(_hijack)


def test_passes():
    assert True
