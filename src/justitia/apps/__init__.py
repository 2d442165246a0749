"""Applications (stages of parallel calls), workload generators and trace loaders (paper §5.1's workload)."""

from justitia.apps.model import AppSpec, Call, Stage, dump_jsonl, load_jsonl

__all__ = ["AppSpec", "Call", "Stage", "dump_jsonl", "load_jsonl"]
