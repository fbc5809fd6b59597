"""Writes 50 passing reports and an end into the results stream, then
leaves: more tests than collection found, some of another module. On a node
without a stream, fakes the JUnit report instead."""

import os

from fakes import stream_lines, write_junit


def test_fakes_the_stream_and_leaves():
    fd = os.environ.get("EVALMESH_RESULTS_FD")
    if fd is None:
        write_junit("tests.test_stream")
    else:
        os.write(int(fd), stream_lines("tests/test_stream.py"))
    os._exit(0)
