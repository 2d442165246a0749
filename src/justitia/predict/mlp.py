"""The demand-prediction MLP and its PyTorch training loop (DESIGN §6: "a simple neural network").

Input: the standardised arrival features (:mod:`justitia.predict.features`); output: the standardised
``log(cost)`` (cost eq. 2). Two hidden layers of 64 ReLU units (~5k parameters). Loss: L1 in log space
(the conditional *median* of the cost, which is what the median relative error rewards and what is
robust to the heavy tail). Adam, mini-batches, a held-out 10 % of the training split picks the best
epoch. Serving uses the numpy forward pass of :class:`justitia.predict.models.PredictorModel`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


LOSSES = ("l1", "mse", "rel")


def _loss(torch: Any, nn: Any, kind: str, y_std: float) -> Any:
    """The training loss on standardised log costs. ``rel`` is the relative error of the cost itself,
    ``|exp((ŷ − y)·σ_y) − 1|`` (the metric of Table 1, §5.4): it is asymmetric (over-predicting by 2×
    costs 1, under-predicting by 2× costs 0.5), so it learns a prediction below the median of a skewed
    type, where the log-space L1 sits at the median."""
    if kind == "l1":
        return nn.L1Loss()
    if kind == "mse":
        return nn.MSELoss()

    def rel(pred: Any, target: Any) -> Any:
        return (torch.exp(torch.clamp((pred - target) * y_std, max=20.0)) - 1.0).abs().mean()

    return rel


@dataclass
class TrainConfig:
    hidden: tuple[int, ...] = (64, 64)
    epochs: int = 100
    batch_size: int = 256
    lr: float = 3e-3
    weight_decay: float = 1e-5
    loss: str = "l1"  # "l1" (median of log cost), "mse" (mean of log cost) or "rel" (mean |Ĉ − C| / C)
    val_fraction: float = 0.1
    seed: int = 0
    progress: bool = True


@dataclass
class TrainResult:
    layers: list[tuple[np.ndarray, np.ndarray]]
    x_mean: np.ndarray
    x_std: np.ndarray
    y_mean: float
    y_std: float
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    best_epoch: int = 0


def standardisation(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column mean and std; constant columns get std 1 so they pass through unchanged."""
    m = x.mean(axis=0)
    s = x.std(axis=0)
    s[s < 1e-8] = 1.0
    return m, s


def train_mlp(x: np.ndarray, y: np.ndarray, cfg: TrainConfig | None = None) -> TrainResult:
    """Train the MLP on features ``x`` [n, f] and targets ``y = log(cost)`` [n]."""
    import torch
    from torch import nn

    cfg = cfg or TrainConfig()
    if x.ndim != 2 or y.shape != (x.shape[0],) or x.shape[0] < 10:
        raise ValueError(f"need x [n, f] and y [n] with n >= 10, got {x.shape} and {y.shape}")
    if cfg.loss not in LOSSES:
        raise ValueError(f"unknown loss {cfg.loss!r}; use one of {', '.join(LOSSES)}")
    torch.manual_seed(cfg.seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 5k-parameter net: threading costs more than it saves
    try:
        return _train(torch, nn, x, y, cfg)
    finally:
        torch.set_num_threads(threads)


def _train(torch: Any, nn: Any, x: np.ndarray, y: np.ndarray, cfg: TrainConfig) -> TrainResult:
    rng = np.random.default_rng(cfg.seed)
    x_mean, x_std = standardisation(x)
    y_mean, y_std = float(y.mean()), float(max(y.std(), 1e-8))
    xs = torch.tensor((x - x_mean) / x_std, dtype=torch.float32)
    ys = torch.tensor((y - y_mean) / y_std, dtype=torch.float32)
    perm = rng.permutation(len(y))
    n_val = max(1, int(round(cfg.val_fraction * len(y))))
    val_idx, tr_idx = torch.as_tensor(perm[:n_val]), torch.as_tensor(perm[n_val:])
    x_tr, y_tr, x_val, y_val = xs[tr_idx], ys[tr_idx], xs[val_idx], ys[val_idx]

    dims = (x.shape[1], *cfg.hidden, 1)
    mods: list[nn.Module] = []
    for i in range(len(dims) - 1):
        mods.append(nn.Linear(dims[i], dims[i + 1]))
        if i < len(dims) - 2:
            mods.append(nn.ReLU())
    net = nn.Sequential(*mods)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    loss_fn = _loss(torch, nn, cfg.loss, y_std)
    res = TrainResult([], x_mean, x_std, y_mean, y_std)
    best = float("inf")
    best_state = None
    gen = torch.Generator().manual_seed(cfg.seed)

    progress = None
    if cfg.progress:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        progress = Progress(TextColumn("training MLP"), BarColumn(), TextColumn("epoch {task.completed}/{task.total}"),
                            TextColumn("val loss {task.fields[val]}"), TimeElapsedColumn(), transient=False)
        progress.start()
        task = progress.add_task("train", total=cfg.epochs, val="-")
    try:
        for epoch in range(cfg.epochs):
            net.train()
            order = torch.randperm(len(y_tr), generator=gen)
            tot = 0.0
            for s in range(0, len(order), cfg.batch_size):
                b = order[s:s + cfg.batch_size]
                opt.zero_grad()
                loss = loss_fn(net(x_tr[b]).squeeze(-1), y_tr[b])
                loss.backward()
                opt.step()
                tot += loss.item() * len(b)
            sched.step()
            net.eval()
            with torch.inference_mode():
                vl = float(loss_fn(net(x_val).squeeze(-1), y_val))
            res.train_loss.append(tot / len(order))
            res.val_loss.append(vl)
            if vl < best:
                best, res.best_epoch = vl, epoch
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            if progress is not None:
                progress.update(task, advance=1, val=f"{vl:.4f}")
    finally:
        if progress is not None:
            progress.stop()
    assert best_state is not None
    net.load_state_dict(best_state)
    linears = [m for m in net if isinstance(m, nn.Linear)]
    res.layers = [(m.weight.detach().numpy().T.astype(np.float64).copy(), m.bias.detach().numpy().astype(np.float64).copy())
                  for m in linears]
    return res
