"""An in-tree build backend that acts when imported: a node that installs
the folder holding it runs this as whoever runs the install."""

import os

with open("@MARKER@", "w") as f:
    f.write("backend imported as uid %d\n" % os.getuid())
raise RuntimeError("the backend ran")
