"""At exit, after pytest wrote its reports, puts a FIFO with no writer where
each report was: a node that opens it to read the report waits forever."""

import atexit
import os

from atexit_hijack import replace, report_paths


def _hijack():
    for path in report_paths():
        replace(path, os.mkfifo)


atexit.register(_hijack)


def test_passes():
    assert True
