"""Every kind of outcome, counted as pytest's terminal summary counts them:
xfail as skipped, xpass as passed, a setup or teardown failure as an error,
and a test that passes and whose teardown fails as passed and as an error."""

import pytest


@pytest.fixture
def broken_setup():
    raise RuntimeError("setup fails")


@pytest.fixture
def broken_teardown():
    yield
    raise RuntimeError("teardown fails")


def test_passes():
    assert True


def test_fails():
    assert 1 == 2


@pytest.mark.skip(reason="not today")
def test_skipped():
    assert False


def test_skips_itself():
    pytest.skip("not here")


@pytest.mark.xfail(reason="known bug")
def test_xfails():
    assert False


@pytest.mark.xfail(reason="fixed since")
def test_xpasses():
    assert True


def test_setup_errors(broken_setup):
    assert True


def test_passes_then_teardown_errors(broken_teardown):
    assert True
