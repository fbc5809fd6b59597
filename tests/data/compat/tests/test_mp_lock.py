import multiprocessing

import pytest
from workers import add_under_lock


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_lock_guards_a_shared_counter(method):
    context = multiprocessing.get_context(method)
    lock = context.Lock()
    counter = context.Value("i", 0, lock=False)
    children = [context.Process(target=add_under_lock, args=(lock, counter, 200)) for _ in range(3)]
    for child in children:
        child.start()
    for child in children:
        child.join(30)
        assert child.exitcode == 0
    assert counter.value == 600
