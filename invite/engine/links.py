"""One-use invite links: for an invite task with ``settings.privacy_fallback = "invite_link"``.

Telegram's own clients offer it: a person whose privacy settings refuse a direct add may be
sent a link instead. Here, an invite refused for privacy (``privacy_restricted``, which the
adapter's table also gives for ``premium_would_allow_invite`` and a channel's direct-add cap)
puts the person back in the task's queue with their link due (decisions.LINK_DUE). From there
it is a message like any other, claimed under every rule a message has -- the suppression list,
the recontact cap, the task's send window, the account's pause -- and its quota: the claim
counts it in the account's 24 h window, and pairs it only with an account whose window is
still within the link quota (``DAILY_QUOTA_WITH_LINK``; else it waits for that window to
reopen, claims.sql). ``offer`` makes the link (``usage_limit=1``, an expiry), saves it
BEFORE the message is sent, and sends the task's template with it under the target's own
random_id; an attempt again sends the same link, so the same text.

``LinkWatcher`` reads back, every ``INVITE_LINK_POLL_SECONDS``, who joined through the open
links of the accounts this replica holds (``link_joins``), and of those nobody holds, each
under a short lease (followup.py: a task's accounts are let go of when it ends, and people join
later): their targets become ``joined_via_link``. Links that ran out unused are revoked and
their targets ``link_expired``. A FloodWait rests that account's reading as long.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timedelta

import structlog

from invite.engine.account import LeasedAccount
from invite.engine.actions import message_random_id, values
from invite.engine.claims import Claim
from invite.engine.context import EngineContext
from invite.engine.decisions import RAISED, Call, Raised
from invite.engine.followup import ShortLeases
from invite.engine.link_rows import Joined, OpenLink
from invite.engine.registry import RunningTask
from invite.engine.repository import DATABASE_AWAY
from invite.platforms.base import InviteStrategy, LinkJoins, Outcome, OutcomeKind, Target
from invite.tasks.templates import LINK_VARIABLE, TemplateError, names, render

log = structlog.get_logger(__name__)

AT_ONCE = 8  # accounts read side by side
# a link saved before that runs out sooner than this is made anew: the person must have time to use it
_FRESH = timedelta(hours=1)


def link_text(template: str, person: dict[str, object], url: str) -> str:
    """The message: the task's template with the link where ``{invite_link}`` stands, or after
    the text when the template does not place it."""
    text = render(template, {**person, LINK_VARIABLE: url})
    return text if LINK_VARIABLE in names(template) else f"{text.rstrip()}\n\n{url}".lstrip()


async def offer(
    ctx: EngineContext, account: LeasedAccount, task: RunningTask, claim: Claim
) -> Outcome | Raised:
    """Make (or take again) the person's one-use link and send it; the answer, as the table reads it."""
    assert task.group_id is not None  # the schema requires it of invite tasks
    target = Target.from_key(claim.key, claim.data)
    try:
        url = await _link(ctx, account, task, claim)
    except DATABASE_AWAY as exc:  # no link is sent that was not saved first: try again later
        return Raised(RAISED[Call.LINK], f"the invite link could not be saved: {exc!r}")
    if isinstance(url, (Outcome, Raised)):
        return url
    try:
        text = link_text(task.template or "", values(target, claim.data), url)
    except TemplateError as exc:
        return Raised(RAISED[Call.TEMPLATE], f"template: {exc}")
    try:
        return await account.strategy.send_message(target, text, message_random_id(task.id, claim.target_id))
    except Exception as exc:
        return Raised(RAISED[Call.LINK_MESSAGE], f"driver error: {exc!r}")


async def _link(
    ctx: EngineContext, account: LeasedAccount, task: RunningTask, claim: Claim
) -> str | Outcome | Raised:
    """The person's link: the one saved for them while it has time left, else a new one, saved
    (and committed: the repository runs it on its own) before it is used."""
    assert task.group_id is not None  # the schema requires it of invite tasks
    now = ctx.clock.now()
    saved = await ctx.repo.link_for(target_id=claim.target_id)
    if saved is not None and saved.expires_at > now + _FRESH:
        return saved.url
    hours = task.settings.invite_link_hours or ctx.settings.invite_link_hours
    try:
        made = await account.strategy.create_invite_link(task.group_id, now + timedelta(hours=hours))
    except Exception as exc:
        return Raised(RAISED[Call.LINK], f"driver error: {exc!r}")
    if made.outcome.kind is not OutcomeKind.SUCCESS or made.link is None:
        return made.outcome
    await ctx.repo.save_link(
        target_id=claim.target_id,
        task_id=task.id,
        account_id=account.id,
        url=made.link.url,
        expires_at=made.link.expires_at,
        now=now,
    )
    return made.link.url


class LinkWatcher:
    """Joins read back and expired links revoked: for the accounts this replica holds, and (with
    ``short``) under a short lease for those nobody holds (followup.py)."""

    def __init__(
        self,
        ctx: EngineContext,
        held: Callable[[], Iterable[LeasedAccount]],
        short: ShortLeases | None = None,
    ) -> None:
        self._ctx = ctx
        self._held = held
        self._short = short  # None: only the accounts held here are read
        self._rest: dict[str, datetime] = {}  # account → no reading before (a FloodWait)

    async def run(self) -> None:
        while True:
            await self._ctx.clock.sleep(self._ctx.settings.invite_link_poll_seconds)
            try:
                await self.tick()
                await self.tick_unheld()
            except Exception:  # the database is away, most likely: next round
                log.exception("invite link watch failed")

    async def tick(self) -> None:
        """One round: every held account's open links read once (those resting skipped)."""
        ctx = self._ctx
        now = ctx.clock.now()
        self._rest = {k: until for k, until in self._rest.items() if until > now}
        ready = {a.id: a for a in self._held() if a.driving and a.held and a.id not in self._rest}
        if not ready:
            return
        await self._each(
            await ctx.repo.open_links(account_ids=sorted(ready)), lambda a, w: w(ready[a].strategy)
        )

    async def tick_unheld(self) -> None:
        """One round of the open links of accounts nobody holds, each account under a short lease."""
        short = self._short
        if short is None:
            return
        ctx = self._ctx
        now = ctx.clock.now()
        avoid = sorted({*(a.id for a in self._held()), *self._rest})
        links = await ctx.repo.unheld_links(driver=short.driver, now=now, avoid=avoid)
        await self._each(links, short.read)

    async def _each(
        self,
        links: list[OpenLink],
        run: Callable[[str, Callable[[InviteStrategy], Awaitable[None]]], Awaitable[None]],
    ) -> None:
        """``watch`` each account's links, a few accounts at a time, through ``run`` (which gives
        the work the account's client)."""
        by_account: defaultdict[str, list[OpenLink]] = defaultdict(list)
        for link in links:
            by_account[link.account_id].append(link)
        at_once = asyncio.Semaphore(AT_ONCE)

        async def one(account_id: str, open_links: list[OpenLink]) -> None:
            async def work(strategy: InviteStrategy) -> None:
                await self.watch(account_id, strategy, open_links)

            async with at_once:
                try:
                    await run(account_id, work)
                except Exception as exc:  # the database is away, most likely: next round
                    log.warning("invite links not recorded", account_id=account_id, error=repr(exc))

        await asyncio.gather(*(one(k, v) for k, v in by_account.items()))

    async def watch(self, account_id: str, strategy: InviteStrategy, open_links: list[OpenLink]) -> None:
        """Who came in through ``open_links`` (the account's), and the run-out ones revoked."""
        ctx = self._ctx
        by_group: defaultdict[str, list[OpenLink]] = defaultdict(list)
        for link in open_links:
            by_group[link.group_id].append(link)
        joined: list[Joined] = []
        for group_id, group_links in by_group.items():
            by_url = {link.url: link.target_id for link in group_links}
            try:
                answer = await strategy.link_joins(group_id, list(by_url))
            except Exception as exc:  # a driver answers, never raises; this one did
                answer = LinkJoins([], _raised(exc))
            if not self._read(account_id, answer.outcome):
                return
            joined += [Joined(by_url[j.url], j.at) for j in answer.joins if j.url in by_url]
        now = ctx.clock.now()
        if joined:
            marked = await ctx.repo.mark_joined(joins=joined)
            log.info("joined through invite links", account_id=account_id, people=len(marked))
        came_in = {j.target_id for j in joined}
        expired: list[uuid.UUID] = []
        for link in open_links:
            if link.expires_at > now or link.target_id in came_in:
                continue
            try:
                revoked = await strategy.revoke_invite_link(link.group_id, link.url)
            except Exception as exc:
                revoked = _raised(exc)
            if not self._read(account_id, revoked):
                break
            expired.append(link.target_id)
        if expired:
            await ctx.repo.mark_expired(target_ids=expired, now=now)
            log.info("invite links revoked", account_id=account_id, links=len(expired))

    def _read(self, account_id: str, outcome: Outcome) -> bool:
        """Whether the platform answered; a FloodWait rests this account's reading as long."""
        if outcome.kind is OutcomeKind.SUCCESS:
            return True
        if outcome.kind is OutcomeKind.FLOOD_WAIT:
            self._rest[account_id] = self._ctx.clock.now() + timedelta(seconds=outcome.seconds)
        log.info(
            "invite links not read", account_id=account_id, outcome=str(outcome.kind), detail=outcome.detail
        )
        return False


def _raised(exc: Exception) -> Outcome:
    """A watcher's call that raised: what the table's ``RAISED`` says (read again next round)."""
    return Outcome(OutcomeKind(RAISED[Call.LINK_JOINS]), detail=f"driver error: {exc!r}")
