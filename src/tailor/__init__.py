"""Tailor: self-hosted ML personalization for online shops."""

__version__ = "0.1.0"
