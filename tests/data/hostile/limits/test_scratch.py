"""Passes only if each writable tmpfs of the run is capped at 256 MiB:
writing 400 MiB into /tmp, /dev/shm or the project folder stops with ENOSPC
a little before 256 MiB. Each file is removed, so that the next one starts
from an empty place."""

import errno
import os

import pytest

MIB = 1 << 20
CAP = int("@SCRATCH@")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _fill(path, total):
    written, error = 0, None
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    chunk = b"\x01" * MIB
    try:
        while written < total:
            written += os.write(fd, chunk)
    except OSError as e:
        error = e.errno
    finally:
        os.close(fd)
        os.unlink(path)
    return written, error


@pytest.mark.parametrize("where", ["/tmp", "/dev/shm", "project"])
def test_writing_past_the_scratch_limit_gets_enospc(where):
    folder = ROOT if where == "project" else where
    written, error = _fill(os.path.join(folder, "big.bin"), 400 * MIB)
    assert error == errno.ENOSPC, "wrote %d MiB into %s, error %r" % (written // MIB, folder, error)
    assert CAP // 2 < written <= CAP, "wrote %d MiB into %s" % (written // MIB, folder)
