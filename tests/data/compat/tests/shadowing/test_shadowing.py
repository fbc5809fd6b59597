import code
import ctypes
import resource


def test_the_projects_modules_are_the_ones_imported():
    assert code.STUDENT and ctypes.STUDENT and resource.STUDENT
