"""Micro-benchmarks of the node pipeline and the coordinator, as ratios to a baseline measured in the same run."""
