"""Profile families (software stacks) and the rules that carry them to every catalogued GPU.

- ``parvagpu_eager``: fitted to ParvaGPU's eager-PyTorch A100-80GB measurements (11 models);
- ``tensorrt``: calibrated to MLPerf Inference's TensorRT results on A100-SXM-80GB (resnet50, bert);
- ``parametric``: ``parvagpu_eager`` with two knobs for sensitivity studies: every size's floor
  scaled by ``floor_scale``, and the per-item cost ``per_item(k) = per_item(1g) * k**-gpc_exponent``
  (with the 1g curve's shape): exponent 1 means a k-GPC slice is exactly k times faster per item.

Other GPUs get *derived* profiles (labelled in ``LatencyProfile.derived``): per size ``k`` the
A100-80GB curve of the same GPC count with its per-item cost scaled by
``SMs(A100, k) / SMs(gpu, k)`` (compute throughput in proportion to SMs, same speed per SM:
conservative for H100) and the floor unchanged (host-side, per query). Admission cutoffs come from
memory: a batch that ran on an A100-80GB instance with no more memory runs, one that ran out of
memory on an instance with no less memory does not; below every measured instance's memory the
memory line decides, capped at the smallest instance's cutoff. See docs/profiles.md.
"""

from __future__ import annotations

import dataclasses

from mig_gym import hardware
from mig_gym.hardware.profiles.curves import KneeCurve, LatencyProfile, ProfileSet

__all__ = ["FAMILIES", "SOURCE_GPU", "derive", "parametric"]

FAMILIES = ("parvagpu_eager", "tensorrt", "parametric")
SOURCE_GPU = "A100-80GB"


def parametric(ps: ProfileSet, floor_scale: float, gpc_exponent: float) -> ProfileSet:
    """``ps`` (knee curves) with scaled floors and per-item cost ``per_item(1g) * k**-exponent``."""
    if floor_scale < 0 or gpc_exponent <= 0:
        raise ValueError(
            f"parametric profiles need floor_scale >= 0 and gpc_exponent > 0, got {floor_scale}, "
            f"{gpc_exponent}"
        )
    out = {}
    for m, lp in ps.profiles.items():
        one = lp.curves[1]
        curves = {
            k: KneeCurve(
                c.floor_s * floor_scale, 0.0, one.per_item_s * k**-gpc_exponent, one.p, one.q
            )
            for k, c in lp.curves.items()
        }
        out[m] = dataclasses.replace(
            lp,
            curves=curves,
            family=f"parametric(floor_scale={floor_scale:g}, gpc_exponent={gpc_exponent:g})",
            _cache={},
        )
    return ProfileSet(ps.gpu, out)


def _cutoffs(lp: LatencyProfile, src: hardware.GPUSpec, mem: float) -> tuple[int, int | None]:
    """(largest batch that runs, first batch out of memory or None) in ``mem`` GiB, from ``lp``'s
    measurements on the source GPU's instances."""
    ran_at = [
        (src.profile_for(k).mem_gb, lp.measured.get(k, (lp.ranges[k][1], None))) for k in lp.sizes
    ]
    ran = max((r for cap, (r, _) in ran_at if cap <= mem), default=None)
    oom = min((o for cap, (_, o) in ran_at if cap >= mem and o is not None), default=None)
    if ran is None:  # less memory than any measured instance
        smallest = min(ran_at)[1][0]
        ran = min(smallest, lp.memory.max_batch(mem, smallest))
    if oom is not None:
        ran = min(ran, oom - 1)
    return ran, oom


def derive(ps: ProfileSet, gpu: str) -> ProfileSet:
    """``ps`` (on ``SOURCE_GPU``) carried to ``gpu`` by the SM and memory rules of this module."""
    src, dst = hardware.gpu_spec(ps.gpu), hardware.gpu_spec(gpu)
    missing = [k for k in dst.sizes if k not in src.sizes]
    if missing:
        raise ValueError(f"cannot derive {gpu} profiles from {ps.gpu}: no {missing}g there")
    out = {}
    for m, lp in ps.profiles.items():
        curves, ranges, measured = {}, {}, {}
        for k in dst.sizes:
            c, scale = lp.curves[k], src.profile_for(k).sms / dst.profile_for(k).sms
            if isinstance(c, KneeCurve):
                c = dataclasses.replace(c, base_s=c.base_s * scale, per_item_s=c.per_item_s * scale)
            curves[k], ranges[k] = c, lp.ranges[k]
            measured[k] = _cutoffs(lp, src, dst.profile_for(k).mem_gb)
        note = (
            f"from {ps.gpu} ({lp.family or 'measured'}): per-item cost x "
            f"SMs({ps.gpu})/SMs({dst.name}) per size, floor unchanged, "
            "batch cutoffs from the instances' memory"
        )
        out[m] = dataclasses.replace(
            lp,
            gpu=dst.name,
            curves=curves,
            ranges=ranges,
            measured=measured,
            derived=note,
            _cache={},
        )
    return ProfileSet(dst.name, out)
