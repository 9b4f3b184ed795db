"""Thin entry points (set-up, demo, benchmark helpers); the logic lives in the packages."""
