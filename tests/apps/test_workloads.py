from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from justitia.apps import workloads as w
from justitia.apps.model import dump_jsonl, load_jsonl
from justitia.apps.traces import azure_code, azure_conv


def test_names_cover_the_mix_every_type_and_the_trace() -> None:
    names = w.workload_names()
    for n in ("paper-mix", "mapreduce", "self-consistency", "tree-of-thought", "debate", "react", "chat", "azure-chat", "azure-code"):
        assert n in names


@pytest.mark.parametrize("name", w.workload_names())
def test_deterministic_sorted_unique_ids(name: str, tmp_path) -> None:
    a = w.make_workload(name, 200, seed=11)
    assert a == w.make_workload(name, 200, seed=11)
    assert a != w.make_workload(name, 200, seed=12)
    assert len({x.app_id for x in a}) == 200
    assert [x.arrival_s for x in a] == sorted(x.arrival_s for x in a)
    assert a[0].arrival_s == 0.0
    f = tmp_path / "w.jsonl"
    dump_jsonl(a, f)
    assert load_jsonl(f) == a


def test_ids_name_type_and_index() -> None:
    apps = w.make_workload("paper-mix", 50, seed=1)
    for i, a in enumerate(apps):
        assert a.app_id == f"{a.type}-{i:05d}"


def test_paper_mix_shares_and_interleaving(paper_mix_20k) -> None:
    apps = paper_mix_20k
    types = np.array([a.type for a in apps])
    for t, share in w.PAPER_MIX_SHARES.items():
        assert abs(np.mean(types == t) - share) < 0.015, t
    # types are interleaved in time: every type's share in the first and last tenth matches too
    for part in (types[:2000], types[-2000:]):
        for t, share in w.PAPER_MIX_SHARES.items():
            assert abs(np.mean(part == t) - share) < 0.04, t


def test_paper_mix_cost_is_heavy_tailed(paper_mix_20k) -> None:
    """Designed: many small apps (chats), a tail of huge ones (big MapReduce files, long debates).

    Measured on 20k apps: p99/p50 = 11.7-12.8, max/mean = 21-29, mean/median = 2.0 (seeds 1, 2, 3, 6).
    """
    cost = np.array([a.cost for a in paper_mix_20k])
    p50, p99 = np.percentile(cost, [50, 99])
    assert p99 / p50 > 10
    assert cost.max() / cost.mean() > 15
    assert cost.mean() > 1.5 * p50  # right-skewed
    # and the tail is the multi-call apps, not chats
    apps = w.make_workload("paper-mix", 5_000, seed=3)
    top = sorted(apps, key=lambda a: a.cost)[-50:]
    assert all(a.type != "chat" for a in top)


def test_azure_chat_replays_consecutive_trace_rows_with_their_gaps() -> None:
    tr = azure_conv()
    apps = w.make_workload("azure-chat", 300, seed=4, rate=2.0)
    pairs = [(a.stages[0].calls[0].prompt_tokens, a.stages[0].calls[0].output_tokens) for a in apps]
    starts = [i for i in range(len(tr)) if (tr.prompt_tokens[i], tr.output_tokens[i]) == pairs[0]]
    ok = False
    for s in starts:
        rows = (s + np.arange(300)) % len(tr)
        ref = list(zip(tr.prompt_tokens[rows].tolist(), tr.output_tokens[rows].tolist()))
        fits = [p + o <= 4096 for p, o in ref]
        if all(r == q for r, q, f in zip(ref, pairs, fits) if f):
            t = tr.arrived_at[rows] - tr.arrived_at[rows[0]]
            got = np.array([a.arrival_s for a in apps])
            if rows[-1] > rows[0]:  # no wrap: arrival gaps are the trace's, scaled by one factor
                ratio = got[1:] / np.maximum(t[1:], 1e-12)
                assert np.allclose(ratio[t[1:] > 0], ratio[-1], rtol=1e-9)
            ok = True
    assert ok
    # mean rate is the requested one
    got = np.array([a.arrival_s for a in apps])
    assert 300 / (got[-1] * 300 / 299) == pytest.approx(2.0, rel=1e-9)


def test_azure_code_replays_code_trace_rows() -> None:
    tr = azure_code()
    pairs = set(zip(tr.prompt_tokens.tolist(), tr.output_tokens.tolist()))
    apps = w.make_workload("azure-code", 500, seed=3)
    assert {a.type for a in apps} == {"code"}
    calls = [a.stages[0].calls[0] for a in apps]
    inside = [c for c in calls if c.prompt_tokens + c.output_tokens < 4096]
    assert len(inside) > 300 and all((c.prompt_tokens, c.output_tokens) in pairs for c in inside)


def test_trace_arrivals_option_keeps_the_trace_burstiness() -> None:
    """A full lap of the Azure trace has a time-varying rate: counts per 50 expected arrivals are
    over-dispersed (variance/mean ≈ 3.7 measured) where Poisson arrivals give ≈ 1."""
    def dispersion(apps) -> float:
        t = np.array([x.arrival_s for x in apps])
        c = np.bincount((t // 50).astype(int))
        return float(c.var() / c.mean())

    assert dispersion(w.make_workload("chat", 19_366, seed=5, arrivals="trace")) > 2.5
    assert dispersion(w.make_workload("chat", 19_366, seed=5)) < 1.5


def test_bad_names_and_sizes_are_clear_errors() -> None:
    with pytest.raises(ValueError, match=r"unknown workload 'nope'.*paper-mix"):
        w.make_workload("nope", 10, 0)
    with pytest.raises(ValueError, match="n_apps"):
        w.make_workload("paper-mix", 0, 0)
    with pytest.raises(ValueError, match="arrival process"):
        w.make_workload("paper-mix", 5, 0, arrivals="uniform")
    with pytest.raises(ValueError, match=r"unknown workload 'nope'.*paper-mix.*\.jsonl"):
        w.load_workload("nope", 10, 0)
    with pytest.raises(FileNotFoundError):
        w.load_workload("missing.jsonl", 10, 0)


def test_load_workload_name_or_file(tmp_path) -> None:
    apps = w.load_workload("debate", 30, 7)
    assert apps == w.make_workload("debate", 30, 7)
    f = tmp_path / "mine.jsonl"
    dump_jsonl(apps, f)
    assert w.load_workload(str(f)) == apps
    assert w.load_workload(f, 10) == apps[:10]


def test_module_cli_writes_jsonl(tmp_path) -> None:
    out = tmp_path / "mix.jsonl"
    r = subprocess.run([sys.executable, "-m", "justitia.apps.workloads", "paper-mix", "40", "9", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "40 applications" in r.stdout
    assert load_jsonl(out) == w.make_workload("paper-mix", 40, 9)
    r = subprocess.run([sys.executable, "-m", "justitia.apps.workloads", "nope", "4", "1", str(tmp_path / "x.jsonl")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "unknown workload 'nope'" in r.stderr


def test_workload_summary_adds_up() -> None:
    apps = w.make_workload("paper-mix", 400, seed=13)
    rows = {r["type"]: r for r in w.workload_summary(apps)}
    assert set(rows) == {a.type for a in apps} | {"all"}
    per_type = [r for t, r in rows.items() if t != "all"]
    assert sum(r["apps"] for r in per_type) == rows["all"]["apps"] == 400
    assert sum(r["calls"] for r in per_type) == rows["all"]["calls"] == sum(a.num_calls for a in apps)
    assert rows["all"]["mean_cost"] == pytest.approx(np.mean([a.cost for a in apps]))
    for r in rows.values():
        assert r["p50_cost"] <= r["p99_cost"] <= r["max_cost"]
