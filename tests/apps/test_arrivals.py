from __future__ import annotations

import numpy as np
import pytest

from justitia.apps import arrivals as ar
from justitia.apps.workloads import make_workload


def test_poisson_rate_and_exponential_gaps() -> None:
    t = ar.poisson_arrivals(50_000, 4.0, np.random.default_rng(0))
    assert t[0] == 0.0 and np.all(np.diff(t) >= 0)
    gaps = np.diff(t)
    assert gaps.mean() == pytest.approx(0.25, rel=0.02)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, abs=0.03)


def test_trace_arrivals_wrap_keep_order_and_rate() -> None:
    rng = np.random.default_rng(1)
    t = ar.trace_arrivals(50_000, 3.0, rng)  # > 2 laps of the 19,366-row trace
    assert t[0] == 0.0 and np.all(np.diff(t) >= 0)
    assert len(t) / ar.arrival_window_s(t) == pytest.approx(3.0, rel=1e-9)
    assert ar.trace_arrivals(0, 1.0, rng).size == 0
    with pytest.raises(ValueError, match="rate"):
        ar.trace_arrivals(5, 0.0, rng)


@pytest.mark.parametrize("load", [0.5, 0.9, 1.5])
def test_scale_to_load_offers_the_requested_load(load: float, paper_mix_20k) -> None:
    """Offered load measured independently: the cost arriving per second over each half of the run,
    divided by the service rate, matches ``load`` within a few percent (the mix is stationary)."""
    service_rate = 122_800 / 0.025  # Llama-2-7B KV on H100 / a 25 ms iteration
    apps = paper_mix_20k
    scaled = ar.scale_to_load(apps, load, service_rate)
    assert [a.app_id for a in scaled] == [a.app_id for a in apps]
    assert apps[5].arrival_s != scaled[5].arrival_s  # input not modified, output re-timed
    assert ar.offered_load(scaled, service_rate) == pytest.approx(load, rel=1e-9)
    t = np.array([a.arrival_s for a in scaled])
    c = np.array([a.cost for a in scaled])
    mid = t[-1] / 2
    for lo, hi in ((0.0, mid), (mid, t[-1])):
        inside = (t >= lo) & (t < hi)
        assert c[inside].sum() / (service_rate * (hi - lo)) == pytest.approx(load, rel=0.06)
    # the arrival rate λ is the one at which apps of the mean cost offer the load: λ = load · rate / mean
    lam = len(t) / ar.arrival_window_s(t)
    assert lam == pytest.approx(load * service_rate / c.mean(), rel=1e-9)


def test_scale_to_load_bad_input() -> None:
    apps = make_workload("chat", 10, seed=0)
    with pytest.raises(ValueError, match="load"):
        ar.scale_to_load(apps, 0.0, 1e6)
    with pytest.raises(ValueError, match="service_rate"):
        ar.scale_to_load(apps, 1.0, -1.0)
    with pytest.raises(ValueError, match="at least 2 arrivals"):
        ar.scale_to_load(apps[:1], 1.0, 1e6)
