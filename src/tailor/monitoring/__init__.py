"""Evidently drift and accuracy jobs, retrain and rollback policy, report mail."""
