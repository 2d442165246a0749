"""Justitia's Prometheus series: values, label cap, throttled flush, and multiprocess export (issue 6 §4)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

prom = pytest.importorskip("prometheus_client")
from prometheus_client import CollectorRegistry, generate_latest  # noqa: E402

from justitia.vllm.metrics import MAX_APP_TYPES, NAMES, Recorder, multiproc_env  # noqa: E402


def value(reg: CollectorRegistry, name: str, **labels: str) -> float | None:
    return reg.get_sample_value(name, labels or None)


def test_recorder_writes_every_series() -> None:
    now = [0.0]
    reg = CollectorRegistry()
    rec = Recorder(registry=reg, interval_s=1.0, clock=lambda: now[0])
    rec.add_served("chat", 100.0)
    rec.add_served("chat", 50.0)
    rec.add_served("mapreduce", 7.0)
    rec.set_state(active_apps=3, virtual_time=12.5)
    assert rec.flush()
    assert value(reg, "justitia_served_cost_total", app_type="chat") == 150.0
    assert value(reg, "justitia_served_cost_total", app_type="mapreduce") == 7.0
    assert value(reg, "justitia_active_apps") == 3 and value(reg, "justitia_virtual_time") == 12.5
    # Throttled: within interval_s nothing is written; the pending cost is kept, not lost.
    rec.add_served("chat", 1.0)
    rec.set_state(active_apps=1, virtual_time=20.0)
    now[0] = 0.5
    assert not rec.flush()
    assert value(reg, "justitia_served_cost_total", app_type="chat") == 150.0
    now[0] = 1.0
    assert rec.flush()
    assert value(reg, "justitia_served_cost_total", app_type="chat") == 151.0
    assert value(reg, "justitia_active_apps") == 1
    rec.app_completed("chat", 3.0)
    rec.app_completed("chat", 30.0)
    assert value(reg, "justitia_app_completion_seconds_count", app_type="chat") == 2
    assert value(reg, "justitia_app_completion_seconds_sum", app_type="chat") == 33.0
    assert value(reg, "justitia_app_completion_seconds_bucket", app_type="chat", le="5.0") == 1
    rec.preempted(2)
    rec.sync_fallbacks(3)
    rec.sync_fallbacks(3)  # no increase: nothing added
    rec.sync_fallbacks(5)
    assert value(reg, "justitia_preemptions_total") == 2
    assert value(reg, "justitia_policy_fallbacks_total") == 5
    text = generate_latest(reg).decode()
    for name in NAMES:
        assert name in text, name


def test_app_type_labels_are_capped() -> None:
    reg = CollectorRegistry()
    rec = Recorder(registry=reg, interval_s=0.0)
    for i in range(MAX_APP_TYPES + 10):
        rec.add_served(f"type{i}", 1.0)
    rec.flush(force=True)
    labels = {s.labels["app_type"] for m in reg.collect() if m.name == "justitia_served_cost" for s in m.samples
              if s.name.endswith("_total")}
    assert len(labels) == MAX_APP_TYPES + 1 and "other" in labels
    assert value(reg, "justitia_served_cost_total", app_type="other") == 10.0


def test_series_written_in_another_process_reach_the_multiprocess_collector(tmp_path: Path) -> None:
    """What vLLM's /metrics does: the EngineCore writes, the API process reads the folder."""
    env, cleanup = multiproc_env()
    folder = env["PROMETHEUS_MULTIPROC_DIR"]
    try:
        assert os.path.isdir(folder) and not os.listdir(folder)
        child = textwrap.dedent("""
            from justitia.vllm.metrics import recorder
            r = recorder()
            r.add_served("chat", 42.0)
            r.set_state(active_apps=4, virtual_time=9.0)
            r.flush(force=True)
            r.app_completed("chat", 2.0)
            r.preempted()
            r.sync_fallbacks(1)
        """)
        subprocess.run([sys.executable, "-c", child], env=env, check=True, timeout=60)
        assert os.listdir(folder)  # mmap files written
        from prometheus_client import multiprocess

        reg = CollectorRegistry()
        multiprocess.MultiProcessCollector(reg, path=folder)
        assert value(reg, "justitia_served_cost_total", app_type="chat") == 42.0
        assert value(reg, "justitia_active_apps") == 4
        assert value(reg, "justitia_virtual_time") == 9.0
        assert value(reg, "justitia_app_completion_seconds_count", app_type="chat") == 1
        assert value(reg, "justitia_preemptions_total") == 1
        assert value(reg, "justitia_policy_fallbacks_total") == 1
    finally:
        cleanup()
    assert not os.path.exists(folder)
    # A caller that already chose a folder keeps it, and cleanup leaves it alone.
    env2, cleanup2 = multiproc_env({"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)})
    cleanup2()
    assert env2["PROMETHEUS_MULTIPROC_DIR"] == str(tmp_path) and tmp_path.is_dir()
