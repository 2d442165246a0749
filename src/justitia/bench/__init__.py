"""The side-by-side comparison of policies (paper §5.1's metrics): simulate, measure, report, plot.

The defaults of ``justitia simulate`` live in :mod:`.defaults`, read by its CLI (:mod:`.simulate_cli`)
and by :mod:`.experiment`, so neither imports the other.
"""
