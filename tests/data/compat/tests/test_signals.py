import signal
import threading
import time


def _wait_for(flag, seconds=10):
    deadline = time.monotonic() + seconds
    while not flag and time.monotonic() < deadline:
        time.sleep(0.01)
    return bool(flag)


def test_alarm_calls_its_handler():
    fired = []
    previous = signal.signal(signal.SIGALRM, lambda signum, frame: fired.append(signum))
    try:
        signal.alarm(1)
        assert _wait_for(fired)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert fired == [signal.SIGALRM]


def test_interval_timer_calls_its_handler():
    fired = []
    previous = signal.signal(signal.SIGALRM, lambda signum, frame: fired.append(signum))
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        assert _wait_for(fired)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_threading_timer_fires():
    fired = threading.Event()
    timer = threading.Timer(0.05, fired.set)
    timer.start()
    assert fired.wait(10)
    timer.join()
