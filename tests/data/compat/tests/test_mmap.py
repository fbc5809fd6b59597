import mmap

GIB = 1 << 30
PAGE = mmap.PAGESIZE


def test_touches_one_gib_of_anonymous_memory_page_by_page():
    block = mmap.mmap(-1, GIB)
    try:
        for offset in range(0, GIB, PAGE):
            block[offset] = 1
        assert block[GIB - PAGE] == 1
    finally:
        block.close()
