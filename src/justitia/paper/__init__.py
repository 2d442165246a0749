"""The paper's §5 evaluation, reproduced in the simulator: ``justitia reproduce`` (arXiv 2510.17015).

Modules: :mod:`.config` (the setup: workload, engine, loads, sizes), :mod:`.experiments` (Fig. 7, 8,
10, 11), :mod:`.starvation` (Fig. 9), :mod:`.overhead` (Fig. 12), :mod:`.tfidf` and
:mod:`.predictors` (Table 1), :mod:`.numbers` (the paper's own numbers), :mod:`.report` and
:mod:`.plots` (REPORT.md and one PNG per figure), :mod:`.run` (the whole run, with a progress bar).
"""
