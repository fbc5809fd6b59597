"""One true pass, then a test that writes a JUnit report of 50 passes where
a node might read one and leaves before pytest can report anything."""

import os

from fakes import write_junit


def test_passes_first():
    assert True


def test_fakes_a_report_and_leaves():
    write_junit("tests.test_exit", plausible=True)
    os._exit(0)
