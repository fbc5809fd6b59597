"""Passes only if the run's memory was contained. With a cgroup (CGROUP
true) the whole run is capped: four children each touching 300 MiB of
anonymous memory cannot all hold it at once under a 512 MiB limit. Without
one, each process is capped: a single 600 MiB block cannot be had."""

import os
import time

CGROUP = "@CGROUP@" == "true"
MIB = 1 << 20
HOLD = 300 * MIB


def _child(ready):
    try:
        # Let the kernel pick the children, not pytest, when memory runs out.
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")
    except OSError:
        pass
    try:
        block = b"\x01" * HOLD  # filled, so every page is touched
    except MemoryError:
        os.write(ready, b"m")
        os._exit(0)
    os.write(ready, b"h")
    time.sleep(4)  # holding the block
    os._exit(0)


def test_memory_is_contained():
    if not CGROUP:
        try:
            block = b"\x01" * (600 * MIB)
        except MemoryError:
            block = None
        assert block is None, "one process held 600 MiB under a 512 MiB limit"
        return
    r, w = os.pipe()
    pids = []
    for _ in range(4):
        pid = os.fork()
        if pid == 0:
            os.close(r)
            _child(w)
        pids.append(pid)
    os.close(w)
    said = b""
    while True:
        chunk = os.read(r, 64)
        if not chunk:
            break
        said += chunk
    statuses = [os.waitpid(pid, 0)[1] for pid in pids]
    held = said.count(b"h")
    assert held < 4, "all four children held 300 MiB at once: %r, statuses %r" % (said, statuses)
