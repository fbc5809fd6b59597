import subprocess
import sys


def test_runs_the_interpreter_as_a_child():
    out = subprocess.run([sys.executable, "-c", "print(6 * 7)"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "42"


def test_runs_a_shell_command():
    out = subprocess.run(["sh", "-c", "echo hello | tr a-z A-Z"], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "HELLO"
