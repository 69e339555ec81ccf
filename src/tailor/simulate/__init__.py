"""A synthetic shop with known ground truth, for the demo, the tests and closed-loop experiments."""
