"""Demand prediction: an application's memory-centric cost at arrival (paper §4.2; DESIGN §6).

:mod:`~justitia.predict.features` (arrival features, one path for training and serving),
:mod:`~justitia.predict.mlp` (the PyTorch MLP and its training), :mod:`~justitia.predict.models` (the
model file and its numpy forward pass), :mod:`~justitia.predict.baselines` (per-type mean, linear),
:mod:`~justitia.predict.estimators` (``mlp``/``typemean``/``linear`` for the ``justitia`` policy),
:mod:`~justitia.predict.train` / :mod:`~justitia.predict.evaluate` / :mod:`~justitia.predict.cli`.
"""
