"""Defaults of ``justitia simulate``, shared by its command line (:mod:`.simulate_cli`) and the
experiment (:mod:`.experiment`); no imports, so the command line stays cheap to load."""

DEFAULT_WORKLOAD = "paper-mix"
DEFAULT_POLICIES = "fcfs,app_fcfs,vtc,sjf,plas,atlas,justitia"
DEFAULT_APPS = 400
# Offered load as a fraction of the KV memory-time the engine supplies (justitia.apps.arrivals):
# at 0.9 memory is the bottleneck (queues build in bursts, big apps block small ones) while the
# fluid reference stays stable (< 1), so delays vs fair sharing are finite and comparable.
DEFAULT_LOAD = 0.9
