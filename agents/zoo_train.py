"""Train the mig_gym environments with rl_zoo3's trainer (MaskablePPO by default).

    pip install 'mig_gym[zoo]'          # rl_zoo3 (not part of the train extra)
    python agents/zoo_train.py -n 512
    python agents/zoo_train.py --scenario scenarios/bursty.yaml -n 200000 --vec-env subproc
    python agents/zoo_train.py --algo ppo_mask --env mig_gym/Partition-v0 \
        --env-kwargs scenario:"'scenarios/diurnal_drift.yaml'" -tb runs/zoo

Every argument is rl_zoo3's (``python -m rl_zoo3.train --help``), with these defaults when absent:
``--algo ppo_mask --env mig_gym/Dispatch-v0 --conf-file mig_gym/learn/hyperparams/<algo>.yml``
(``ppo_mask`` -> ``maskable_ppo.yml``, ``ppo`` -> ``ppo.yml``, ``dqn`` -> ``dqn.yml``). One extra
option: ``--scenario FILE``, short for ``--env-kwargs scenario:"'FILE'"``.

rl_zoo3 2.9.2 has no MaskablePPO entry, so this launcher registers it as ``ppo_mask`` (rl_zoo3's
``ALGOS``, hyperparameter sampler and converter of PPO) and, for ``ppo_mask``, makes rl_zoo3's
periodic evaluation use the action masks (``MaskableEvalCallback``). Importing ``mig_gym`` registers
the environments and ``mig_gym.learn.nets`` the ``SlotPolicy`` alias used in the YAML files.
The model lands in ``logs/<algo>/mig_gym-Dispatch-v0_<n>/mig_gym-Dispatch-v0.zip``; compare it with
``mig-gym compare SCENARIO --policies paris+elsa,maskable_ppo:THAT.zip``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

try:
    from rl_zoo3 import exp_manager, hyperparams_opt, utils
    from rl_zoo3.train import train
except ImportError as _e:  # an optional extra: one line naming it, not a traceback
    _MISSING = f"zoo_train.py needs rl_zoo3 ({_e.name} is missing): pip install 'mig_gym[zoo]'"
    if {"-h", "--help"} & set(sys.argv[1:]):  # the launcher's own help still works
        print(f"{__doc__}\n{_MISSING}")
        sys.exit(0)
    print(_MISSING, file=sys.stderr)
    sys.exit(2)
from sb3_contrib import MaskablePPO
from sb3_contrib.common.maskable.callbacks import MaskableEvalCallback

import mig_gym.learn.nets  # noqa: F401  (registers the environments and the "SlotPolicy" alias)

HYPERPARAMS = Path(__file__).resolve().parent / "hyperparams"
CONF_FILES = {"ppo_mask": "maskable_ppo.yml", "ppo": "ppo.yml", "dqn": "dqn.yml"}


def register_maskable_ppo() -> None:
    """Make ``--algo ppo_mask`` (sb3-contrib's MaskablePPO) known to rl_zoo3."""
    utils.ALGOS.setdefault("ppo_mask", MaskablePPO)  # the dict exp_manager and train read
    hyperparams_opt.HYPERPARAMS_SAMPLER.setdefault(
        "ppo_mask", hyperparams_opt.HYPERPARAMS_SAMPLER["ppo"]
    )
    hyperparams_opt.HYPERPARAMS_CONVERTER.setdefault(
        "ppo_mask", hyperparams_opt.HYPERPARAMS_CONVERTER["ppo"]
    )


def zoo_argv(argv: list[str]) -> list[str]:
    """rl_zoo3 arguments: ours filled in where absent, ``--scenario`` turned into env kwargs."""
    ours = argparse.ArgumentParser(add_help=False)
    ours.add_argument("--algo", default="ppo_mask")
    ours.add_argument("--env", default="mig_gym/Dispatch-v0")
    ours.add_argument("-conf", "--conf-file", default=None)
    ours.add_argument("--scenario", default=None)
    known, rest = ours.parse_known_args(argv)
    conf = known.conf_file
    if conf is None and known.algo in CONF_FILES:
        conf = str(HYPERPARAMS / CONF_FILES[known.algo])
    out = [
        "--algo",
        known.algo,
        "--env",
        known.env,
        *(["--conf-file", conf] if conf else []),
        *rest,
    ]
    if known.scenario is not None:
        kw = f"scenario:{known.scenario!r}"
        if "--env-kwargs" in out:  # rl_zoo3 keeps only the last --env-kwargs: join them
            out.insert(out.index("--env-kwargs") + 1, kw)
        else:
            out += ["--env-kwargs", kw]
    return out


def main(argv: list[str] | None = None) -> None:
    args = zoo_argv(sys.argv[1:] if argv is None else argv)
    register_maskable_ppo()
    if args[args.index("--algo") + 1] == "ppo_mask":
        exp_manager.EvalCallback = MaskableEvalCallback  # evaluate with the action masks
    sys.argv = [sys.argv[0], *args]
    train()


if __name__ == "__main__":
    main()
