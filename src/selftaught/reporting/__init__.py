"""What a run shows its user: the end-of-run table, plots, the HTML report, compare, experiment trackers."""
