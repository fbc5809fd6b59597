import multiprocessing

import pytest
from workers import record


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_manager_shares_a_dict(method):
    context = multiprocessing.get_context(method)
    with context.Manager() as manager:
        shared = manager.dict()
        children = [context.Process(target=record, args=(shared, key)) for key in range(3)]
        for child in children:
            child.start()
        for child in children:
            child.join(30)
            assert child.exitcode == 0
        assert dict(shared) == {0: 0, 1: 10, 2: 20}
