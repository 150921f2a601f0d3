"""Policy networks for the environments (torch; ``train`` extra only).

``SlotPolicy`` is a MaskablePPO / PPO actor-critic for ``Dispatch-v0`` that scores every partition
slot with one shared MLP over ``[slot features, query and global features]``: the score of a slot
does not depend on where the slot sits in the observation, so what is learned about one partition
applies to all (a flat MLP must learn each of the P slots separately). The critic is a plain MLP
over the whole observation. With ``feasible=True`` each slot's input also carries the indicator
``est_done <= 1`` (the query would finish within its SLA there), the threshold ELSA's rule turns
on, which a smooth scorer otherwise has to approximate and gets wrong near the boundary.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from sb3_contrib import MaskablePPO
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3 import PPO
from torch import nn

from mig_gym.envs.dispatch import PART_FEATURES

_EST_DONE = PART_FEATURES.index("est_done")  # (backlog + service time) / SLA of the query there

__all__ = ["SlotExtractor", "SlotPolicy", "LayoutExtractor", "LayoutPolicy", "choice_features"]


class SlotExtractor(nn.Module):
    """``forward_actor`` -> one logit per slot; ``forward_critic`` -> a latent for the value."""

    def __init__(
        self, feature_dim: int, slots: int, hidden: int = 64, feasible: bool = False
    ) -> None:
        super().__init__()
        self.slots = slots
        self.f = len(PART_FEATURES)
        self.feasible = feasible
        ctx = feature_dim - slots * self.f
        self.scorer = nn.Sequential(
            nn.Linear(self.f + int(feasible) + ctx, hidden),
            nn.Tanh(),
            nn.Linear(hidden, hidden),
            nn.Tanh(),
            nn.Linear(hidden, 1),
        )
        self.critic = nn.Sequential(
            nn.Linear(feature_dim, 2 * hidden), nn.Tanh(), nn.Linear(2 * hidden, hidden), nn.Tanh()
        )
        self.latent_dim_pi = slots
        self.latent_dim_vf = hidden

    def forward_actor(self, x: torch.Tensor) -> torch.Tensor:
        n = self.slots * self.f
        per_slot = x[:, :n].reshape(-1, self.slots, self.f)
        if self.feasible:  # 1 where the query would finish within its SLA (est_done <= 1)
            ok = (per_slot[..., _EST_DONE] <= 1.0).to(per_slot.dtype).unsqueeze(-1)
            per_slot = torch.cat([per_slot, ok], dim=-1)
        ctx = x[:, n:].unsqueeze(1).expand(-1, self.slots, -1)
        return self.scorer(torch.cat([per_slot, ctx], dim=-1)).squeeze(-1)

    def forward_critic(self, x: torch.Tensor) -> torch.Tensor:
        return self.critic(x)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.forward_actor(x), self.forward_critic(x)


class SlotPolicy(MaskableActorCriticPolicy):
    """MaskablePPO policy with a shared per-slot scorer (use with ``Dispatch-v0``)."""

    def __init__(self, *args: Any, hidden: int = 64, feasible: bool = False, **kwargs: Any) -> None:
        self._hidden, self._feasible = hidden, feasible
        kwargs.setdefault("ortho_init", False)
        super().__init__(*args, **kwargs)

    def _build_mlp_extractor(self) -> None:
        self.mlp_extractor = SlotExtractor(
            self.features_dim, int(self.action_space.n), self._hidden, self._feasible
        )

    def _build(self, lr_schedule: Any) -> None:
        super()._build(lr_schedule)
        self.action_net = nn.Identity()  # the extractor already emits one logit per slot
        self.optimizer = self.optimizer_class(
            self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs
        )


# "SlotPolicy" in hyperparameter files (ours and rl_zoo3's) resolves to this class.
MaskablePPO.policy_aliases["SlotPolicy"] = SlotPolicy
PPO.policy_aliases["SlotPolicy"] = SlotPolicy


class LayoutExtractor(nn.Module):
    """Partition-v0 actor: one logit per (GPU, layout x model) choice, from what the choice is.

    ``logit[g, c] = phi[c] . u_g(obs) + keep * [c is GPU g's current choice]``: ``phi[c]`` are fixed
    features of choice ``c`` (the number of partitions of each size in its layout, the hosted
    model, their products), ``u_g`` a learned projection per GPU of an MLP over the observation,
    ``keep`` a learned bonus for leaving a GPU as it is (re-partitioning costs downtime). What is
    learned about one layout carries over to layouts with similar partitions, which a flat MLP
    over 21 x M unrelated indices per GPU cannot do."""

    def __init__(
        self, feature_dim: int, gpus: int, phi: torch.Tensor, hidden: int, keep_init: float
    ) -> None:
        super().__init__()
        self.gpus, self.choices = gpus, phi.shape[0]
        self.register_buffer("phi", phi)
        self.body = nn.Sequential(
            nn.Linear(feature_dim, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh()
        )
        self.proj = nn.Linear(hidden, gpus * phi.shape[1])
        nn.init.zeros_(self.proj.weight)  # starts uniform over choices, plus the keep bonus
        nn.init.zeros_(self.proj.bias)
        self.keep = nn.Parameter(torch.tensor(float(keep_init)))
        self.critic = nn.Sequential(
            nn.Linear(feature_dim, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh()
        )
        self.latent_dim_pi = gpus * self.choices
        self.latent_dim_vf = hidden

    def forward_actor(self, x: torch.Tensor) -> torch.Tensor:
        u = self.proj(self.body(x)).reshape(-1, self.gpus, self.phi.shape[1])
        logits = u @ self.phi.T  # (batch, gpus, choices)
        # The observation ends with each GPU's current choice index / (choices - 1).
        cur = torch.round(x[:, -self.gpus :] * (self.choices - 1)).long()
        cur = cur.clamp(0, self.choices - 1)
        keep = torch.zeros_like(logits).scatter_(-1, cur.unsqueeze(-1), 1.0)
        return (logits + self.keep * keep).reshape(-1, self.gpus * self.choices)

    def forward_critic(self, x: torch.Tensor) -> torch.Tensor:
        return self.critic(x)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.forward_actor(x), self.forward_critic(x)


def choice_features(layouts: Sequence[Sequence[int]], sizes: Sequence[int], models: int) -> list:
    """``phi`` of :class:`LayoutExtractor`: for choice ``layout * models + model``, the count of
    each partition size in the layout, the model one-hot, their outer product and a 1."""
    rows = []
    for lay in layouts:
        counts = [float(sum(1 for p in lay if p == s)) for s in sizes]
        for m in range(models):
            hot = [1.0 if i == m else 0.0 for i in range(models)]
            rows.append([*counts, *hot, *(c * h for c in counts for h in hot), 1.0])
    return rows


class LayoutPolicy(MaskableActorCriticPolicy):
    """MaskablePPO policy for ``Partition-v0`` with the actor of :class:`LayoutExtractor`.

    ``choice_features``: ``phi`` rows, one per action index (``choice_features(...)`` of the
    environment's ``layouts``); the training code fills it in from the environment."""

    def __init__(
        self,
        *args: Any,
        choice_features: Sequence[Sequence[float]] = (),
        hidden: int = 64,
        keep_init: float = 3.0,
        **kwargs: Any,
    ) -> None:
        if not choice_features:
            raise ValueError("LayoutPolicy needs choice_features (one row per action index)")
        self._phi = torch.tensor(choice_features, dtype=torch.float32)
        self._hidden, self._keep_init = hidden, keep_init
        kwargs.setdefault("ortho_init", False)
        super().__init__(*args, **kwargs)

    def _build_mlp_extractor(self) -> None:
        nvec = self.action_space.nvec
        if len(set(nvec.tolist())) != 1 or int(nvec[0]) != self._phi.shape[0]:
            raise ValueError(
                f"LayoutPolicy: {self._phi.shape[0]} choice feature rows for actions {nvec}"
            )
        self.mlp_extractor = LayoutExtractor(
            self.features_dim, len(nvec), self._phi, self._hidden, self._keep_init
        )

    def _build(self, lr_schedule: Any) -> None:
        super()._build(lr_schedule)
        self.action_net = nn.Identity()  # the extractor already emits every choice's logit
        self.optimizer = self.optimizer_class(
            self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs
        )


MaskablePPO.policy_aliases["LayoutPolicy"] = LayoutPolicy
