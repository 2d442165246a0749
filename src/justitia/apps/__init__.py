"""Applications (stages of parallel calls), workload generators and trace loaders."""

from justitia.apps.model import AppSpec, Call, Stage, dump_jsonl, load_jsonl

__all__ = ["AppSpec", "Call", "Stage", "dump_jsonl", "load_jsonl"]
