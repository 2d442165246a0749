"""The application model and its JSONL format (paper §3: an agent is stages of parallel inferences).

An application is a list of stages; the calls of a stage run in parallel, and a stage starts when the
previous one has finished plus its ``delay_s`` (tool / think time). One JSON object per line:

    {"app_id": "a1", "arrival_s": 0.0, "type": "mapreduce", "weight": 1.0,
     "stages": [{"calls": [{"prompt_tokens": 900, "output_tokens": 120}], "delay_s": 0.0}]}
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from justitia.core.cost import call_cost


@dataclass(frozen=True, slots=True)
class Call:
    prompt_tokens: int
    output_tokens: int

    @property
    def cost(self) -> float:
        """Cost eq. 1 of this call."""
        return call_cost(self.prompt_tokens, self.output_tokens)


@dataclass(frozen=True, slots=True)
class Stage:
    calls: tuple[Call, ...]
    delay_s: float = 0.0


@dataclass(frozen=True, slots=True)
class AppSpec:
    app_id: str
    arrival_s: float
    type: str
    stages: tuple[Stage, ...]
    weight: float = 1.0

    @property
    def cost(self) -> float:
        """Cost eq. 2: the application's total memory-centric cost (token·iterations)."""
        return sum(c.cost for s in self.stages for c in s.calls)

    @property
    def compute_cost(self) -> int:
        """VTC's cost of the whole application, ``Σ (p + 2d)`` (the contrast of §4.1; Justitia/C's tag)."""
        return sum(c.prompt_tokens + 2 * c.output_tokens for s in self.stages for c in s.calls)

    @property
    def num_calls(self) -> int:
        return sum(len(s.calls) for s in self.stages)

    def calls(self) -> Iterator[Call]:
        for s in self.stages:
            yield from s.calls

    def to_json(self) -> dict[str, Any]:
        return {
            "app_id": self.app_id,
            "arrival_s": self.arrival_s,
            "type": self.type,
            "weight": self.weight,
            "stages": [
                {"calls": [{"prompt_tokens": c.prompt_tokens, "output_tokens": c.output_tokens} for c in s.calls],
                 "delay_s": s.delay_s}
                for s in self.stages
            ],
        }

    @classmethod
    def from_json(cls, obj: Any, where: str = "") -> AppSpec:
        """Parse and validate one application; errors name the field and ``where`` (file:line)."""
        at = f"{where}: " if where else ""

        def fail(msg: str) -> ValueError:
            return ValueError(f"{at}{msg}")

        if not isinstance(obj, dict):
            raise fail(f"an application must be a JSON object, got {type(obj).__name__}")
        for k in ("app_id", "arrival_s", "stages"):
            if k not in obj:
                raise fail(f"missing field {k!r}")
        app_id = obj["app_id"]
        if not isinstance(app_id, str) or not app_id:
            raise fail(f"'app_id' must be a non-empty string, got {app_id!r}")
        arrival = _num(obj["arrival_s"], "arrival_s", fail)
        if arrival < 0:
            raise fail(f"'arrival_s' must be >= 0, got {arrival}")
        weight = _num(obj.get("weight", 1.0), "weight", fail)
        if weight <= 0:
            raise fail(f"'weight' must be > 0, got {weight}")
        app_type = obj.get("type", "unknown")
        if not isinstance(app_type, str):
            raise fail(f"'type' must be a string, got {app_type!r}")
        stages_raw = obj["stages"]
        if not isinstance(stages_raw, list) or not stages_raw:
            raise fail("'stages' must be a non-empty list")
        stages = []
        for i, s in enumerate(stages_raw):
            if not isinstance(s, dict) or not isinstance(s.get("calls"), list) or not s["calls"]:
                raise fail(f"stages[{i}] must be an object with a non-empty 'calls' list")
            delay = _num(s.get("delay_s", 0.0), f"stages[{i}].delay_s", fail)
            if delay < 0:
                raise fail(f"stages[{i}].delay_s must be >= 0, got {delay}")
            calls = []
            for j, c in enumerate(s["calls"]):
                if not isinstance(c, dict):
                    raise fail(f"stages[{i}].calls[{j}] must be an object")
                p = _int(c.get("prompt_tokens"), f"stages[{i}].calls[{j}].prompt_tokens", fail, minimum=1)
                o = _int(c.get("output_tokens"), f"stages[{i}].calls[{j}].output_tokens", fail, minimum=1)
                calls.append(Call(p, o))
            stages.append(Stage(tuple(calls), delay))
        return cls(app_id=app_id, arrival_s=arrival, type=app_type, stages=tuple(stages), weight=weight)


def _num(v: Any, name: str, fail: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise fail(f"{name!r} must be a finite number, got {v!r}")
    return float(v)


def _int(v: Any, name: str, fail: Any, minimum: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        else:
            raise fail(f"{name!r} must be an integer, got {v!r}")
    if v < minimum:
        raise fail(f"{name!r} must be >= {minimum}, got {v}")
    return v


def arrival_features(spec: AppSpec, *, hints: bool = False) -> dict[str, Any]:
    """The ``AppInfo.features`` an engine knows when ``spec`` arrives (DESIGN §6): its first stage
    (fan-out and prompt lengths) and, with ``hints``, the declared structure (stages and calls).

    One function for the simulator and the predictor's training path, so both see identical features.
    """
    first = spec.stages[0].calls
    prompts = [c.prompt_tokens for c in first]
    feats: dict[str, Any] = {
        "first_stage_calls": len(first),
        "prompt_tokens_total": int(sum(prompts)),
        "prompt_tokens_max": int(max(prompts)),
        # VTC's cost of the whole app, Σ (p + 2d): what the oracle of Justitia/C's ablation tags with
        "compute_cost": spec.compute_cost,
    }
    if hints:
        feats["hint_stages"] = len(spec.stages)
        feats["hint_calls"] = spec.num_calls
    return feats


def load_jsonl(path: str | Path) -> list[AppSpec]:
    """Read a workload file; duplicate ids and malformed lines are errors naming the line."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"workload file not found: {path}")
    apps: list[AppSpec] = []
    seen: set[str] = set()
    with path.open() as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{n}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{where}: not valid JSON ({e.msg})") from None
            app = AppSpec.from_json(obj, where)
            if app.app_id in seen:
                raise ValueError(f"{where}: duplicate app_id {app.app_id!r}")
            seen.add(app.app_id)
            apps.append(app)
    if not apps:
        raise ValueError(f"{path}: no applications in workload file")
    apps.sort(key=lambda a: (a.arrival_s, a.app_id))
    return apps


def dump_jsonl(apps: Iterable[AppSpec], path: str | Path) -> None:
    with Path(path).open("w") as f:
        for a in apps:
            f.write(json.dumps(a.to_json()) + "\n")
