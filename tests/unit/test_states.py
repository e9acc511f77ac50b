"""The task state machine, action by action and status by status."""

from __future__ import annotations

import pytest

from invite.tasks.states import (
    ACTIVE,
    DELETABLE,
    EDITABLE,
    FINISHED,
    Action,
    IllegalTransition,
    TaskStatus,
    allowed_from,
    next_status,
)

S = TaskStatus
LEGAL: dict[tuple[TaskStatus, Action], TaskStatus] = {
    (S.DRAFT, Action.START): S.RUNNING,
    (S.RUNNING, Action.PAUSE): S.PAUSED,
    (S.SCHEDULED, Action.PAUSE): S.PAUSED,
    (S.PAUSED, Action.RESUME): S.RUNNING,
    (S.DRAFT, Action.CANCEL): S.CANCELLED,
    (S.SCHEDULED, Action.CANCEL): S.CANCELLED,
    (S.RUNNING, Action.CANCEL): S.CANCELLED,
    (S.PAUSED, Action.CANCEL): S.CANCELLED,
    (S.SCHEDULED, Action.DUE): S.RUNNING,
    (S.RUNNING, Action.TRIP): S.PAUSED,
    (S.RUNNING, Action.COMPLETE): S.COMPLETED,
    (S.RUNNING, Action.FAIL): S.FAILED,
    (S.SCHEDULED, Action.FAIL): S.FAILED,
    (S.COMPLETED, Action.REOPEN): S.RUNNING,
    (S.FAILED, Action.REOPEN): S.RUNNING,
}
EVERY_PAIR = [(status, action) for status in TaskStatus for action in Action]


@pytest.mark.parametrize(("status", "action"), EVERY_PAIR)
def test_each_status_and_action(status: TaskStatus, action: Action) -> None:
    expected = LEGAL.get((status, action))
    if expected is None:
        with pytest.raises(IllegalTransition) as caught:
            next_status(status, action)
        assert (caught.value.status, caught.value.action) == (status, action)
        assert status.value in str(caught.value)
        assert action.value in str(caught.value)
    else:
        assert next_status(status, action) == expected
        assert status in allowed_from(action)


@pytest.mark.parametrize("action", [Action.START, Action.RESUME])
def test_start_or_resume_before_scheduled_time_waits_as_scheduled(action: Action) -> None:
    source = next(iter(allowed_from(action)))
    assert next_status(source, action, scheduled_ahead=True) == S.SCHEDULED


@pytest.mark.parametrize("action", [Action.PAUSE, Action.CANCEL, Action.DUE, Action.COMPLETE, Action.REOPEN])
def test_other_actions_ignore_the_schedule(action: Action) -> None:
    source = next(iter(allowed_from(action)))
    assert next_status(source, action, scheduled_ahead=True) == next_status(source, action)


def test_finished_tasks_move_only_when_reopened_and_cancelled_ones_never() -> None:
    for status in FINISHED:
        assert all((status, action) not in LEGAL for action in Action if action is not Action.REOPEN)
    assert allowed_from(Action.REOPEN) == FINISHED - {S.CANCELLED}


def test_the_groups_used_by_the_api() -> None:
    assert {S.SCHEDULED, S.RUNNING, S.PAUSED} == ACTIVE
    assert S.RUNNING not in EDITABLE
    assert S.RUNNING not in DELETABLE
    assert ACTIVE.isdisjoint(FINISHED)
