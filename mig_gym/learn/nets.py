"""Policy networks for the environments (torch; ``train`` extra only).

``SlotPolicy`` is a MaskablePPO / PPO actor-critic for ``Dispatch-v0`` that scores every partition
slot with one shared MLP over ``[slot features, query and global features]``: the score of a slot
does not depend on where the slot sits in the observation, so what is learned about one partition
applies to all (a flat MLP must learn each of the P slots separately). The critic is a plain MLP
over the whole observation.
"""

from __future__ import annotations

from typing import Any

import torch
from sb3_contrib import MaskablePPO
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3 import PPO
from torch import nn

from mig_gym.envs.dispatch import PART_FEATURES

__all__ = ["SlotExtractor", "SlotPolicy"]


class SlotExtractor(nn.Module):
    """``forward_actor`` -> one logit per slot; ``forward_critic`` -> a latent for the value."""

    def __init__(self, feature_dim: int, slots: int, hidden: int = 64) -> None:
        super().__init__()
        self.slots = slots
        self.f = len(PART_FEATURES)
        ctx = feature_dim - slots * self.f
        self.scorer = nn.Sequential(
            nn.Linear(self.f + ctx, hidden),
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
        ctx = x[:, n:].unsqueeze(1).expand(-1, self.slots, -1)
        return self.scorer(torch.cat([per_slot, ctx], dim=-1)).squeeze(-1)

    def forward_critic(self, x: torch.Tensor) -> torch.Tensor:
        return self.critic(x)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.forward_actor(x), self.forward_critic(x)


class SlotPolicy(MaskableActorCriticPolicy):
    """MaskablePPO policy with a shared per-slot scorer (use with ``Dispatch-v0``)."""

    def __init__(self, *args: Any, hidden: int = 64, **kwargs: Any) -> None:
        self._hidden = hidden
        kwargs.setdefault("ortho_init", False)
        super().__init__(*args, **kwargs)

    def _build_mlp_extractor(self) -> None:
        self.mlp_extractor = SlotExtractor(
            self.features_dim, int(self.action_space.n), self._hidden
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
