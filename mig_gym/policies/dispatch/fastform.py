"""How a dispatch rule offers its fast form to the static fast path (:mod:`mig_gym.sim.fast`).

A rule with a closed form subclasses :class:`FastRule`, writes its fast loop next to its
event-loop ``choose`` (same module, same tie rules) and declares in ``FAST_PARAMS`` which
constructor parameters that loop honours. ``fast_form`` returns the loop bound to the rule's
parameters, or None when a parameter outside ``FAST_PARAMS`` differs from its default: such a run
takes the event loop, so a parameter the fast loop does not read can never be ignored silently.
A rule may also offer a compiled form of the same loop (``compiled_form``, for the epoch fast
path; :mod:`mig_gym.sim.compiled`), present only when numba is installed.
Constructor parameters must be stored under their own names (``self.alpha = alpha``);
tests/test_fastpath.py checks every registered rule's parameters against its event form.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

from mig_gym.sim import compiled
from mig_gym.sim.compiled import CompiledLoop
from mig_gym.sim.event_core import CoreRule
from mig_gym.sim.fast import FastLoop

__all__ = ["FastRule"]

_VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
_UNSTORED = "<not stored under its name>"


class FastRule:
    """Mixin for dispatchers with a fast form: ``FAST_PARAMS`` and ``_fast_loop`` to provide."""

    FAST_PARAMS: tuple[str, ...] = ()

    def fast_form(self, slo_s: Sequence[float]) -> FastLoop | None:
        """The rule's fast loop for a static run with these SLAs (seconds, per model), or None if
        a parameter the loop does not honour is set (then the run takes the event loop)."""
        if self.fast_blockers():
            return None
        return self._fast_loop(tuple(slo_s))

    def compiled_form(self, slo_s: Sequence[float]) -> CompiledLoop | None:
        """The fast loop compiled (numba), for the epoch fast path; None without numba, for a
        rule that has none, or when ``fast_form`` is None."""
        if not compiled.AVAILABLE or self.fast_blockers():
            return None
        try:
            return self._compiled_loop(tuple(slo_s))
        except ImportError as e:  # numba installed but not importable (e.g. too new a numpy)
            compiled.unusable(e)
            return None

    def event_form(self, slo_s: Sequence[float]) -> CoreRule | None:
        """The rule as the event loop's compiled core applies it (:mod:`mig_gym.sim.event_core`:
        the same choice on the simulator's class indexes), or None where the rule has none or a
        parameter it does not honour is set."""
        if self.fast_blockers():
            return None
        return self._event_form(tuple(slo_s))

    def _event_form(self, slo_s: tuple[float, ...]) -> CoreRule | None:
        return None  # a rule without one: its runs keep the Python event loop

    def fast_blockers(self) -> list[str]:
        """``name=value`` of the constructor parameters set away from their defaults that the
        fast loop does not honour."""
        out = []
        for name, p in inspect.signature(type(self).__init__).parameters.items():
            if name == "self" or name in self.FAST_PARAMS or p.kind in _VARIADIC:
                continue
            value = getattr(self, name, _UNSTORED)
            if value is _UNSTORED or p.default is p.empty or value != p.default:
                out.append(f"{name}={value!r}")
        return out

    def _fast_loop(self, slo_s: tuple[float, ...]) -> FastLoop:  # pragma: no cover - abstract
        raise NotImplementedError

    def _compiled_loop(self, slo_s: tuple[float, ...]) -> CompiledLoop | None:
        return None  # a rule without a compiled form: the runner uses its Python loop
