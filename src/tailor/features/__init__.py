"""Feature computations (DuckDB SQL) and the Feast glue: filled by the feature-store issue."""
