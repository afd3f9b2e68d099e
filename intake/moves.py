"""Moving decided messages out of the inbox, after their outcomes are committed.

A message is moved only once its outcome, state change and reply are in the
store (:mod:`intake.runner`); the moves of a batch go to the server together
(one ``UID MOVE`` of a UID set per folder) and are marked in one commit.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import defer

from intake.errors import MailboxError
from intake.sources.base import MailSource
from intake.store.engine import Store
from intake.store.leases import takeable
from intake.store.models import ReceivedMessage
from intake.store.models import utcnow as now_utc

log = logging.getLogger(__name__)

#: The statuses after which a message leaves the inbox.
FINAL = ("processed", "ignored", "quarantined")


def move_finished(store: Store, source: MailSource, row_ids: list[int], *, worker: str,
                  lease: timedelta) -> None:
    """Move messages whose outcomes are committed out of the inbox.

    The move is leased like the processing: with several workers, two
    concurrent UID MOVEs of one message from two sessions would both copy
    it, so only the worker holding the lease moves it. The messages going
    to one folder are moved together (one ``UID MOVE`` of the set) and
    marked moved in one commit; a crash before that commit leaves them out
    of the inbox and unmarked, which costs nothing: they are not fetched,
    judged or answered again.
    """
    now = now_utc()
    to_move: defaultdict[str, dict[int, str]] = defaultdict(dict)
    with store.session() as s:
        # Without the raw bytes (a mail each, read for nothing: a twentieth of
        # the daemon's thread went into loading them here).
        rows = s.scalars(select(ReceivedMessage).options(defer(ReceivedMessage.raw))
                         .where(ReceivedMessage.id.in_(row_ids))
                         .order_by(ReceivedMessage.id)).all()
        for row in rows:
            if row.status not in FINAL or row.moved or not row.target_folder:
                continue
            # The decision committed with this worker's lease (process): while
            # more than half of it is left, no other worker can take it, and
            # the move goes ahead without writing (and syncing) it again.
            held = (row.claimed_by == worker and row.claimed_until is not None
                    and row.claimed_until > now + lease / 2)
            if not held:
                won = s.execute(
                    update(ReceivedMessage)
                    .where(ReceivedMessage.id == row.id, ReceivedMessage.moved.is_(False),
                           takeable(ReceivedMessage, now, row.claimed_by,
                                    worker=worker))
                    .values(claimed_by=worker, claimed_until=now + lease)
                    .execution_options(synchronize_session=False)
                )
                if won.rowcount != 1:  # type: ignore[attr-defined]
                    continue
            to_move[row.target_folder][row.id] = row.uid.split("#", 1)[0]
    moved: list[int] = []
    failed: list[int] = []
    for folder, uids in to_move.items():
        try:
            batch = list(dict.fromkeys(uids.values()))
            if len(batch) == 1:
                source.move(batch[0], folder)
            else:
                source.move_many(batch, folder)
        except MailboxError as exc:
            # The outcomes are safe in the store; the moves are retried next run.
            log.warning("ledger #%s: move to %s failed: %s",
                        ", #".join(map(str, uids)), folder, exc)
            failed.extend(uids)
            continue
        moved.extend(uids)
    if not moved and not failed:
        return
    with store.session() as s:
        if moved:
            s.execute(update(ReceivedMessage).where(ReceivedMessage.id.in_(moved))
                      .values(moved=True, claimed_by=None, claimed_until=None))
        if failed:
            s.execute(update(ReceivedMessage).where(ReceivedMessage.id.in_(failed))
                      .values(claimed_by=None, claimed_until=None))
