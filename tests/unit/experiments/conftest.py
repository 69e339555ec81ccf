"""A home ready for campaigns on a local SMTP server (aiosmtpd), with the customers' PII stored
and stand-in churn scores and picks, shared by the campaign test modules."""

from __future__ import annotations

import pytest

from campaign_homes import FakeSources, settings, smtp  # noqa: F401 (fixtures)


@pytest.fixture
def sources() -> FakeSources:
    return FakeSources()
