import os
import tempfile


def test_tempfile_works():
    with tempfile.NamedTemporaryFile("w+") as f:
        f.write("data")
        f.flush()
        f.seek(0)
        assert f.read() == "data"
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "x.txt")
        with open(path, "w") as f:
            f.write("x")
        assert os.listdir(folder) == ["x.txt"]


def test_home_is_writable():
    home = os.path.expanduser("~")
    assert home != "~" and os.path.isdir(home)
    fd, path = tempfile.mkstemp(dir=home, prefix=".evalmesh-compat-")
    try:
        os.write(fd, b"home")
        os.close(fd)
        with open(path, "rb") as f:
            assert f.read() == b"home"
    finally:
        os.unlink(path)
