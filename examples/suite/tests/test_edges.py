import pytest

from stack import Stack


def test_peek_leaves_the_item():
    s = Stack()
    s.push("x")
    assert s.peek() == "x"
    assert len(s) == 1


def test_pop_on_empty_raises():
    with pytest.raises(IndexError):
        Stack().pop()
