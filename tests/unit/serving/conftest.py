"""Fixtures of the serving unit tests: pipelines over homes without trained models.

The tests that need a trained, featurised home (`served_home`) are in
`tests/integration/serving/`; the fixtures both folders use live in `tests/serving_fixtures.py`.
"""

from __future__ import annotations

import prometheus_client  # noqa: F401  (before Feast: see below)

from serving_fixtures import ledger_factory, pipeline_factory  # noqa: F401  (offered to tests)

# Importing Feast sets PROMETHEUS_MULTIPROC_DIR, and prometheus_client chooses its value
# storage when it is first imported: imported after Feast, every same-named series in the
# process would share one value, and each pipeline's metrics could not be read on their own.
