"""Administration of matching: the ICB's drain-guard policy per region."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from enum import Enum

from services.matching import ledger, repository
from services.matching.policy import Policy
from shared.catalogue import Sector
from shared.db.types import Conn
from shared.events import PolicyChanged
from shared.messaging.emitter import Emitter


class Keep(Enum):
    """Leave as it is: the default of ``set_policy``'s limits, which None clears."""

    KEEP = "keep"


async def set_policy(
    conn: Conn,
    region: str,
    *,
    emitter: Emitter,
    changed_by: str,
    caps: Mapping[Sector, float] | None = None,
    home_first: bool | None = None,
    alert_share: float | None = None,
    hold_beyond_h: float | Keep | None = Keep.KEEP,
    cross_sector_within_h: float | Keep | None = Keep.KEEP,
) -> Policy:
    """Change what is given, keep the rest; publish ``policy.changed`` and re-plan.

    ``hold_beyond_h`` and ``cross_sector_within_h`` are cleared (no limit) by None.

    The new policy, its event and the re-plan request commit together (outbox), so
    every change is published exactly as stored.
    """
    current = await repository.policy(conn, region)
    new = replace(
        current,
        cap_pct={**current.cap_pct, **(caps or {})},
        home_first=current.home_first if home_first is None else home_first,
        alert_share=current.alert_share if alert_share is None else alert_share,
        hold_beyond_h=(current.hold_beyond_h if isinstance(hold_beyond_h, Keep) else hold_beyond_h),
        cross_sector_within_h=(
            current.cross_sector_within_h
            if isinstance(cross_sector_within_h, Keep)
            else cross_sector_within_h
        ),
    )
    await repository.save_policy(conn, region, new)
    await emitter.emit(
        conn,
        PolicyChanged(
            cap_pct={s: new.cap_for(s) for s in Sector},
            home_first=new.home_first,
            alert_share=new.alert_share,
            changed_by=changed_by,
            window_days=new.window_days,
            hold_beyond_h=new.hold_beyond_h,
            cross_sector_within_h=new.cross_sector_within_h,
        ),
        region=region,
    )
    await ledger.check_alerts(conn, region=region, emitter=emitter)
    await repository.request_plan(conn, region, None, due_at=datetime.now(UTC))
    return new
