"""Deletion (right to be forgotten) and opt-out."""
