"""Training RRIN: data sources, the synthetic scene generator and the trainer (never imported by the filter)."""
