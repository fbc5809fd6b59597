import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_b_writes_its_file_and_sees_no_other():
    with open(os.path.join(ROOT, "leak_b.txt"), "w") as f:
        f.write("b")
    assert not os.path.exists(os.path.join(ROOT, "leak_a.txt"))
