"""Rendering shared by the environments: the render-mode check and the ``rgb_array`` frame.

The frame is a small picture of the cluster drawn with numpy alone (no plotting dependency): one
band per GPU, seven columns (its GPC slices), each partition a block over the slices it occupies,
coloured by the model it hosts, bright while it runs a query and dim while idle, with a white bar
rising from its bottom edge in proportion to its queue (full at 10 queued). A GPU that is down is
dark red; one being reconfigured or drained has a yellow top stripe. Libraries that record videos
(Gymnasium's ``RecordVideo``, SB3's ``VecVideoRecorder``) and ``make_vec_env``, which asks for
``render_mode="rgb_array"`` first, take it as is.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["RENDER_MODES", "check_render_mode", "rgb_frame", "CELL", "ROW"]

RENDER_MODES = ("ansi", "rgb_array")
CELL = 16  # pixels per GPC slice
ROW = 24  # pixels per GPU band (2 of them a gap)
_SLICES = 7
# Colour-blind-safe palette (Wong, Nature Methods 8:441, 2011), one colour per model index.
_PALETTE = np.array(
    [[0, 114, 178], [230, 159, 0], [0, 158, 115], [204, 121, 167], [86, 180, 233], [213, 94, 0]],
    dtype=np.float64,
)
_DOWN = np.array([120, 20, 20], dtype=np.uint8)
_STRIPE = np.array([240, 228, 66], dtype=np.uint8)
_EMPTY = np.array([40, 40, 40], dtype=np.uint8)


def check_render_mode(render_mode: str | None) -> str | None:
    """``render_mode`` if the environments support it, else a ``ValueError`` naming the choices."""
    if render_mode is not None and render_mode not in RENDER_MODES:
        raise ValueError(f"render_mode must be None, 'ansi' or 'rgb_array', got {render_mode!r}")
    return render_mode


def frame_shape(num_gpus: int) -> tuple[int, int, int]:
    """The ``(height, width, 3)`` of an environment's frames (fixed for the environment)."""
    return num_gpus * ROW, _SLICES * CELL, 3


def rgb_frame(sim: Any, num_gpus: int) -> np.ndarray:
    """The cluster's current state as a ``uint8`` image of shape :func:`frame_shape`."""
    img = np.zeros(frame_shape(num_gpus), dtype=np.uint8)
    for g in sim.gpus[:num_gpus]:
        top, band = g.index * ROW, slice(g.index * ROW, g.index * ROW + ROW - 2)
        if g.state == "down":
            img[band, :] = _DOWN
            continue
        img[band, :] = _EMPTY
        for p in g.partitions:
            x0, x1 = p.start * CELL + 1, min(p.start + p.gpcs, _SLICES) * CELL - 1
            shade = 1.0 if p.running is not None else 0.45
            colour = _PALETTE[p.model % len(_PALETTE)] * shade
            img[top + 1 : top + ROW - 3, x0:x1] = colour.astype(np.uint8)
            fill = round((ROW - 4) * min(len(p.queue), 10) / 10)
            if fill:
                bar = slice(x0 + (x1 - x0) // 3, x1 - (x1 - x0) // 3)
                img[top + ROW - 3 - fill : top + ROW - 3, bar] = 255
        if g.state != "up":  # draining or reconfiguring
            img[top : top + 3, :] = _STRIPE
    return img
