import os
import uuid
from multiprocessing import shared_memory


def test_writes_a_file_in_dev_shm():
    path = "/dev/shm/evalmesh-compat-%s" % uuid.uuid4().hex
    try:
        with open(path, "wb") as f:
            f.write(b"shared")
        with open(path, "rb") as f:
            assert f.read() == b"shared"
    finally:
        if os.path.exists(path):
            os.unlink(path)


def test_shared_memory_round_trip():
    block = shared_memory.SharedMemory(create=True, size=4096)
    try:
        block.buf[:5] = b"hello"
        other = shared_memory.SharedMemory(name=block.name)
        assert bytes(other.buf[:5]) == b"hello"
        other.close()
    finally:
        block.close()
        block.unlink()
