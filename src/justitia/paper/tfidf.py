"""The paper's demand predictor (§4.2, Table 1): per agent type, TF-IDF of the input text → a 4-layer MLP.

What the paper states, and how it is read here:

* one model per agent type (the type is a strong prior; an agent's demand is stable across runs);
* input text → TF-IDF vector (:class:`Tfidf`: lower-cased word tokens, the type's ``max_features``
  most frequent words, smoothed ``idf = ln((1 + n) / (1 + df)) + 1``, L2-normalised rows — written with
  numpy, no scikit-learn);
* a 4-layer MLP whose first layer's width is proportional to the type's mean input size
  (``width = clip(width_per_token × mean words, 16, 256)``, then halving: ``w, w/2, w/4, 1``);
* target: the agent's total cost (cost eq. 1 summed), scaled by the type's mean training cost;
  MSE loss with L2 regularisation (weight decay), full-batch gradient descent (Adam), ~100 samples.

Training uses PyTorch; serving is a numpy forward pass (the same footing as our own MLP), so the
time per prediction is tokenising + TF-IDF + three matrix products.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from justitia.core.policy import AppInfo
from justitia.predict.models import relu_mlp

_WORD = re.compile(r"[a-z0-9]+")


def tokenize(text: str) -> list[str]:
    """Lower-cased alphanumeric words."""
    return _WORD.findall(text.lower())


@dataclass
class Tfidf:
    """A fitted TF-IDF vocabulary: word → column, and each column's idf."""

    vocab: dict[str, int]
    idf: np.ndarray

    @classmethod
    def fit(cls, texts: Sequence[str], max_features: int = 1000) -> Tfidf:
        if not texts:
            raise ValueError("TF-IDF needs at least one training text")
        df: Counter[str] = Counter()
        for t in texts:
            df.update(set(tokenize(t)))
        words = sorted(df, key=lambda w: (-df[w], w))[:max_features]
        n = len(texts)
        idf = np.asarray([np.log((1.0 + n) / (1.0 + df[w])) + 1.0 for w in words], dtype=np.float64)
        return cls({w: i for i, w in enumerate(words)}, idf)

    @property
    def dim(self) -> int:
        return max(len(self.vocab), 1)

    def transform(self, text: str) -> np.ndarray:
        """The L2-normalised TF-IDF row of ``text`` (zeros if none of its words is in the vocabulary)."""
        v = np.zeros(self.dim, dtype=np.float64)
        vocab = self.vocab
        for w in tokenize(text):
            j = vocab.get(w)
            if j is not None:
                v[j] += 1.0
        if len(self.vocab):
            v *= self.idf
        norm = float(np.sqrt(v @ v))
        return v / norm if norm > 0 else v


@dataclass
class TfidfMLPConfig:
    max_features: int = 1000
    width_per_token: float = 0.25
    min_width: int = 16
    max_width: int = 256
    epochs: int = 400
    lr: float = 3e-3
    weight_decay: float = 1e-4  # the L2 term
    seed: int = 0


@dataclass
class TypeModel:
    """One agent type's TF-IDF vocabulary and MLP (numpy weights), predicting cost / ``scale``."""

    tfidf: Tfidf
    layers: list[tuple[np.ndarray, np.ndarray]]
    scale: float

    def predict(self, text: str) -> float:
        h = relu_mlp(self.layers, self.tfidf.transform(text))
        return max(float(h[0]), 1e-3) * self.scale  # a regression may dip below 0: keep costs positive


def first_width(mean_words: float, cfg: TfidfMLPConfig) -> int:
    """First hidden layer's width: proportional to the type's mean input size, clipped."""
    return int(np.clip(round(cfg.width_per_token * mean_words), cfg.min_width, cfg.max_width))


def train_type(texts: Sequence[str], costs: Sequence[float], cfg: TfidfMLPConfig) -> TypeModel:
    """Fit one type's TF-IDF and 4-layer MLP on ``texts`` → ``costs`` (MSE + L2, full batch)."""
    import torch
    from torch import nn

    if len(texts) != len(costs) or len(texts) < 2:
        raise ValueError(f"need as many texts as costs (>= 2), got {len(texts)} and {len(costs)}")
    tf = Tfidf.fit(texts, cfg.max_features)
    x = np.stack([tf.transform(t) for t in texts])
    c = np.asarray(costs, dtype=np.float64)
    scale = float(c.mean()) if c.mean() > 0 else 1.0
    w = first_width(float(np.mean([len(tokenize(t)) for t in texts])), cfg)
    dims = (tf.dim, w, max(w // 2, 1), max(w // 4, 1), 1)
    torch.manual_seed(cfg.seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        mods: list[nn.Module] = []
        for i in range(4):
            mods.append(nn.Linear(dims[i], dims[i + 1]))
            if i < 3:
                mods.append(nn.ReLU())
        net = nn.Sequential(*mods)
        opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        xs = torch.tensor(x, dtype=torch.float32)
        ys = torch.tensor(c / scale, dtype=torch.float32)
        loss_fn = nn.MSELoss()
        for _ in range(cfg.epochs):
            opt.zero_grad()
            loss = loss_fn(net(xs).squeeze(-1), ys)
            loss.backward()
            opt.step()
        lins = [m for m in net if isinstance(m, nn.Linear)]
        layers = [(m.weight.detach().numpy().T.astype(np.float64).copy(), m.bias.detach().numpy().astype(np.float64).copy())
                  for m in lins]
    finally:
        torch.set_num_threads(threads)
    return TypeModel(tf, layers, scale)


@dataclass
class TfidfEstimator:
    """The paper's predictor as a cost estimator: one :class:`TypeModel` per agent type.

    The simulator's :class:`AppInfo` carries no text, so the estimator reads each application's input
    text from ``texts`` (``app_id`` → text, what arrived with the agent) and predicts from it at
    :meth:`estimate` time. Unknown types get the mean cost over all training types.
    """

    models: dict[str, TypeModel]
    texts: Mapping[str, str] = field(default_factory=dict)
    train_s: float = 0.0
    name: str = "tfidf"

    @classmethod
    def train(cls, by_type: Mapping[str, tuple[Sequence[str], Sequence[float]]],
              cfg: TfidfMLPConfig | None = None) -> TfidfEstimator:
        """Train one model per type from ``{type: (texts, costs)}``."""
        cfg = cfg or TfidfMLPConfig()
        t0 = time.perf_counter()
        models = {t: train_type(tx, cs, cfg) for t, (tx, cs) in sorted(by_type.items())}
        return cls(models, train_s=time.perf_counter() - t0)

    def with_texts(self, texts: Mapping[str, str]) -> TfidfEstimator:
        """The same models, reading input texts from ``texts`` (``app_id`` → text)."""
        return TfidfEstimator(self.models, texts, self.train_s, self.name)

    def estimate(self, app: AppInfo) -> float:
        model = self.models.get(app.app_type)
        text = self.texts.get(app.app_id)
        if model is None or text is None:
            return float(np.mean([m.scale for m in self.models.values()]))
        return model.predict(text)

