"""Subtests, which pytest 9 reports as more reports of their test's call:
counted as pytest's summary counts them at its default verbosity, a failed
subtest as one failure and the others not at all, besides the test itself.
Plain pytest says "4 failed, 3 passed"."""

import unittest

import pytest


class TestUnittestSubTest(unittest.TestCase):
    def test_all_pass(self):
        for i in range(3):
            with self.subTest(i=i):
                self.assertLess(i, 3)

    def test_two_fail(self):
        # The test itself still passes: 1 passed and 2 failed.
        for i in range(3):
            with self.subTest(i=i):
                self.assertEqual(i, 0)


def test_fixture_one_fails(subtests):
    # pytest fails the test that holds a failed subtest: 2 failed.
    for i in range(2):
        with subtests.test(msg="half", i=i):
            assert i == 0


def test_fixture_skip_and_xfail(subtests):
    with subtests.test(msg="skips"):
        pytest.skip("not this one")
    with subtests.test(msg="xfails"):
        pytest.xfail("known")
