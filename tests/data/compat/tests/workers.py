"""Functions the multiprocessing modules hand to child processes. They live
at module level in a module of their own, so that the "spawn" start method,
which imports them by name in a fresh interpreter, finds them."""


def square(x):
    return x * x


def put_squares(queue, n):
    for i in range(n):
        queue.put(i * i)
    queue.put(None)


def add_under_lock(lock, counter, times):
    for _ in range(times):
        with lock:
            counter.value += 1


def record(shared, key):
    shared[key] = key * 10
