"""Clustering quality against the alternatives, and the evidence behind the defaults
(seeds, restart selection, recipes, the divergence guard)."""
