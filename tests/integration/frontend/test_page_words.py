"""Our words in the page's: statuses, and the log's action types and result statuses."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from invite.frontend_api.rights import group_name
from invite.frontend_api.service import log_entry, page_status
from invite.reports.schemas import LogEntry
from invite.tasks.states import TaskStatus


@pytest.mark.parametrize(
    ("ours", "page"),
    [
        (TaskStatus.DRAFT, "pending"),
        (TaskStatus.SCHEDULED, "pending"),
        (TaskStatus.RUNNING, "running"),
        (TaskStatus.PAUSED, "paused"),
        (TaskStatus.COMPLETED, "completed"),
        (TaskStatus.FAILED, "failed"),
        (TaskStatus.CANCELLED, "cancelled"),
    ],
)
def test_statuses_in_the_page_words(ours: TaskStatus, page: str) -> None:
    assert page_status(ours) == page


@pytest.mark.parametrize(
    ("status", "target", "action_type"),
    [
        ("success", True, "INVITE_SUCCESSFUL"),
        ("already_member", True, "INVITE_SUCCESSFUL"),
        ("privacy_restricted", True, "INVITE_FAILED"),
        ("not_found", True, "INVITE_FAILED"),
        ("suppressed", True, "INVITE_FAILED"),
        ("flood_wait", True, "ERROR_OCCURRED"),
        ("peer_flood", True, "ERROR_OCCURRED"),
        ("driver_error", True, "ERROR_OCCURRED"),
        ("no_admin_right", False, "ERROR_OCCURRED"),  # an account's check, no person
    ],
)
def test_log_entries_in_the_page_words(status: str, target: bool, action_type: str) -> None:
    ours = LogEntry(
        id=str(uuid.uuid4()),
        created_at=datetime(2026, 12, 1, tzinfo=UTC),
        target_id=str(uuid.uuid4()) if target else None,
        user_identifier="@anna" if target else None,
        account_id="acc-1",
        action="invite_to_group" if target else "check_invite_right",
        status=status,
        details={"detail": "FLOOD_WAIT_X" if status == "flood_wait" else "", "seconds": 30},
    )
    entry = log_entry("task-1", ours)
    assert entry.action_type == action_type
    assert entry.details["result_status"] == status.upper()
    assert entry.details["target_username"] == ours.user_identifier
    assert entry.details["seconds"] == 30  # ours kept beside the page's
    assert entry.message


@pytest.mark.parametrize(
    ("link", "name"),
    [
        ("@group", "group"),
        ("https://t.me/Group_1", "Group_1"),
        ("t.me/group/", "group"),
        ("http://telegram.me/s/group?x=1", "group"),
        ("-1001234567890", "-1001234567890"),
    ],
)
def test_group_names_from_links(link: str, name: str) -> None:
    assert group_name(link) == name
