"""The setup of the reproduction (§5.1 of the paper): workload, engine, loads, sizes of every experiment.

:class:`PaperConfig` holds every knob; :func:`full` and :func:`quick` are the two presets of
``justitia reproduce``. The workload is a parameter: ``paper-suite`` (the paper's nine agent classes,
300 agents squeezed into an 18 / 9 / 6-minute window = density 1× / 2× / 3×) when it is available, else
``paper-mix`` on the H100 preset with density ``d`` read as offered load ``d × load_per_density``
(the stand-in until the paper's suite and engine preset land; switching is :data:`PREFERRED`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from justitia.apps.model import AppSpec

# The paper's setup, used when this build has it (workload, GPU preset); else the stand-in below.
PREFERRED = ("paper-suite", "a100-40gb")
STAND_IN = ("paper-mix", "h100")

# Fig. 7's policies, the paper's names → ours (§5.1 baselines).
PAPER_POLICIES: dict[str, str] = {
    "vLLM": "fcfs",
    "vLLM-SJF": "req-sjf",
    "Parrot": "app_fcfs",
    "VTC": "vtc",
    "SRJF": "sjf-mlp",
    "Justitia": "justitia-mlp",
    "Justitia (oracle)": "justitia",
}


@dataclass(frozen=True)
class PaperConfig:
    """Everything ``justitia reproduce`` runs. Sizes shrink in :func:`quick`."""

    workload: str = STAND_IN[0]
    gpu: str = STAND_IN[1]
    n_apps: int = 300
    seed: int = 1
    densities: tuple[int, ...] = (1, 2, 3)
    load_per_density: float = 1.0  # stand-in only: density d = offered load d × this
    policies: tuple[str, ...] = tuple(PAPER_POLICIES.values())
    # Fig. 9: one elephant, then a mouse every `mouse_gap_s`
    elephant_type: str = "mapreduce"
    mouse_types: tuple[str, ...] = ("chat", "react")
    mice: tuple[int, ...] = (100, 200, 300, 400, 500)
    mouse_gap_s: float = 1.0
    # Fig. 10: λ values and noise seeds averaged
    lambdas: tuple[float, ...] = (1.0, 2.0, 3.0, 4.0)
    noise_seeds: int = 3
    # Table 1: training samples per type, held-out density
    train_per_type: int = 100
    table_density: int = 2
    # Fig. 12: densities (arrival rates) at which the decision time is measured
    overhead_densities: tuple[float, ...] = (1.0, 2.0, 3.0, 5.0, 8.0)
    input_text: Callable[[AppSpec], str] | None = field(default=None, compare=False)
    exact_dynamic_keys: bool = False  # EngineConfig: VTC/SJF keys lag service ≤ 64 iterations (fast)
    workers: int = 2  # processes for Fig. 7's independent runs

    def replace(self, **changes: Any) -> PaperConfig:
        return dataclasses.replace(self, **changes)

    @property
    def paper_setup(self) -> bool:
        """True when running the paper's own workload (not the stand-in)."""
        return self.workload == PREFERRED[0]


def _paper_suite_available() -> bool:
    from justitia.apps.workloads import WORKLOADS
    from justitia.bench.experiment import GPU_PRESETS

    return PREFERRED[0] in WORKLOADS and PREFERRED[1] in GPU_PRESETS


def full(**changes: Any) -> PaperConfig:
    """The full reproduction (every figure at the paper's sizes). Another ``workload`` than ``paper-suite``
    runs with the stand-in's agent types (Fig. 9) and no input texts (Table 1 without TF-IDF)."""
    cfg = PaperConfig()
    if changes.get("workload", PREFERRED[0]) == PREFERRED[0] and _paper_suite_available():
        cfg = cfg.replace(**paper_suite_settings())
    return cfg.replace(**changes) if changes else cfg


def quick(**changes: Any) -> PaperConfig:
    """A smaller run of every figure (< 3 min on 2 cores): 100 agents, 1× and 3×, fewer mice, one noise seed,
    40 training agents per type."""
    small = dict(n_apps=100, mice=(100, 300), noise_seeds=1, lambdas=(1.0, 3.0), train_per_type=40,
                 overhead_densities=(1.0, 3.0, 6.0), densities=(1, 3), table_density=3)
    return full(**{**small, **changes})


def paper_suite_settings() -> dict[str, Any]:
    """The paper's workload, engine and agent classes (only when this build has them)."""
    from justitia.apps.paper_inputs import paper_suite_input_text

    return {"workload": PREFERRED[0], "gpu": PREFERRED[1], "elephant_type": "mrs",
            "mouse_types": ("kbqa-v", "cc", "alfwi"), "input_text": paper_suite_input_text}


def make_apps(cfg: PaperConfig, density: float, seed: int | None = None, n_apps: int | None = None) -> list[AppSpec]:
    """The workload at ``density`` (1 = the paper's 18-minute window; module docstring)."""
    from justitia.bench.experiment import prepare_workload

    seed = cfg.seed if seed is None else seed
    n = cfg.n_apps if n_apps is None else n_apps
    if cfg.paper_setup:
        from justitia.apps.arrivals import density_rate
        from justitia.apps.workloads import make_workload

        return make_workload(PREFERRED[0], n, seed, rate=density_rate(density))
    _, apps = prepare_workload(cfg.workload, n, density * cfg.load_per_density, seed, cfg.gpu)
    return apps


def type_samples(cfg: PaperConfig, app_type: str, n: int, seed: int) -> list[AppSpec]:
    """``n`` agents of one type, all arriving at 0 (Table 1's training sets, Fig. 9's elephant and mice):
    a class of the paper's suite from its own generator, else the single-type named workload."""
    import numpy as np

    classes = _paper_classes()
    if app_type in classes:
        rng = np.random.default_rng([seed, 13])
        return [classes[app_type](rng, f"{app_type}-{i:05d}", 0.0) for i in range(n)]
    from justitia.apps.workloads import make_workload

    return make_workload(app_type, n, seed)


def _paper_classes() -> dict[str, Callable[..., AppSpec]]:
    try:
        from justitia.apps.paper_suite import PAPER_CLASSES
    except ImportError:
        return {}
    return dict(PAPER_CLASSES)


def workload_types(apps: Sequence[AppSpec]) -> list[str]:
    return sorted({a.type for a in apps})
