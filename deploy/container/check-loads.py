"""Print each shared library named on stdin (one path a line) that the dynamic loader refuses to load.

slim-venv.sh runs it over the files it stripped and puts the originals back for the ones printed. Each file is
loaded with dlopen (ctypes), as the loader does at import, in this one process: a library that needs another one
of the list finds it by its RPATH, as at run time. A library whose own dependencies are absent on the build machine
(a GPU provider's CUDA libraries on a CPU box) is refused as well, and so keeps its symbols: the safe side.
"""

from __future__ import annotations

import ctypes
import os
import sys

for line in sys.stdin:
    path = line.strip()
    if not path:
        continue
    try:
        ctypes.CDLL(path, mode=ctypes.RTLD_LOCAL)
    except OSError:
        print(path)
sys.stdout.flush()
# Not Python's own exit: a loaded extension module's destructor may call into Python while it finalizes and abort
# ("PyThreadState_Get: ... the GIL is released"): the question was only whether each file loads.
os._exit(0)
