"""A child of the fork server reaching for its server: the control socket,
/proc/<server>/{fd,mem,environ,maps}, ptrace. All must fail (also run by the
unit tests of src/executor/pytest.rs)."""

import ctypes, os, stat

def test_the_server_is_out_of_reach():
    server = os.getppid()
    for path in ('fd', 'mem', 'environ', 'maps'):
        try:
            if path == 'fd':
                os.listdir(f'/proc/{server}/fd')
            else:
                open(f'/proc/{server}/{path}', 'rb').read(1)
        except PermissionError:
            continue
        raise AssertionError(f'/proc/{server}/{path} is readable')
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.ptrace(16, server, 0, 0) == -1, 'PTRACE_ATTACH succeeded'
    for fd in os.listdir('/proc/self/fd'):
        try:
            mode = os.fstat(int(fd)).st_mode
        except OSError:
            continue
        assert not stat.S_ISSOCK(mode), f'descriptor {fd} is a socket'
