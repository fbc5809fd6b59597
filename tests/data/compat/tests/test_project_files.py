import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_writes_and_reads_files_in_its_own_folder():
    folder = os.path.join(ROOT, "output")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "result.txt")
    with open(path, "w") as f:
        f.write("42\n")
    with open(path) as f:
        assert f.read() == "42\n"
    os.unlink(path)
    os.rmdir(folder)


def test_reads_its_own_data():
    with open(os.path.join(ROOT, "requirements.txt")) as f:
        assert f.read() == ""
