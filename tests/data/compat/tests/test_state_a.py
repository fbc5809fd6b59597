"""What a module changes in the interpreter dies with it: this module and
its twin each find the interpreter untouched, then change it."""

import json
import os
import sys

import _pytest


def test_the_interpreter_is_as_pytest_left_it():
    assert "EVALMESH_COMPAT_TOUCHED" not in os.environ
    assert "evalmesh_compat_touched" not in sys.modules
    assert not hasattr(json, "evalmesh_compat_touched")
    assert not hasattr(_pytest, "evalmesh_compat_touched")
    os.environ["EVALMESH_COMPAT_TOUCHED"] = "1"
    sys.modules["evalmesh_compat_touched"] = sys
    json.evalmesh_compat_touched = True
    _pytest.evalmesh_compat_touched = True
