# A project's modules may be named like modules of the standard library that
# pytest has not imported yet when it loads this conftest: imported here,
# they are the project's, as under plain pytest.
import code
import ctypes
import resource
