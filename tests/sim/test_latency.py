"""Latency model: the calibration reproduces DESIGN §4's figures; analytic attention; the linear fit."""

from __future__ import annotations

import json
import random

import pytest

from justitia.paths import shared_data_dir
from justitia.sim.config import nominal_iteration_s, preset
from justitia.sim.latency import (
    LLAMA2_7B,
    LinearLatency,
    ProfileCurve,
    StepSample,
    fit_tokenwise,
    gpu_latency,
    latency_from_json,
    load_latency,
    load_profile,
)

# DESIGN §4 (public profiles): linear layers of one iteration, milliseconds
DESIGN = {
    "a100-llama2-7b": (9.3, 2.2, 0.0646),
    "h100-llama2-7b": (5.6, 2.9, 0.0204),
}


@pytest.mark.parametrize("name", sorted(DESIGN))
def test_tokenwise_fit_matches_design_figures(name: str) -> None:
    flat, a, b = DESIGN[name]
    t = gpu_latency(name).tokenwise
    for n in (1, 8, 32, 64):
        assert t(n) * 1e3 == pytest.approx(flat, rel=0.10), n
    for n in (256, 512, 1024, 2048, 4096, 8192):
        assert t(n) * 1e3 == pytest.approx(a + b * n, rel=0.10), n
    assert 64 <= t.knee_tokens <= 256


@pytest.mark.parametrize("fname", ["h100_llama2_7b_mlp.csv", "a100_llama2_7b_mlp.csv", "a100_llama3_8b_mlp.csv"])
def test_tokenwise_fit_and_curve_follow_the_profile(fname: str) -> None:
    pts = load_profile(shared_data_dir() / "profiling" / fname, layers=32)
    fit = fit_tokenwise(pts)
    errs = sorted(abs(fit(n) - t) / t for n, t in pts)
    assert errs[len(errs) // 2] < 0.05  # median error of the two-piece fit
    assert max(abs(fit(n) - t) / t for n, t in pts if n <= 64 or n >= 512) < 0.25  # single noisy points
    curve = ProfileCurve(pts, fit.b_s)
    assert all(curve(n) == pytest.approx(t, rel=0.02) for n, t in pts)  # repeated sizes are averaged
    (n0, t0), (n1, t1) = pts[10], pts[11]
    assert curve((n0 + n1) // 2) == pytest.approx(t0 + (t1 - t0) * ((n0 + n1) // 2 - n0) / (n1 - n0))
    assert curve(curve.ns[-1] + 1000) == pytest.approx(curve.ts[-1] + 1000 * fit.b_s)


def test_engine_uses_the_measured_curve() -> None:
    lat = gpu_latency("a100-llama2-7b")
    pts = dict(load_profile(shared_data_dir() / "profiling" / "a100_llama2_7b_mlp.csv", layers=32))
    assert lat.decode_base_s(136) == pytest.approx(pts[136])  # 17.6 ms, where the fit says 11.0 ms
    assert gpu_latency("a100-llama2-7b", tokenwise="fit").decode_base_s(136) == pytest.approx(lat.tokenwise(136))


def test_decode_attention_is_kv_read_over_bandwidth() -> None:
    lat = gpu_latency("h100-llama2-7b")
    assert LLAMA2_7B.kv_bytes_per_token == 2 * 32 * 4096 * 2  # K and V, 32 layers, fp16
    full = lat.step_s(0, 256, 122_800) - lat.step_s(0, 256, 0)
    assert full == pytest.approx(122_800 * 524_288 / 3.35e12, rel=1e-9)  # ≈ 19.2 ms to read a full KV cache
    assert 0.018 < full < 0.020
    a100 = gpu_latency("a100-llama2-7b")
    assert a100.kv_s_per_token / lat.kv_s_per_token == pytest.approx(3.35 / 2.0)


def test_prefill_attention_is_quadratic() -> None:
    lat = gpu_latency("h100-llama2-7b")
    one = lat.step_s(2048, 0, 0, 2048.0**2) - lat.step_s(2048, 0, 0, 0.0)
    two = lat.step_s(2048, 0, 0, 4096.0**2) - lat.step_s(2048, 0, 0, 0.0)
    assert two == pytest.approx(4 * one)
    assert one == pytest.approx(2 * 2048**2 * 4096 * 32 / (0.5 * 989e12))


def test_presets_and_nominal_iteration() -> None:
    cfg = preset("h100-llama2-7b")
    assert cfg.kv_capacity == 122_800 and cfg.num_blocks == 7675
    assert cfg.max_num_batched_tokens == 8192 and cfg.max_num_seqs == 256
    it = nominal_iteration_s(cfg)
    assert 0.025 < it < 0.030  # T_lin(256) ≈ 9.2 ms + full KV read ≈ 19.2 ms
    assert nominal_iteration_s(preset("a100-llama2-7b")) > it
    with pytest.raises(ValueError, match="unknown engine preset"):
        preset("tpu-v5")


def test_linear_latency_fit_recovers_coefficients(tmp_path) -> None:
    true = LinearLatency(a=0.02, b=3e-5, c=4e-4, d=2e-7)
    rng = random.Random(0)
    samples = []
    for _ in range(300):
        p, d, kv = rng.randint(0, 2000), rng.randint(0, 64), rng.randint(0, 40_000)
        samples.append(StepSample(p, d, kv, true.step_s(p, d, kv) * (1 + rng.gauss(0, 0.01))))
    fit = LinearLatency.fit(samples)
    assert fit.a == pytest.approx(true.a, rel=0.05)
    assert fit.b == pytest.approx(true.b, rel=0.05)
    assert fit.c == pytest.approx(true.c, rel=0.05)
    assert fit.d == pytest.approx(true.d, rel=0.05)
    tuples = LinearLatency.fit([(s.prefill_tokens, s.decode_tokens, s.kv_tokens_read, s.seconds) for s in samples])
    assert tuples.to_json() == fit.to_json()
    path = tmp_path / "lat.json"
    fit.save(path)
    back = load_latency(path)
    assert isinstance(back, LinearLatency) and back.to_json() == fit.to_json()
    gpu = gpu_latency("a100-llama2-7b")
    again = latency_from_json(json.loads(json.dumps(gpu.to_json())))
    assert again.step_s(100, 50, 9999, 7.0) == gpu.step_s(100, 50, 9999, 7.0)


def test_linear_latency_bad_input(tmp_path) -> None:
    with pytest.raises(ValueError, match="at least 4 samples"):
        LinearLatency.fit([(1, 1, 1, 0.1)] * 3)
    with pytest.raises(ValueError, match="sample must be"):
        LinearLatency.fit([(1, 1, 0.1)] * 5)
    with pytest.raises(ValueError, match="finite"):
        LinearLatency(float("nan"), 0, 0, 0)
    with pytest.raises(FileNotFoundError):
        load_latency(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"kind": "quantum"}')
    with pytest.raises(ValueError, match="unknown latency model kind"):
        load_latency(bad)
    bad.write_text('{"kind": "linear", "a": 1}')
    with pytest.raises(ValueError, match="malformed linear"):
        load_latency(bad)
