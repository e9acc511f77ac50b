"""The task state machine: the one place that says which status follows which action.

    draft ──start──▶ running (or scheduled when scheduled_at is ahead)
    scheduled ──due──▶ running            (the engine, exactly once across replicas)
    running ⇄ paused                      (pause / resume; the breaker pauses too)
    running ──finish──▶ completed | failed (the engine)
    draft | scheduled | running | paused ──cancel──▶ cancelled
    completed | failed ──reopen──▶ running (retry-failed put targets back in the queue)

A transition is one guarded UPDATE, ``... SET status = <target> WHERE id = $id AND status =
ANY(<sources>)``, so two replicas or two requests can never both win. The API's statements take
both from here as parameters: ``tasks.transition`` (``allowed_from`` and ``next_status``) and
``reports.reopen`` (``allowed_from(Action.REOPEN)``). The engine's statements take them from
here too (invite/engine/repository.py passes them): ``lifecycle.start_due`` (DUE),
``lifecycle.pause_task`` and ``activation.wait_for_accounts`` (TRIP), ``activation.fail_task``
(FAIL), ``lifecycle.fail_unserved`` (FAIL, of a running task only: a scheduled one has no
accounts to judge yet) and ``lifecycle.complete_tasks`` (COMPLETE). A statement that only
reads a status ("the tasks that are running") may spell it out: it moves no task.
"""

from __future__ import annotations

from enum import StrEnum


class TaskStatus(StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"


class Action(StrEnum):
    START = "start"  # by the customer
    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"
    DUE = "due"  # by the engine: scheduled_at reached
    TRIP = "trip"  # by the engine: circuit breaker
    COMPLETE = "complete"  # by the engine: nothing left to do
    FAIL = "fail"  # by the engine: the task cannot go on (no usable account, chat gone)
    REOPEN = "reopen"  # by the customer's retry-failed: a finished task has targets to do again


S = TaskStatus
_TRANSITIONS: dict[Action, tuple[frozenset[TaskStatus], TaskStatus]] = {
    Action.START: (frozenset({S.DRAFT}), S.RUNNING),
    Action.PAUSE: (frozenset({S.RUNNING, S.SCHEDULED}), S.PAUSED),
    Action.RESUME: (frozenset({S.PAUSED}), S.RUNNING),
    Action.CANCEL: (frozenset({S.DRAFT, S.SCHEDULED, S.RUNNING, S.PAUSED}), S.CANCELLED),
    Action.DUE: (frozenset({S.SCHEDULED}), S.RUNNING),
    Action.TRIP: (frozenset({S.RUNNING}), S.PAUSED),
    Action.COMPLETE: (frozenset({S.RUNNING}), S.COMPLETED),
    Action.FAIL: (frozenset({S.RUNNING, S.SCHEDULED}), S.FAILED),
    Action.REOPEN: (frozenset({S.COMPLETED, S.FAILED}), S.RUNNING),
}

ACTIVE = frozenset({S.SCHEDULED, S.RUNNING, S.PAUSED})  # count against the per-tenant limit
EDITABLE = frozenset({S.DRAFT, S.SCHEDULED, S.PAUSED})  # PUT allowed ("only while not running")
DELETABLE = frozenset(TaskStatus) - {S.RUNNING}
FINISHED = frozenset({S.COMPLETED, S.CANCELLED, S.FAILED})


class IllegalTransition(Exception):
    def __init__(self, status: TaskStatus, action: Action) -> None:
        super().__init__(f"cannot {action.value} a task that is {status.value}")
        self.status = status
        self.action = action


def allowed_from(action: Action) -> frozenset[TaskStatus]:
    return _TRANSITIONS[action][0]


def next_status(status: TaskStatus, action: Action, *, scheduled_ahead: bool = False) -> TaskStatus:
    """The status after ``action``; a start or resume with scheduled_at ahead waits as scheduled."""
    sources, target = _TRANSITIONS[action]
    if status not in sources:
        raise IllegalTransition(status, action)
    if action in (Action.START, Action.RESUME) and scheduled_ahead:
        return S.SCHEDULED
    return target
