"""One module per policy (Justitia, paper §4.3, and the §5.1 baselines), each written once and used by
the simulator, the vLLM plugin and the cluster tier (DESIGN §1)."""
