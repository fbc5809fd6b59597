from stack import Stack


def test_len():
    s = Stack()
    s.push("a")
    assert len(s) == 1
