"""The live dashboard: `weightlapse view RUNS_DIR`."""
