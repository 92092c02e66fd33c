"""Numba kernels over plain arrays (no pandas, no shapely inside).

``jit`` is the one decorator every kernel uses: nopython, cached on disk so imports and
second runs stay fast.
"""

import numba

jit = numba.njit(cache=True, nogil=True)
