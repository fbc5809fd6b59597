import getpass
import os


def test_cpu_count():
    assert os.cpu_count() >= 1


def test_getuser_names_someone():
    assert getpass.getuser()
