"""A/B assignment, exposure log, attribution, statistics and promotion."""
