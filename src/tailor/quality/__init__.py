"""Data quality: the rules, their report (JSON and HTML), alerts, and the gate that blocks training."""
