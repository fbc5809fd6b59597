import os


def test_reads_its_own_status():
    with open("/proc/self/status") as f:
        status = f.read()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    assert int(fields["Pid"]) == os.getpid()
    assert "VmRSS" in fields
