"""Event data for tests, valid unless a test says otherwise."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.catalogue import Role, Sector, Urgency
from shared.events import SessionPosted


def session_posted(starts_at: datetime | None = None, **override: Any) -> SessionPosted:
    """A 4-hour GP session at a Manchester practice, two days ahead unless given."""
    start = starts_at or datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
    values: dict[str, Any] = {
        "session_id": uuid.uuid4(),
        "organisation": "A81001",
        "posted_by": "A81001",
        "site_name": "Hilltop Surgery",
        "sector": Sector.GENERAL_PRACTICE,
        "role": Role.GP,
        "skills": [],
        "rate_pence_per_hour": 7757,
        "urgency": Urgency.ROUTINE,
        "starts_at": start,
        "ends_at": start + timedelta(hours=4),
        "latitude": 53.48,
        "longitude": -2.24,
    }
    return SessionPosted(**{**values, **override})
