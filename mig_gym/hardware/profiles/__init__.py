"""Service-time profiles: how long one query of ``batch`` items takes alone on a partition.

Built-in profiles are a compact fit to the ParvaGPU A100-80GB measurements (Lee et al., SC 2024;
see ``docs/profiles.md``): per (model, size) ``L(b) = (floor**p + (base + per_item*b)**p)**(1/p)``,
a smooth maximum of a flat floor and a line. Users can load measured tables instead (ParvaGPU CSV or
mig_gym CSV); batches between measured points interpolate, outside the range is an error unless
extrapolation is asked for. Memory is linear in batch, ``memory_gb(b) = base + per_item*b``.

Modules: :mod:`~mig_gym.hardware.profiles.curves` (curves, memory model, containers),
:mod:`.csv_files` (CSV loaders), :mod:`.builtin` (built-in and
synthetic profiles); everything is importable from ``mig_gym.hardware.profiles``.
"""

from mig_gym.hardware.profiles.builtin import (
    BUILTIN_FILES,
    FAMILY_FILES,
    builtin_profiles,
    linear_profile,
    load_fitted_yaml,
    merge,
)
from mig_gym.hardware.profiles.csv_files import (
    INTERPOLATIONS,
    MIG_GYM_COLUMNS,
    PARVAGPU_COLUMNS,
    load_mig_gym_csv,
    load_parvagpu_csv,
    read_parvagpu_csv,
)
from mig_gym.hardware.profiles.curves import (
    ADMISSIONS,
    KneeCurve,
    LatencyProfile,
    MemoryModel,
    ProfileRangeError,
    ProfileSet,
    TableCurve,
    fit_memory_model,
)
from mig_gym.hardware.profiles.families import FAMILIES, derive, parametric

__all__ = [
    "ADMISSIONS",
    "BUILTIN_FILES",
    "FAMILIES",
    "FAMILY_FILES",
    "derive",
    "parametric",
    "INTERPOLATIONS",
    "KneeCurve",
    "LatencyProfile",
    "MIG_GYM_COLUMNS",
    "MemoryModel",
    "PARVAGPU_COLUMNS",
    "ProfileRangeError",
    "ProfileSet",
    "TableCurve",
    "builtin_profiles",
    "fit_memory_model",
    "linear_profile",
    "load_fitted_yaml",
    "load_mig_gym_csv",
    "load_parvagpu_csv",
    "merge",
    "read_parvagpu_csv",
]
