"""Per-application metrics of a run against the fair-sharing reference (issue 2 §5, DESIGN §2).

For every application ``i`` of a :class:`~justitia.sim.result.RunResult`:

* ``act_s`` — application completion time, completion − arrival;
* ``fair_finish_s`` — its finish time ``F_i`` in the fluid fair-sharing reference: weighted GPS over
  applications on the KV capacity ``M`` at ``rate = M / iteration_s`` token·iterations per second
  (clock eqs. 1–2), fed the *true* costs (cost eq. 2), computed by
  :func:`justitia.core.clock.fair_finish_times`;
* ``delay_vs_fair_s`` — completion − ``F_i`` (negative: it finished before its fair share would have);
* ``critical_path_s`` — the app's own minimum duration on the engine (see :func:`critical_path_s`).

The bound (``fair_bound_s``)
----------------------------
Packetized GPS (Parekh & Gallager 1993): a server that serves whole packets one at a time in the order
of their GPS finish times finishes every packet ``p`` no later than ``F_p + L_max / r`` (``L_max`` the
largest packet, ``r`` the link rate). Justitia is that scheme with *applications* as packets: their
"length" is their cost ``C_i`` (token·iterations), the "link" is the KV cache, whose rate is
``r = M / iteration_s`` token·iterations per second, and apps are served in order of ``F_i``. So

    fair_bound_s = C_max / r = (C_max / M) · iteration_s                               (bound eq. 1)

with ``C_max`` the largest application cost in the workload. ``iteration_s`` is one reference
iteration time shared by every policy of a comparison, so the reference and the bound are identical
across policies; ``justitia simulate`` uses the engine's *measured* saturated service rate
(``iteration_s = M / rate``, see :mod:`justitia.bench.experiment`), because the nominal decode-only
iteration overstates what the engine can deliver (~1.4× on paper-mix / H100).

The fluid reference idealises the engine in ways the engine cannot match, so bound eq. 1 alone cannot
hold for an application that cannot *use* its share:

* **Sequential stages and tool delays.** In GPS an active app absorbs its full share at every moment;
  on the engine a stage waits for the previous one (and its ``delay_s``), holding no KV meanwhile.
* **Per-request KV limits.** A call with prompt ``p`` and output ``o`` holds at most ``p + o`` tokens
  and needs ``o`` decode iterations however empty the cache is: an app alone in GPS gets all ``M``
  tokens and finishes in ``C_i / M`` iterations, the engine needs at least its longest call's ``o``.
* **Prefill compute.** Prompt tokens cost iterations (``ceil(p / chunk)`` at a per-iteration token
  budget) but no token·iterations in cost eq. 1.

An app's shortest possible duration on the engine is therefore its critical path (bound eq. 2 below),
and the allowance we check is the PGPS term plus that:

    allowed_delay_i = fair_bound_s + critical_path_s(i)                                (bound eq. 3)

**Fragmentation.** Running requests are preempted only when the cache runs out, never to admit a
waiting one (as in vLLM), and nothing is admitted past a waiting head. While app ``i``'s request waits
first in line for ``D`` iterations, the requests holding the cache were admitted before it arrived,
and it does not fit: fewer than ``p_i`` tokens are free (``p_i`` its largest prompt). So the engine
serves ``≥ (M − p_i)·D`` token·iterations to work the PGPS term already charges, and
``D ≤ C/M + p_i·D/M``: the PGPS term plus the unused cache, ``p_i / M`` of each iteration, which the rate-``M`` reference
never loses. ``D`` is at most the longest call ``j`` of another app (its critical path: prefill
iterations + ``o_j − 1``), after which everything admitted before ``i`` arrived has finished. Theorem
B.1 assumes prompts small against ``M`` (no fragmentation), where this vanishes; with large ones it
does not. Example (4 apps, ``M`` = 1024): a 283+300-token request admitted 0.1 ms before a 600-token
prompt arrives holds 18–37 of 64 blocks for 300 iterations, the prompt needs 38 and waits them all out
(``C/M`` = 127 iterations); two 274-token sequences against a 577-token prompt do the same. So

    allowed_delay_i = fair_bound_s + critical_path_s(i) + blocking_s(i) + iteration     (bound eq. 5)

with ``blocking_s(i) = p_i / M · D_max`` (:func:`fragmentation_blocking_s`), 0 if ``i``'s largest
prompt fits beside all other apps' calls at once (it can never wait). The last term is the engine step
in progress when ``i`` arrives: steps are not preempted, so a request arriving mid-step waits for it (the
PGPS "packet in transmission", with the step as the packet; one iteration at the critical path's
measured iteration time). Found by hypothesis: three one-token apps arriving 1 ms apart, the second
0.1 ms past eq. 5 without it.

``apps_over_fair_bound`` counts apps with ``delay_vs_fair_s > allowed_delay_i`` (plus a tiny epsilon).
This is an engineering carry-over, not a theorem. It further assumes (a) the engine sustains the
reference's rate ``M / iteration_s`` — hence the measured rate; (b) a request with a smaller tag can
start when it is first in line, but for the fragmentation above; (c) memory is the bottleneck — in
a burst of long prompts prefill *compute* is, and the memory-centric reference does not see it. A count > 0 under oracle costs points at one of these;
``apps_over_pfq_bound`` (bound eq. 1 alone) is kept for contrast.

The paper's bound and its fairness metric
-----------------------------------------
Theorem B.1 of the paper bounds Justitia's lateness against GPS by ``2·c_max + C_max / M`` in time
units where the server serves ``M`` token·iterations per unit; ``c_max`` is the largest single
inference's cost. Read with every cost over the rate (the only dimensionally consistent reading), in
seconds ``paper_bound_s = (2·c_max + C_max) / M · iteration_s`` (bound eq. 4), the same reference rate
as ours. It has no critical-path term, so ``apps_over_paper_bound`` counts apps later than it.

The paper's **finish-time fair ratio** of an app is its ACT under a policy ÷ its ACT under VTC (the
fair reference of §5); :func:`apply_fair_ratios` sets it on every app of every policy of a comparison
that ran ``vtc``, and :meth:`PolicyMetrics.summary` then reports the share of apps with ratio ≤ 1 and
the worst ratio.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from justitia.apps.model import AppSpec
from justitia.core.clock import fair_finish_times
from justitia.sim.result import RunResult

# Tolerance for "later than the bound": float noise of the event-driven clock, not a slack.
BOUND_EPS_S = 1e-6
BOUND_EPS_REL = 1e-9


def critical_path_s(app: AppSpec, iteration_s: float, prefill_tokens_per_iter: int | None = None) -> float:
    """Bound eq. 2: the app's minimum duration on an engine with iteration time ``iteration_s``.

    Per stage: its ``delay_s``, plus the iterations to prefill all its prompts at
    ``prefill_tokens_per_iter`` tokens per iteration (``ceil(Σp / chunk)``; 1 per call's first token if
    ``None``, i.e. prefill not modelled), plus the decode iterations of its longest call (``max o − 1``:
    the last prefill iteration emits the first token). Stages run one after another.
    """
    if not (iteration_s > 0 and math.isfinite(iteration_s)):
        raise ValueError(f"iteration_s must be a positive finite number, got {iteration_s!r}")
    if prefill_tokens_per_iter is not None and prefill_tokens_per_iter <= 0:
        raise ValueError(f"prefill_tokens_per_iter must be > 0, got {prefill_tokens_per_iter!r}")
    total = 0.0
    for stage in app.stages:
        prompt = sum(c.prompt_tokens for c in stage.calls)
        prefill_iters = 1 if prefill_tokens_per_iter is None else math.ceil(prompt / prefill_tokens_per_iter)
        decode_iters = max(c.output_tokens for c in stage.calls) - 1
        total += stage.delay_s + (prefill_iters + decode_iters) * iteration_s
    return total


def fragmentation_blocking_s(app: AppSpec, others: Iterable[AppSpec], capacity_tokens: float, iteration_s: float,
                             prefill_tokens_per_iter: int | None = None) -> float:
    """Bound eq. 5: the cache ``app``'s largest prompt ``p_i`` can leave unused while it waits, in seconds.

    ``p_i / M`` times the longest critical path (prefill iterations + ``o_j − 1``) of another app's call
    ``j``, at ``iteration_s`` (module docstring, "Fragmentation"); 0 if ``p_i`` fits beside every other
    app's call at once (``p_i + Σ_j (p_j + o_j) ≤ M``), when it never waits for room.
    """
    p_i = max((c.prompt_tokens for c in app.calls()), default=0)
    held = 0
    worst = 0
    for other in others:
        if other.app_id == app.app_id:
            continue
        for c in other.calls():
            held += c.prompt_tokens + c.output_tokens
            pre = 1 if prefill_tokens_per_iter is None else math.ceil(c.prompt_tokens / prefill_tokens_per_iter)
            worst = max(worst, pre + c.output_tokens - 1)
    if p_i + held <= capacity_tokens:
        return 0.0
    return worst * iteration_s * min(p_i / capacity_tokens, 1.0)  # it waits D at most


def fragmentation_terms(apps: Sequence[AppSpec], capacity_tokens: float, iteration_s: float,
                        prefill_tokens_per_iter: int | None = None) -> dict[str, float]:
    """Bound eq. 5's blocking term of every application at capacity ``capacity_tokens``, in seconds: the
    values of :func:`justitia.bench.metrics.fragmentation_blocking_s` (each app against all others),
    computed in one pass (O(calls), not O(apps × calls))."""
    held: dict[str, int] = {}
    worst: dict[str, int] = {}
    prompt: dict[str, int] = {}
    for a in apps:
        h = w = p = 0
        for c in a.calls():
            h += c.prompt_tokens + c.output_tokens
            pre = 1 if prefill_tokens_per_iter is None else math.ceil(c.prompt_tokens / prefill_tokens_per_iter)
            w = max(w, pre + c.output_tokens - 1)
            p = max(p, c.prompt_tokens)
        held[a.app_id], worst[a.app_id], prompt[a.app_id] = h, w, p
    total = sum(held.values())
    top = sorted(((w, i) for i, w in worst.items()), reverse=True)[:2]  # the longest call of *another* app
    out: dict[str, float] = {}
    for i, p_i in prompt.items():
        if p_i + total - held[i] <= capacity_tokens:
            out[i] = 0.0
            continue
        d = next((w for w, j in top if j != i), 0)
        out[i] = d * iteration_s * min(p_i / capacity_tokens, 1.0)
    return out


def pfq_bound_s(costs: Iterable[float], capacity_tokens: float, iteration_s: float) -> float:
    """Bound eq. 1: ``(C_max / M) · iteration_s`` seconds — the largest app served at the full rate."""
    if not (capacity_tokens > 0 and math.isfinite(capacity_tokens)):
        raise ValueError(f"capacity_tokens must be a positive finite number, got {capacity_tokens!r}")
    if not (iteration_s > 0 and math.isfinite(iteration_s)):
        raise ValueError(f"iteration_s must be a positive finite number, got {iteration_s!r}")
    c_max = max(costs, default=0.0)
    return c_max / capacity_tokens * iteration_s


@dataclass(slots=True)
class AppMetrics:
    """One application's outcome next to its fair-sharing reference. Times in seconds."""

    app_id: str
    app_type: str
    arrival_s: float
    completion_s: float
    fair_finish_s: float
    cost: float
    estimated_cost: float | None
    critical_path_s: float
    allowed_delay_s: float  # bound eq. 5 (eq. 3 + fragmentation)
    fair_ratio: float | None = None  # ACT / ACT under vtc, set by apply_fair_ratios

    @property
    def act_s(self) -> float:
        return self.completion_s - self.arrival_s

    @property
    def fair_act_s(self) -> float:
        """ACT the app would have had in the fluid reference."""
        return self.fair_finish_s - self.arrival_s

    @property
    def delay_vs_fair_s(self) -> float:
        return self.completion_s - self.fair_finish_s

    @property
    def over_bound(self) -> bool:
        tol = BOUND_EPS_S + BOUND_EPS_REL * abs(self.fair_finish_s)
        return self.delay_vs_fair_s > self.allowed_delay_s + tol


@dataclass(slots=True)
class PolicyMetrics:
    """All metrics of one policy's run; :meth:`summary` is its ``summary.json`` entry (exact shape)."""

    policy: str
    apps: list[AppMetrics]
    fair_bound_s: float  # bound eq. 1
    throughput_tok_s: float
    preemptions: int
    makespan_s: float = 0.0
    wall_s: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)
    paper_bound_s: float = 0.0  # bound eq. 4

    @property
    def apps_over_paper_bound(self) -> int:
        """Apps later than their fair finish + the paper's bound (eq. 4; no critical-path term)."""
        return sum(
            1 for a in self.apps
            if a.delay_vs_fair_s > self.paper_bound_s + BOUND_EPS_S + BOUND_EPS_REL * abs(a.fair_finish_s)
        )

    def fair_ratios(self) -> np.ndarray | None:
        """Every app's finish-time fair ratio, or ``None`` if :func:`apply_fair_ratios` did not set them."""
        if not self.apps or any(a.fair_ratio is None for a in self.apps):
            return None
        return np.array([a.fair_ratio for a in self.apps], dtype=float)

    def acts(self) -> np.ndarray:
        return np.array([a.act_s for a in self.apps], dtype=float)

    def delays(self) -> np.ndarray:
        return np.array([a.delay_vs_fair_s for a in self.apps], dtype=float)

    @property
    def apps_over_fair_bound(self) -> int:
        """Apps later than fair finish + their allowance (bound eq. 5: eq. 3 + fragmentation)."""
        return sum(1 for a in self.apps if a.over_bound)

    @property
    def apps_over_pfq_bound(self) -> int:
        """Apps later than fair finish + bound eq. 1 alone (ignores the engine's own limits)."""
        return sum(
            1 for a in self.apps
            if a.delay_vs_fair_s > self.fair_bound_s + BOUND_EPS_S + BOUND_EPS_REL * abs(a.fair_finish_s)
        )

    @property
    def mean_act_s(self) -> float:
        return float(self.acts().mean()) if self.apps else 0.0

    def summary(self) -> dict[str, float | int]:
        """The per-policy object of ``summary.json`` (issue 2 §5), exactly these keys."""
        acts, delays = self.acts(), self.delays()
        empty = not self.apps

        def pct(q: float) -> float:
            return 0.0 if empty else float(np.percentile(acts, q))  # linear interpolation

        return {
            "apps": len(self.apps),
            "mean_act_s": 0.0 if empty else float(acts.mean()),
            "p50_act_s": pct(50),
            "p90_act_s": pct(90),
            "p99_act_s": pct(99),
            "max_act_s": 0.0 if empty else float(acts.max()),
            "mean_delay_vs_fair_s": 0.0 if empty else float(delays.mean()),
            "max_delay_vs_fair_s": 0.0 if empty else float(delays.max()),
            "apps_over_fair_bound": int(self.apps_over_fair_bound),
            "fair_bound_s": float(self.fair_bound_s),
            "throughput_tok_s": float(self.throughput_tok_s),
            "preemptions": int(self.preemptions),
            "paper_bound_s": float(self.paper_bound_s),
            "apps_over_paper_bound": int(self.apps_over_paper_bound),
            **self.fair_ratio_summary(),
        }

    def fair_ratio_summary(self) -> dict[str, float]:
        """``fair_ratio_le1_share`` and ``fair_ratio_max`` if the ratios are set, else nothing."""
        r = self.fair_ratios()
        if r is None:
            return {}
        return {"fair_ratio_le1_share": share_no_later(r), "fair_ratio_max": float(r.max())}


FAIR_RATIO_EPS = 1e-9
"""An app "no later than under VTC" may differ by float noise only."""


def fair_ratio(act_s: float, reference_act_s: float) -> float:
    """The paper's finish-time fair ratio (§5.1): an app's JCT ÷ its JCT under the reference (VTC)."""
    return act_s / reference_act_s if reference_act_s > 0 else (1.0 if act_s <= 0 else math.inf)


def share_no_later(ratios: np.ndarray) -> float:
    """Share of fair ratios <= 1 (up to :data:`FAIR_RATIO_EPS`): apps finishing no later than under VTC."""
    return float(np.mean(ratios <= 1.0 + FAIR_RATIO_EPS))


def paper_bound_s(max_call_cost: float, max_app_cost: float, capacity_tokens: float, iteration_s: float) -> float:
    """Bound eq. 4, the paper's Theorem B.1 in seconds: ``(2·c_max + C_max) / M · iteration_s``."""
    return (2.0 * max_call_cost + max_app_cost) / capacity_tokens * iteration_s


def apply_fair_ratios(metrics: Sequence[PolicyMetrics], reference: str = "vtc") -> bool:
    """Set every app's finish-time fair ratio (ACT ÷ its ACT under ``reference``) on every policy's
    metrics; ``False`` (nothing set, any old ratios cleared) if ``reference`` did not run. An app
    missing from the reference run is an error."""
    ref = next((m for m in metrics if m.policy == reference), None)
    if ref is None:
        for m in metrics:
            for a in m.apps:
                a.fair_ratio = None
        return False
    base = {a.app_id: a.act_s for a in ref.apps}
    for m in metrics:
        for a in m.apps:
            if a.app_id not in base:
                raise ValueError(f"app {a.app_id!r} of policy {m.policy!r} did not run under {reference!r}")
            a.fair_ratio = fair_ratio(a.act_s, base[a.app_id])
    return True


def evaluate(
    result: RunResult,
    workload: Sequence[AppSpec] | Mapping[str, AppSpec] | None = None,
    *,
    iteration_s: float | None = None,
    capacity_tokens: float | None = None,
    prefill_tokens_per_iter: int | None = None,
    path_iteration_s: float | None = None,
) -> PolicyMetrics:
    """Metrics of one run against the fluid fair-sharing reference of the same workload.

    ``iteration_s`` / ``capacity_tokens`` default to the run's; pass the engine's *nominal* iteration
    time so every policy of a comparison shares one reference. ``workload`` gives each app's stages for
    its critical path (bound eq. 2), timed at ``path_iteration_s`` (default ``iteration_s``: pass the
    engine's real saturated iteration time when the reference's is a rate-equivalent one); without a
    workload the allowance is bound eq. 1 alone. Every app of the
    workload must appear in the result (and vice versa): a missing one is an error, not a silent drop.
    """
    it_s = float(result.iteration_s if iteration_s is None else iteration_s)
    cap = float(result.capacity_tokens if capacity_tokens is None else capacity_tokens)
    path_it = it_s if path_iteration_s is None else float(path_iteration_s)
    specs: dict[str, AppSpec] = {}
    if workload is not None:
        specs = dict(workload) if isinstance(workload, Mapping) else {a.app_id: a for a in workload}
        got = {r.app_id for r in result.apps}
        missing = sorted(set(specs) - got)
        unknown = sorted(got - set(specs))
        if missing or unknown:
            raise ValueError(
                f"run of policy {result.policy!r} does not match its workload: "
                f"{len(missing)} app(s) without a record (e.g. {missing[:3]}), "
                f"{len(unknown)} record(s) not in the workload (e.g. {unknown[:3]})"
            )
    ids = [r.app_id for r in result.apps]
    if len(set(ids)) != len(ids):
        raise ValueError(f"run of policy {result.policy!r} has duplicate app ids")
    for r in result.apps:
        if not (math.isfinite(r.completion_s) and r.completion_s >= r.arrival_s):
            raise ValueError(
                f"app {r.app_id!r} of policy {result.policy!r} has completion {r.completion_s!r} "
                f"before its arrival {r.arrival_s!r} (unfinished?)"
            )
    fair = fair_finish_times([(r.app_id, r.arrival_s, r.cost, r.weight) for r in result.apps], cap, it_s)
    bound = pfq_bound_s((r.cost for r in result.apps), cap, it_s)
    c_max = max((c.cost for a in specs.values() for c in a.calls()), default=0.0)  # unknown without a workload
    paper = paper_bound_s(c_max, max((r.cost for r in result.apps), default=0.0), cap, it_s)
    frags = fragmentation_terms(list(specs.values()), cap, path_it, prefill_tokens_per_iter)
    apps: list[AppMetrics] = []
    for r in result.apps:
        spec = specs.get(r.app_id)
        path = critical_path_s(spec, path_it, prefill_tokens_per_iter) if spec is not None else 0.0
        frag = frags.get(r.app_id, 0.0)
        apps.append(
            AppMetrics(
                app_id=r.app_id,
                app_type=r.app_type,
                arrival_s=r.arrival_s,
                completion_s=r.completion_s,
                fair_finish_s=fair[r.app_id],
                cost=r.cost,
                estimated_cost=r.estimated_cost,
                critical_path_s=path,
                allowed_delay_s=bound + path + frag + path_it,
            )
        )
    return PolicyMetrics(
        policy=result.policy,
        apps=apps,
        fair_bound_s=bound,
        throughput_tok_s=result.throughput_tok_s,
        preemptions=int(result.preemptions),
        makespan_s=result.makespan_s,
        wall_s=result.wall_s,
        extra=dict(result.extra),
        paper_bound_s=paper,
    )
