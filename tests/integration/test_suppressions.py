"""The suppression list: add (normalised like imports), list, remove, import from a file, and
the people it names taken out of the tenant's pending work in the same transaction."""

from __future__ import annotations

import uuid

import asyncpg

from tests.integration.api import PREFIX, Client, auth_headers, new_tenant
from tests.integration.audience import new_task, problem, targets, upload

URL = f"{PREFIX}/suppressions"


async def add(
    client: Client, headers: dict[str, str], *identifiers: str, reason: str | None = None
) -> dict[str, object]:
    response = await client.post(
        URL, json={"identifiers": list(identifiers), "reason": reason}, headers=headers
    )
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body


async def listed(client: Client, headers: dict[str, str]) -> list[str]:
    response = await client.get(URL, params={"limit": 500}, headers=headers)
    assert response.status_code == 200, response.text
    return sorted(item["key"] for item in response.json()["items"])


async def test_identifiers_are_normalised_like_an_import(client: Client, headers: dict[str, str]) -> None:
    body = await add(
        client, headers, "@Alice_B", "https://t.me/alice_b", "42", "8 (912) 345-67-89", "x", reason="asked"
    )
    assert (body["received"], body["added"], body["already"], body["rejected"]) == (5, 3, 0, 1)
    assert body["rejected_rows"] == [
        {
            "row": 5,
            "code": "invalid",
            "reason": "username 'x' is too short (at least 4 characters)",
            "value": "x",
        }
    ]
    assert await listed(client, headers) == ["id:42", "p:+79123456789", "u:alice_b"]
    again = await add(client, headers, "ALICE_B", "new_person")
    assert (again["added"], again["already"]) == (1, 1)


async def test_adding_skips_the_tenants_pending_targets_at_once(
    client: Client, tenant: str, headers: dict[str, str], pool: asyncpg.Pool
) -> None:
    task_a = await new_task(client, headers)
    task_b = await new_task(client, headers)
    data = b"username,user id,phone\nalice_b,,\n,42,\nbob_the_b,77,\ncarol_c,,\ndave_d,,\n"
    for task in (task_a, task_b):
        assert (await upload(client, headers, data, "a.csv", task_id=task)).status_code == 201
    # task_a: carol is in flight (the engine holds her), dave is done
    await pool.execute(
        """UPDATE invite_targets SET status = 'in_flight', lease_owner = 'r1', lease_expires_at = now() + interval '1 minute'
           WHERE task_id = $1 AND identifier_key = 'u:carol_c'""",
        uuid.UUID(task_a),
    )
    await pool.execute(
        "UPDATE invite_targets SET status = 'succeeded' WHERE task_id = $1 AND identifier_key = 'u:dave_d'",
        uuid.UUID(task_a),
    )
    other_headers = auth_headers(client, new_tenant())
    other_task = await new_task(client, other_headers)
    assert (await upload(client, other_headers, data, "a.csv", task_id=other_task)).status_code == 201

    # alice by key, "42" by id, bob by his id (he was imported by username), carol and dave too
    body = await add(client, headers, "@alice_b", "42", "77", "carol_c", "dave_d")
    assert body["targets_skipped"] == 8  # task_a: alice, 42, bob; task_b: all five

    def state(rows: list[asyncpg.Record]) -> dict[str, tuple[str, str | None]]:
        return {r["identifier_key"]: (r["status"], r["outcome"]) for r in rows}

    assert state(await targets(pool, task_a)) == {
        "u:alice_b": ("skipped", "suppressed"),
        "id:42": ("skipped", "suppressed"),
        "u:bob_the_b": ("skipped", "suppressed"),
        "u:carol_c": ("in_flight", None),
        "u:dave_d": ("succeeded", None),
    }
    assert all(status == ("skipped", "suppressed") for status in state(await targets(pool, task_b)).values())
    assert {s for s, _ in state(await targets(pool, other_task)).values()} == {"pending"}  # another tenant
    rows = await pool.fetch(
        "SELECT status, n FROM invite_task_counts WHERE task_id = $1 AND n > 0", uuid.UUID(task_b)
    )
    counts = {r["status"]: r["n"] for r in rows}
    assert counts == {"skipped": 5}
    audit = await pool.fetchval(
        "SELECT details FROM invite_audit_log WHERE user_id = $1 AND action = 'suppress'", tenant
    )
    assert audit == {"source": "api", "added": 5, "targets_skipped": 8}


async def test_an_import_leaves_out_people_suppressed_through_the_api(
    client: Client, headers: dict[str, str], pool: asyncpg.Pool
) -> None:
    await add(client, headers, "+7 912 345 67 89")
    task_id = await new_task(client, headers)
    data = b"username,phone\nalice_b,89123456789\nbob_the_b,\n"
    body = (await upload(client, headers, data, "a.csv", task_id=task_id)).json()
    assert body["counts"]["suppressed"] == 1
    assert [r["identifier_key"] for r in await targets(pool, task_id)] == ["u:bob_the_b"]


async def test_the_list_is_paged_newest_first_and_can_be_searched(
    client: Client, headers: dict[str, str]
) -> None:
    await add(client, headers, "first_one", "second_one")
    await add(client, headers, "third_one", "fourth_one", "fifth_one")
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, str | int] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        response = await client.get(URL, params=params, headers=headers)
        body = response.json()
        seen += [item["key"] for item in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert (
        sorted(seen)
        == sorted({*seen})
        == ["u:fifth_one", "u:first_one", "u:fourth_one", "u:second_one", "u:third_one"]
    )
    assert set(seen[:3]) == {"u:third_one", "u:fourth_one", "u:fifth_one"}  # the later call first
    found = await client.get(URL, params={"identifier": "https://t.me/Third_One"}, headers=headers)
    assert [item["identifier"] for item in found.json()["items"]] == ["third_one"]
    bad = await client.get(URL, params={"cursor": "garbage!"}, headers=headers)
    assert problem(bad, 422)["invalid-params"][0]["name"] == "cursor"


async def test_remove_by_any_form_of_the_identifier(
    client: Client, headers: dict[str, str], pool: asyncpg.Pool
) -> None:
    task_id = await new_task(client, headers)
    assert (
        await upload(client, headers, b"username\nalice_b\n", "a.csv", task_id=task_id)
    ).status_code == 201
    await add(client, headers, "alice_b", "+79123456789")
    assert (await client.delete(f"{URL}/@Alice_B", headers=headers)).status_code == 204
    assert (await client.delete(f"{URL}/p:+79123456789", headers=headers)).status_code == 204
    problem(await client.delete(f"{URL}/alice_b", headers=headers), 404)
    assert await listed(client, headers) == []
    assert [r["status"] for r in await targets(pool, task_id)] == ["skipped"]  # nobody is re-queued
    assert (
        problem(await client.delete(f"{URL}/x", headers=headers), 422)["invalid-params"][0]["name"]
        == "identifier"
    )


async def test_tenants_see_and_remove_only_their_own(client: Client, headers: dict[str, str]) -> None:
    await add(client, headers, "alice_b")
    stranger = auth_headers(client, new_tenant())
    assert await listed(client, stranger) == []
    problem(await client.delete(f"{URL}/alice_b", headers=stranger), 404)
    assert await listed(client, headers) == ["u:alice_b"]


async def test_import_a_suppression_file(client: Client, headers: dict[str, str]) -> None:
    data = "Выгрузка отписавшихся\nЛогин;Телефон\n@alice_b;\n;8 912 345-67-89\nне логин;\n".encode("cp1251")
    response = await upload(
        client, headers, data, "stop.csv", path="/suppressions/import", fields={"reason": "opt-out"}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["received"], body["added"], body["rejected"]) == (3, 2, 1)
    assert body["rejected_rows"][0]["row"] == 5
    assert body["columns"] == {"header_row": 2, "username": "Логин", "phone": "Телефон"}
    items = (await client.get(URL, headers=headers)).json()["items"]
    assert {(i["key"], i["reason"]) for i in items} == {
        ("u:alice_b", "opt-out"),
        ("p:+79123456789", "opt-out"),
    }
    garbage = await upload(client, headers, bytes(range(256)) * 8, "stop.csv", path="/suppressions/import")
    assert "binary data" in problem(garbage, 422)["detail"]
    assert len(await listed(client, headers)) == 2


async def test_bad_bodies(client: Client, headers: dict[str, str]) -> None:
    problem(await client.post(URL, json={"identifiers": []}, headers=headers), 422)
    problem(await client.post(URL, json={"identifiers": ["a"], "extra": 1}, headers=headers), 422)
    problem(await client.post(URL, json={"identifiers": ["alice_b"]}), 401)
