"""The platform's Mailing page, served unchanged (FRONTEND-CALLS.md): its calls and its words.

The platform's gateway forwards the page's ``/api/invite/{path}`` to ``/api/v1/{path}``
(``FRONTEND_API_PREFIX``), beside this service's own API (``API_PREFIX``). Everything here maps
the page's fields and words onto our own services — tasks, the import, reports, accounts, the
Parsing Service client and the engine's adapters — and back: there is no second task model, no
second engine, and no SQL write of its own.
"""
