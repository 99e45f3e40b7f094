"""Audit history: an append-only, hash-chained record of every state change (see services.py)."""
