"""The side-by-side comparison of policies (paper §5.1's metrics): simulate, measure, report, plot.

The defaults of ``justitia simulate`` live here, read by its CLI (:mod:`.simulate_cli`) and by
:mod:`.experiment`, so neither imports the other.
"""

DEFAULT_WORKLOAD = "paper-mix"
DEFAULT_POLICIES = "fcfs,app_fcfs,vtc,sjf,plas,atlas,justitia"
DEFAULT_APPS = 400
# Offered load as a fraction of the KV memory-time the engine supplies (justitia.apps.arrivals):
# at 0.9 memory is the bottleneck (queues build in bursts, big apps block small ones) while the
# fluid reference stays stable (< 1), so delays vs fair sharing are finite and comparable.
DEFAULT_LOAD = 0.9
