"""The embedded starter API corpus: 16 invented services, 227 tools, in four input formats.

It lets the whole pipeline run with no external corpus (the paper's ToolBench / APIGen scale input is
swapped in later). Every service is a small database world: entity collections keyed by ``<entity>_id``
fields shared by its tools, read tools (GET) that return those records, and write tools that take the ids
of existing records plus simply typed fields; so parameter embeddings cluster by service, and a read's
returned fields feed the required arguments of the next call (the dependency graph).

Services (file, format, tools):

- ``retail_orders.openapi.yaml``            OpenAPI 3.0 YAML   Larkspur Outfitters store: customers, products, orders, returns (14)
- ``airline_booking.openapi.json``          OpenAPI 3.0 JSON   Skylark Air: flights, passengers, bookings, seats, check-in (13)
- ``hotel_reservations.openapi.yaml``       OpenAPI 3.0 YAML   Harborlight Hotels: hotels, room types, guests, reservations (13)
- ``banking.openai.json``                   OpenAI tools       Meridian Community Bank: accounts, transactions, transfers, payees, cards (15)
- ``telecom_plans.openapi.json``            OpenAPI 3.0 JSON   Brightwave Mobile: lines, plans, usage, top-ups, bills (14)
- ``food_delivery.openai.json``             OpenAI tools       Gobble Eats: restaurants, menus, delivery orders, couriers (14)
- ``ride_hailing.mcp.json``                 MCP tools/list     Zipline Rides: fare estimates, rides, drivers, vehicles (13)
- ``calendar_meetings.openapi.yaml``        OpenAPI 3.0 YAML   Tidewater Calendar: calendars, events, free slots, rooms (12)
- ``email_messaging.openai.json``           OpenAI tools       Parcel Mail: mailboxes, folders, messages, drafts, contacts (15)
- ``support_ticketing.openapi.json``        OpenAPI 3.0 JSON   HelpLoop Service Desk: tickets, comments, agents, articles (16)
- ``music_streaming.mcp.json``              MCP tools/list     Cadence Music: tracks, albums, playlists, playback (15)
- ``library_books.openapi.yaml``            OpenAPI 3.0 YAML   Oakridge Public Library: books, copies, loans, holds, fines (15)
- ``healthcare_appointments.openapi.json``  OpenAPI 3.0 JSON   Willowbrook Clinics: patients, providers, slots, appointments (16)
- ``real_estate.openai.json``               OpenAI tools       Keystone Homes: listings, agents, viewings, offers (15)
- ``car_rental.openapi.yaml``               OpenAPI 3.0 YAML   Roadrunner Car Rental: locations, cars, renters, rentals (13)
- ``weather.mcp.json``                      MCP tools/list     Nimbus Weather: conditions, forecasts, alerts, subscriptions (14)

Formats:

- OpenAPI 3.0 (``*.openapi.yaml`` / ``*.openapi.json``): ``info.title``, ``info.x-providerName``,
  ``info.x-apisguru-categories``; one ``operationId`` per operation; path and query parameters,
  ``requestBody`` (named ``components/schemas/*Request`` for creating operations); ``$ref`` to
  ``components/schemas`` entities in 2xx responses; pagination ``limit`` via ``components/parameters``.
- OpenAI tools (``*.openai.json``): a list of ``{"type": "function", "function": {name, description,
  parameters}}``, each function with a non-standard ``returns`` JSON Schema.
- MCP (``*.mcp.json``): the body of a ``tools/list`` result, ``{"tools": [{name, title, description,
  inputSchema, outputSchema, annotations}]}``; ``annotations.readOnlyHint`` marks read tools.

The files are generated from ``_services.py`` by ``python -m agentscaler_dagster.starter_corpus._build``;
a test rebuilds them and compares bytes. Tool names are unique across the whole corpus; a few concepts
(``customer_id``, ``payment_method_id``, ``order_id``, ``email``) recur across services on purpose.
"""

from __future__ import annotations

from pathlib import Path

STARTER_CORPUS_DIR: Path = Path(__file__).resolve().parent

CORPUS_SUFFIXES = (".openapi.yaml", ".openapi.json", ".openai.json", ".mcp.json")


def starter_corpus_files() -> list[Path]:
    """The corpus files shipped in the package, sorted by name."""
    return sorted(p for p in STARTER_CORPUS_DIR.iterdir() if p.is_file() and p.name.endswith(CORPUS_SUFFIXES))


__all__ = ["CORPUS_SUFFIXES", "STARTER_CORPUS_DIR", "starter_corpus_files"]
