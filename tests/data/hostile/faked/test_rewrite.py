"""Two passes and two failures, and at exit, after pytest wrote its report,
the report rewritten to claim 50 passes."""

import atexit

from fakes import junit, junit_paths


def _rewrite():
    for path in junit_paths():
        try:
            with open(path, "w") as f:
                f.write(junit("tests.test_rewrite"))
        except OSError:
            pass


atexit.register(_rewrite)


def test_pass_1():
    assert True


def test_pass_2():
    assert True


def test_fail_1():
    assert 1 == 2


def test_fail_2():
    assert 1 == 2
