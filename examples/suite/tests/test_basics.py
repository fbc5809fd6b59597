from stack import Stack


def test_new_stack_is_empty():
    assert len(Stack()) == 0


def test_push_then_pop_gives_it_back():
    s = Stack()
    s.push(42)
    assert s.pop() == 42


def test_pop_is_last_in_first_out():
    s = Stack()
    for item in (1, 2, 3):
        s.push(item)
    assert [s.pop(), s.pop(), s.pop()] == [3, 2, 1]
