"""Monitoring: the reference kept with each version, Evidently drift reports, accuracy on the
newest window, and the round that keeps, retrains, promotes or rolls back (`tailor monitor`).

Modules: `reference` (logged at training, read back per version), `profiles` (the customer
profiles every drift check compares), `drift` (Evidently reports and the workspace), `rounds`
(the policy), `audit` (the decisions table), `table` (the round as a rich table).
"""
