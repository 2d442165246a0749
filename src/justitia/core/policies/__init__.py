"""One module per policy, each written once and used by both engines (DESIGN §1)."""
