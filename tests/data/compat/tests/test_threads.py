import threading
from concurrent.futures import ThreadPoolExecutor


def test_thread_pool_maps():
    with ThreadPoolExecutor(max_workers=4) as pool:
        assert list(pool.map(lambda x: x + 1, range(100))) == list(range(1, 101))


def test_threads_share_memory_under_a_lock():
    lock = threading.Lock()
    total = [0]

    def add():
        for _ in range(1000):
            with lock:
                total[0] += 1

    threads = [threading.Thread(target=add) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert total[0] == 4000
