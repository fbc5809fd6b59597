"""A child of the fork server reaching for its server, and for the zygote it
may have been forked from: the control sockets,
/proc/<pid>/{fd,mem,environ,maps}, ptrace. All must fail (also run by the
unit tests of src/executor/pytest.rs)."""

import ctypes, os, stat

def ancestors():
    """The zygote, if any, and the server: every ancestor up to the
    sandbox's init."""
    pid = os.getppid()
    while pid > 1:
        yield pid
        with open(f'/proc/{pid}/stat') as f:
            pid = int(f.read().rsplit(') ', 1)[1].split()[1])

def test_the_server_is_out_of_reach():
    libc = ctypes.CDLL(None, use_errno=True)
    for server in ancestors():
        for path in ('fd', 'mem', 'environ', 'maps'):
            try:
                if path == 'fd':
                    os.listdir(f'/proc/{server}/fd')
                else:
                    open(f'/proc/{server}/{path}', 'rb').read(1)
            except PermissionError:
                continue
            raise AssertionError(f'/proc/{server}/{path} is readable')
        assert libc.ptrace(16, server, 0, 0) == -1, 'PTRACE_ATTACH succeeded'
    for fd in os.listdir('/proc/self/fd'):
        try:
            mode = os.fstat(int(fd)).st_mode
        except OSError:
            continue
        assert not stat.S_ISSOCK(mode), f'descriptor {fd} is a socket'
