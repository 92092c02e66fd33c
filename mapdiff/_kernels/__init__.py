"""Numba kernels over plain arrays (no pandas, no shapely inside).

``jit`` is the one decorator every kernel uses: nopython, cached on disk so imports and
second runs stay fast.

Numba's cache checks only the source file of the cached function, not the kernels it calls in
other files: an edit to ``graph.py`` can leave ``hmm.py``'s cached machine code calling the old
layout (seen here as a segfault). So the cache goes to a directory named after a hash of all
kernel sources: any kernel edit starts a fresh cache. The name also holds the kernels' folder:
numba's index keeps each source file's time stamp, so two checkouts of one commit sharing a
cache rewrite each other's entries, and processes of both running at once loaded machine code
being written (seen here as a segfault). It sits under ``$NUMBA_CACHE_DIR`` when that is set,
else under the user's cache directory.
"""

import hashlib
import os
import tempfile
from pathlib import Path

import numba


def _cache_dir() -> str:
    here = Path(__file__).resolve().parent
    digest = hashlib.sha256(str(here).encode())
    for src in sorted(here.glob("*.py")):
        digest.update(src.name.encode())
        digest.update(src.read_bytes())
    base = os.environ.get("NUMBA_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache"), "mapdiff", "numba"
    )
    name = f"kernels-{digest.hexdigest()[:16]}"
    for root in (base, os.path.join(tempfile.gettempdir(), "mapdiff-numba")):
        path = os.path.join(root, name)
        try:  # a read-only home (some batch containers) falls back to the temp dir
            os.makedirs(path, exist_ok=True)
            with tempfile.TemporaryFile(dir=path):
                return path
        except OSError:
            continue
    return path


numba.config.CACHE_DIR = _cache_dir()

jit = numba.njit(cache=True, nogil=True)

#: for the small helpers of a kernel's innermost loop that take tuples of arrays: a call passes
#: every array's reference count up and down (atomic operations), which made one pair of the
#: HMM's lattice three times as slow as with the helper's body written in the loop
jit_inline = numba.njit(cache=True, nogil=True, inline="always")

#: for the helpers a kernel calls once per fix or per search, with tuples of arrays: numba's
#: reference counting moves every array's count up at a function's entry and down at its exit,
#: one atomic operation each, and a helper handed the graph, the workspace, the search cache and
#: the lattice (38 arrays) paid 76 of them per call. Sampled with gdb, 77 % of the matcher's time
#: went to them (``_push``, ``_step_transitions``, ``cached_search``); compiled without the
#: runtime (numba's ``_nrt=False``), the matcher ran 1.6 to 2.7 times as fast on the synthetic
#: Helsinki traces (two sittings, the code before and after side by side) with the same output.
#: Such a helper cannot allocate (numba refuses to compile one that does), so it takes its
#: scratch arrays from its caller. Inlining the helpers instead does not help: their arguments
#: become the caller's variables, counted the same.
jit_lean = numba.njit(cache=True, nogil=True, _nrt=False)


def compiled(module: str) -> bool:
    """Whether the kernels of ``module`` (a file of this folder, without ``.py``) have machine
    code in the cache (numba writes an index file per cached kernel)."""
    return any(Path(numba.config.CACHE_DIR).rglob(f"{module}.*.nbi"))
