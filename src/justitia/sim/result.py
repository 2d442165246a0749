"""What a simulation run returns: the contract between :mod:`justitia.sim` and :mod:`justitia.bench`."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class AppRecord:
    """One application's outcome. Times in seconds of simulated (or real) time."""

    app_id: str
    app_type: str
    arrival_s: float
    completion_s: float
    cost: float  # true memory-centric cost, token·iterations (cost eq. 2)
    weight: float = 1.0
    num_calls: int = 0
    estimated_cost: float | None = None  # what the policy's estimator said at arrival, if any

    @property
    def act_s(self) -> float:
        """Application completion time (ACT): completion minus arrival."""
        return self.completion_s - self.arrival_s


@dataclass(slots=True)
class RunResult:
    """Outcome of serving one workload under one policy (simulated or real engine).

    ``capacity_tokens`` (KV capacity M) and ``iteration_s`` (the engine's measured mean iteration time
    while saturated) define the service rate ``M / iteration_s`` of the fair-sharing reference.
    """

    policy: str
    apps: list[AppRecord]
    capacity_tokens: float
    iteration_s: float
    makespan_s: float
    prompt_tokens: int = 0
    output_tokens: int = 0
    preemptions: int = 0
    iterations: int = 0
    wall_s: float = 0.0  # wall-clock seconds the run took
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def throughput_tok_s(self) -> float:
        """Generated tokens per second of (simulated) time."""
        return self.output_tokens / self.makespan_s if self.makespan_s > 0 else 0.0
