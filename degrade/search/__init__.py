"""The breaking-point search: bisection on a measure, and its files."""
