import locale
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_encodings_are_utf8():
    assert sys.getfilesystemencoding() == "utf-8"
    assert locale.getpreferredencoding(False).lower().replace("-", "") == "utf8"


def test_non_ascii_file_name():
    path = os.path.join(ROOT, "données-ünïcødé-日本.txt")
    with open(path, "w", encoding="utf-8") as f:
        f.write("é")
    try:
        assert "données-ünïcødé-日本.txt" in os.listdir(ROOT)
        with open(path, encoding="utf-8") as f:
            assert f.read() == "é"
    finally:
        os.unlink(path)
