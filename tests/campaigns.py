"""A message campaign set up over HTTP, as a customer would: a task, its people imported from a
CSV upload, then started. Used by the tests and benches that drive a running ``invite serve``."""

from __future__ import annotations

import httpx

PREFIX = "/api/v1/invite"


async def message_task(
    http: httpx.AsyncClient,
    url: str,
    headers: dict[str, str],
    *,
    title: str,
    usernames: list[str],
    template: str = "Hello {first_name}",
) -> str:
    """A send_messages task at ``url`` holding ``usernames`` (named Name0, Name1, …); its id."""
    body = {
        "platform": "telegram",
        "task_type": "send_messages",
        "title": title,
        "message_template": template,
    }
    created = await http.post(f"{url}{PREFIX}/tasks", json=body, headers=headers)
    if created.status_code != 201:
        raise RuntimeError(f"task not created: {created.status_code} {created.text[:300]}")
    task_id: str = created.json()["id"]
    rows = ["username,first_name", *(f"{name},Name{n}" for n, name in enumerate(usernames))]
    imported = await http.post(
        f"{url}{PREFIX}/import/file",
        files={"file": ("people.csv", "\n".join(rows).encode(), "text/csv")},
        data={"task_id": task_id},
        headers=headers,
        timeout=120,
    )
    if imported.status_code != 201 or imported.json()["counts"]["imported"] != len(usernames):
        raise RuntimeError(f"import failed: {imported.status_code} {imported.text[:300]}")
    return task_id


async def start(http: httpx.AsyncClient, url: str, headers: dict[str, str], task_id: str) -> None:
    started = await http.post(f"{url}{PREFIX}/tasks/{task_id}/start", headers=headers)
    if started.status_code != 200:
        raise RuntimeError(f"start failed: {started.status_code} {started.text[:300]}")
