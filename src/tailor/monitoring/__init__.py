"""Monitoring: Evidently drift reports, accuracy on the newest window, and the round that
keeps, retrains, promotes or rolls back (`tailor monitor`).

Modules: `drift` (Evidently reports and the workspace), `rounds` (the policy), `audit` (the
decisions table), `table` (a round as a rich table). The reference each version is judged
against is written at training (`tailor.training.reference`), from the customer profiles of
`tailor.models.profiles`.
"""
