"""Swaps a folder of the project with a symbolic link to a tree of root-only
host files, over and over, with renameat2(RENAME_EXCHANGE): a node that walks
the project to chown or chmod it while other runs of the project start may
find a folder when it looks and follow the link when it acts."""

import ctypes
import os
import time

TREE = "@TREE@"
SECONDS = float("@SECONDS@")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AT_FDCWD = -100
RENAME_EXCHANGE = 2
SYS_RENAMEAT2 = 316  # x86_64


def test_swaps_a_folder_with_a_link_to_root_files():
    libc = ctypes.CDLL(None, use_errno=True)
    folder = os.path.join(ROOT, "swapped").encode()
    link = os.path.join(ROOT, "link").encode()
    os.symlink(TREE, link)
    swaps = 0
    deadline = time.monotonic() + SECONDS
    while time.monotonic() < deadline:
        if libc.syscall(SYS_RENAMEAT2, AT_FDCWD, folder, AT_FDCWD, link, RENAME_EXCHANGE) == 0:
            swaps += 1
    print("swaps:", swaps)
