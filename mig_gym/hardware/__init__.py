"""MIG hardware: the GPU catalogue (:mod:`.catalogue`), legal layouts (:mod:`.layouts`) and
service-time profiles (:mod:`.profiles`).

``valid_layouts(gpu)`` enumerates the maximal legal layouts of a GPU from its placement rules.
"""

from mig_gym.hardware.catalogue import (
    GPUSpec,
    InstanceProfile,
    UnknownGPUError,
    gpu_names,
    gpu_spec,
    load_catalogue,
)
from mig_gym.hardware.layouts import (
    Layout,
    Placement,
    check_layout,
    is_legal,
    is_maximal,
    layout_from_sizes,
    size_multisets,
    valid_layouts,
)

__all__ = [
    "GPUSpec",
    "InstanceProfile",
    "UnknownGPUError",
    "gpu_names",
    "gpu_spec",
    "load_catalogue",
    "Layout",
    "Placement",
    "check_layout",
    "is_legal",
    "is_maximal",
    "layout_from_sizes",
    "size_multisets",
    "valid_layouts",
]
