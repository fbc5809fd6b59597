import multiprocessing

import pytest
from workers import square


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_pool_maps(method):
    context = multiprocessing.get_context(method)
    with context.Pool(2) as pool:
        assert pool.map(square, range(10)) == [i * i for i in range(10)]
