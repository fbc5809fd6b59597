import multiprocessing

import pytest
from workers import put_squares


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_queue_carries_items_between_processes(method):
    context = multiprocessing.get_context(method)
    queue = context.Queue()
    child = context.Process(target=put_squares, args=(queue, 5))
    child.start()
    items = []
    while (item := queue.get(timeout=30)) is not None:
        items.append(item)
    child.join(30)
    assert child.exitcode == 0
    assert items == [0, 1, 4, 9, 16]
