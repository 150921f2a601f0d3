"""numba's ``njit`` as mig_gym's compiled kernels use it (importing this module imports numba:
only the kernel modules do, and only when an epoch run asks for a compiled form)."""

from __future__ import annotations

from collections.abc import Callable

import numba

__all__ = ["jit"]


def jit(fn: Callable | None = None, *, inline: bool = False) -> Callable:
    """numba's ``njit`` without fast-math (IEEE arithmetic, as Python's), cached on disk; where
    no cache folder is writable (a read-only install and no writable home) compiled afresh in
    each process instead (about a second). ``@jit(inline=True)``: a helper inlined into the
    kernels that call it (no call, no copying of its tuple arguments)."""
    if fn is None:
        return lambda f: jit(f, inline=inline)
    how = "always" if inline else "never"
    try:
        return numba.njit(cache=True, nogil=True, inline=how)(fn)
    except RuntimeError:  # numba: "cannot cache function ...: no locator available"
        return numba.njit(nogil=True, inline=how)(fn)
