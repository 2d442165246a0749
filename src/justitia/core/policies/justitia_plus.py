"""Justitia+: the paper's Justitia (§4.3) with a gentler online refinement of under-predicted costs.

Justitia tags an agent at arrival with ``F = V(a) + Ĉ / w`` from its *predicted* cost ``Ĉ``. When
an agent's service passes ``Ĉ`` the prediction was low; our ``justitia`` then re-tags it as if it
cost ``2 ×`` its service so far (so an under-predicted agent cannot keep a small tag for ever). Measured
on paper-mix (300 apps, loads 0.9 and 3.0) with the MLP predictor, that doubling is what costs
``justitia-mlp`` against the paper's algorithm: an agent under-predicted by a little is pushed behind
everything that arrived since (mean JCT 26.4 s and 43.4 s at loads 0.9 and 3.0; 24.7 s and 40.8 s
without refinement) and fewer agents finish no later than under VTC. Justitia+ re-tags to :data:`REFINE_FACTOR` (1.25) × the
service so far: each overrun moves the tag only a little past the service already received — the
agent keeps close to the place its real cost would have given it — while an agent whose real cost is
far beyond its prediction is still re-tagged again and again, geometrically, so it cannot hold a
small tag for ever (the starvation guard the paper's algorithm lacks). With oracle costs no overrun
happens and Justitia+ is Justitia (same tags, same bound). Measured with the MLP: 24.9 s / 57 % of
agents no later than under VTC at load 0.9 (justitia-mlp 26.4 s / 55 %), 41.2 s / 57 % at 3.0 (43.4 s
/ 52 %); README "Beyond the paper".
"""

from __future__ import annotations

from justitia.core.policies.justitia import Justitia
from justitia.core.policy import Estimator

REFINE_FACTOR = 1.25
"""New estimate = this × the service received when an agent outgrows its estimate."""


class JustitiaPlus(Justitia):
    """Justitia with refinement to :data:`REFINE_FACTOR` × service (module docstring)."""

    name = "justitia-plus"

    def __init__(self, capacity_tokens: float, iteration_s: float, estimator: Estimator | None = None) -> None:
        super().__init__(capacity_tokens, iteration_s, estimator, refine=True, refine_factor=REFINE_FACTOR)
