"""The paper's own numbers (arXiv 2510.17015 v2, §5.2–5.5), as restated in ``shared/PAPER.md``."""

from __future__ import annotations

JCT_VS_VTC = 0.425  # average JCT, Justitia ÷ VTC (57.5 % lower)
JCT_VS_PARROT = 0.389  # average JCT, Justitia ÷ Parrot (61.1 % lower)
JCT_VS_SRJF = "very close"  # average JCT, Justitia vs SRJF (no number given)
LE1_SHARE_3X = 0.92  # agents finishing no later than under VTC, 3× load
WORST_RATIO_3X = 1.26  # worst finish-time fair ratio, 3× load
LAMBDA3_COST = 0.095  # +9.5 % average JCT with costs × a factor in [1/3, 3]
JUSTITIA_C_WORSE = 0.423  # Justitia/C (VTC's cost p + 2d): up to 42.3 % worse JCT
OVERHEAD_MS = 10.0  # scheduling time per decision: under 10 ms at every rate tried

TABLE1 = {  # predictor, 2× load: mean relative error, ms per prediction, avg JCT (s), training time
    "MLP (TF-IDF)": {"mean_rel_error": 0.530, "ms_per_prediction": 2.16, "mean_jct_s": 151.1, "train": "~1 min"},
    "DistilBERT": {"mean_rel_error": 4.52, "ms_per_prediction": 55.7, "mean_jct_s": 366.7, "train": "~2 h"},
}
