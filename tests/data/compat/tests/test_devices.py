def test_dev_null_reads_empty_and_swallows_writes():
    with open("/dev/null", "rb") as f:
        assert f.read() == b""
    with open("/dev/null", "wb") as f:
        f.write(b"gone")


def test_dev_zero_reads_zeros():
    with open("/dev/zero", "rb") as f:
        assert f.read(4096) == bytes(4096)


def test_dev_urandom_reads_random_bytes():
    with open("/dev/urandom", "rb") as f:
        first, second = f.read(32), f.read(32)
    assert len(first) == 32 and first != second
