"""Initial states: several schema-valid databases per domain, of different sizes and values.

Values come from Faker (seeded per state with ``seed_instance``) and a ``random.Random`` for numbers and
dates, picked by field name and type; reference fields point at records that exist (ids of every
collection are made first, so cycles between collections are fine). No clock is read: dates are drawn
from a fixed window.
"""

from __future__ import annotations

import datetime as dt
import random
import re
from typing import Any

from faker import Faker

from agentscaler_dagster.envgen.kinds import AVAILABILITY_WORDS, FUNDS_WORDS, pick
from agentscaler_dagster.envgen.naming import singular, to_snake
from agentscaler_dagster.sandbox.argcheck import check_value

# record counts per collection for the i-th state (cycled): small, medium, large
_SIZES = ((2, 4), (5, 9), (10, 16))
_DATE_START = dt.date(2023, 1, 1)
_DATE_DAYS = 3 * 365
_PERSON = ("customer", "user", "employee", "passenger", "guest", "member", "patient", "student", "author",
           "contact", "owner", "person", "driver", "client", "agent", "lead", "candidate", "applicant", "player",
           "teacher", "doctor", "account", "recipient", "sender", "buyer", "seller", "traveler", "profile")
_TERMINAL = ("cancelled", "closed", "archived", "revoked", "voided", "rejected", "refunded", "returned",
             "declined", "ended", "completed", "delivered", "inactive", "disabled", "suspended")


# count-like fields and their plausible ranges (first match wins)
_COUNTS = (
    ({"bags", "bag", "luggage"}, 0, 3), ({"children", "infants", "kids"}, 0, 3),
    ({"adults", "guests", "passengers", "travelers", "travellers", "occupants", "attendees"}, 1, 4),
    ({"nights", "days"}, 1, 10), ({"bedrooms", "rooms", "beds"}, 1, 5), ({"bathrooms", "baths"}, 1, 3),
    ({"stops"}, 0, 2), ({"stars", "rating"}, 1, 5), ({"minutes", "duration"}, 15, 120), ({"seats"}, 2, 7),
    ({"tickets", "quantity", "qty", "units", "copies"}, 1, 5), ({"capacity"}, 2, 60), ({"gb"}, 1, 50),
    ({"percent", "percentage", "pct", "discount"}, 0, 50), ({"priority", "level", "tier"}, 1, 5),
)
_DATE_PAIRS = (("start", "end"), ("begin", "end"), ("check_in", "check_out"), ("checkin", "checkout"),
               ("pickup", "return"), ("pickup", "dropoff"), ("departure", "arrival"), ("from", "to"),
               ("created", "updated"), ("issue", "expiry"), ("issued", "expires"), ("opened", "closed"))
_DATE_LIKE = re.compile(r"^(\d{4}-\d{2}-\d{2}|\d{2}:\d{2})")
_REASONS = ("schedule conflict", "no longer needed", "found a better price", "ordered by mistake",
            "travel plans changed", "duplicate request", "feeling unwell", "moved to another city")
_COMMENTS = ("Great service, would recommend.", "Arrived on time and as described.",
             "A bit slow, but the staff were helpful.", "Not what I expected; the support team sorted it out.",
             "Excellent value for the price.", "Friendly and professional.")
_NOTES = ("Requested by {name}; please confirm the {thing} details by email.",
          "Follow-up for the {thing} booked last week.", "{name} prefers a call in the afternoon.",
          "Standard {thing} for the {city} office.", "Priority {thing}: {name} is travelling on Friday.",
          "Weekly {thing} with the {city} team.", "Please keep the {thing} receipt for {name}.")


def _base_type(schema: dict) -> str:
    t = schema.get("type", "string")
    if isinstance(t, list):
        t = next((x for x in t if x != "null"), "string")
    return t


class StateFactory:
    def __init__(self, schema: dict, seed: int, index: int):
        self.schema = schema
        self.rng = random.Random(f"{seed}:{index}")
        self.fake = Faker("en_US")
        self.fake.seed_instance(seed * 1000 + index)
        self.index = index

    def value(self, coll: dict, field: str, fschema: dict) -> Any:
        rng, fake = self.rng, self.fake
        t = _base_type(fschema)
        enum = [v for v in (fschema.get("enum") or []) if v is not None]
        name = to_snake(field)
        tokens = set(name.split("_"))
        if enum:
            if field == coll.get("status_field"):
                live = [v for v in enum if v not in _TERMINAL] or enum
                return rng.choice(live) if rng.random() < 0.7 else rng.choice(enum)
            return rng.choice(enum)
        fmt = fschema.get("format", "")
        special = self._by_meaning(coll, name, tokens, t)
        if special is not None:
            return special
        if t == "boolean":
            return rng.random() < 0.5
        if t == "integer":
            if tokens & {"quantity", "qty", "stock", "inventory", "count", "units", "seats", "capacity"}:
                return rng.randint(1, 60)
            if "age" in tokens:
                return rng.randint(18, 90)
            if "year" in tokens:
                return rng.randint(1990, 2025)
            if tokens & {"price", "amount", "total", "cost", "balance", "fee", "salary"}:
                return rng.randint(5, 2000)
            return rng.randint(1, 100)
        if t == "number":
            if tokens & {"rating", "score", "stars"}:
                return round(rng.uniform(1, 5), 1)
            if tokens & {"lat", "latitude"}:
                return round(rng.uniform(-80, 80), 5)
            if tokens & {"lng", "lon", "long", "longitude"}:
                return round(rng.uniform(-170, 170), 5)
            return round(rng.uniform(5, 800), 2)
        if t == "array":
            item_t = _base_type(fschema.get("items") or {})
            n = rng.randint(0, 3)
            if item_t == "integer":
                return [rng.randint(1, 100) for _ in range(n)]
            if item_t == "number":
                return [round(rng.uniform(1, 100), 2) for _ in range(n)]
            if item_t == "object":
                return []
            # the items are named by the field: attendee_emails holds emails, photo_urls urls
            item_name = singular(name)
            if item_name == name:
                item_name = name + "_item"
            values = [self.value(coll, item_name, {"type": "string"}) for _ in range(n)]
            return sorted(set(values), key=str)
        if t == "object":
            return {}
        # strings
        day = _DATE_START + dt.timedelta(days=rng.randrange(_DATE_DAYS))
        if fmt == "date-time" or tokens & {"timestamp"} or name.endswith("_at"):
            return f"{day.isoformat()}T{rng.randrange(24):02d}:{rng.randrange(60):02d}:00Z"
        if tokens & {"birth", "birthday", "dob", "birthdate"}:
            born = dt.date(1950, 1, 1) + dt.timedelta(days=rng.randrange(55 * 365))
            return born.isoformat() if fmt != "date-time" else f"{born.isoformat()}T00:00:00Z"
        if fmt == "date" or tokens & {"date", "day", "deadline", "due"}:
            return day.isoformat()
        if fmt == "time" or "time" in tokens:
            return f"{rng.randrange(24):02d}:{rng.choice((0, 15, 30, 45)):02d}"
        if fmt == "email" or "email" in tokens:
            return fake.email()
        if fmt in ("uri", "url") or tokens & {"url", "website", "link", "homepage", "image", "avatar"}:
            return fake.url()
        if tokens & {"phone", "mobile", "telephone", "fax"}:
            return f"+1-{rng.randint(201, 989)}-555-{rng.randint(0, 9999):04d}"
        if "first" in tokens and "name" in tokens:
            return fake.first_name()
        if "last" in tokens and "name" in tokens or "surname" in tokens:
            return fake.last_name()
        if tokens & {"username", "login", "handle"}:
            return fake.user_name()
        if tokens & {"city", "town"}:
            return fake.city()
        if "country" in tokens:
            return fake.country()
        if tokens & {"state", "province", "region"}:
            return fake.state()
        if tokens & {"zip", "postcode", "postal"}:
            return fake.postcode()
        if tokens & {"address", "street", "location"}:
            return fake.street_address()
        if tokens & {"company", "organization", "organisation", "employer", "airline", "brand", "vendor"}:
            return fake.company()
        if "currency" in tokens:
            return rng.choice(("USD", "EUR", "GBP", "JPY"))
        if tokens & {"color", "colour"}:
            return fake.color_name()
        if tokens & {"language", "lang", "locale"}:
            return rng.choice(("en", "de", "fr", "es", "ja"))
        if tokens & {"code", "sku", "number", "reference", "ref", "token", "key"}:
            return f"{name[:3].upper()}{rng.randint(10000, 99999)}"
        if "reason" in tokens:
            return rng.choice(_REASONS)
        if tokens & {"comment", "review", "feedback"}:
            return rng.choice(_COMMENTS)
        if tokens & {"description", "summary", "bio", "notes", "note", "message", "content", "text", "body",
                     "details", "instructions", "request", "requests"}:
            thing = coll["entity"].split("_")[-1]
            return rng.choice(_NOTES).format(thing=thing, name=fake.first_name(), city=fake.city())
        if tokens & {"title", "subject", "headline", "label"}:
            return fake.sentence(nb_words=4).rstrip(".")
        if "name" in tokens or name == "name":
            if coll["entity"].split("_")[-1] in _PERSON or tokens & {"full", "contact", "holder", "guest", "patient"}:
                return fake.name()
            thing = (name[: -len("_name")] if name.endswith("_name") else coll["entity"]).split("_")[-1]
            return f"{fake.last_name()} {thing.replace('_', ' ').title()}"
        if tokens & {"type", "category", "kind", "tier", "level", "plan", "class", "role", "genre"}:
            return rng.choice(("basic", "standard", "premium"))
        return fake.word()

    def _by_meaning(self, coll: dict, name: str, tokens: set, t: str) -> Any:
        """Values whose meaning the field name gives away, whatever the declared type allows."""
        rng = self.rng
        if t not in ("integer", "number", "string"):
            return None
        if "last4" in tokens or name.endswith(("last_4", "last_four", "last4")):
            return f"{rng.randint(0, 9999):04d}" if t == "string" else rng.randint(1000, 9999)
        if t == "string":
            return None
        if pick([name], FUNDS_WORDS):
            return round(rng.uniform(1500, 9000), 2) if t == "number" else rng.randint(1500, 9000)
        if pick([name], AVAILABILITY_WORDS):
            return 0 if rng.random() < 0.1 else rng.randint(1, 40)
        for words, low, high in _COUNTS:
            if tokens & words:
                return rng.randint(low, high)
        return None

    def _order_dates(self, record: dict) -> None:
        """start < end, check-in < check-out, pickup < return, ... within one record, a plausible span apart."""
        for field in sorted(record):
            for start, end in _DATE_PAIRS:
                if start not in field.split("_") and start not in field:
                    continue
                other = field.replace(start, end)
                a, b = record.get(field), record.get(other)
                if other == field or not isinstance(a, str) or not isinstance(b, str) or len(a) != len(b) \
                        or not _DATE_LIKE.match(a) or not _DATE_LIKE.match(b):
                    continue
                if len(a) == 10:  # dates: a stay, a rental, a trip of one to two weeks
                    end = dt.date.fromisoformat(a) + dt.timedelta(days=self.rng.randint(1, 14))
                    record[other] = end.isoformat()
                elif len(a) == 20 and a.endswith("Z"):  # date-times: a meeting, a ride of up to a few hours
                    start = dt.datetime.fromisoformat(a[:-1])
                    record[other] = (start + dt.timedelta(minutes=self.rng.choice((30, 45, 60, 90, 120, 240)))
                                     ).isoformat() + "Z"
                elif a > b:
                    record[field], record[other] = b, a

    @staticmethod
    def _person_email(record: dict) -> None:
        first = next((record[f] for f in sorted(record) if f.endswith("first_name") and isinstance(record[f], str)), None)
        last = next((record[f] for f in sorted(record) if f.endswith("last_name") and isinstance(record[f], str)), None)
        full = next((record[f] for f in sorted(record) if f in ("name", "full_name") and isinstance(record[f], str)
                     and " " in record[f]), None)
        if not (first and last) and full:
            first, last = full.split(" ")[0], full.split(" ")[-1]
        if not (first and last):
            return
        for f in sorted(record):
            if f.endswith("email") and isinstance(record[f], str):
                local = re.sub(r"[^a-z]", "", first.lower()) + "." + re.sub(r"[^a-z]", "", last.lower())
                record[f] = f"{local}@{record[f].split('@')[-1]}"
                break

    def build(self) -> dict:
        collections = self.schema["collections"]
        low, high = _SIZES[self.index % len(_SIZES)]
        ids: dict[str, list] = {}
        for name in sorted(collections):
            coll = collections[name]
            count = self.rng.randint(low, high)
            if coll["id_type"] == "integer":
                start = self.rng.randint(1, 50) * 100
                ids[name] = [start + i for i in range(1, count + 1)]
            else:
                ids[name] = [f"{coll['id_prefix']}-{i}" for i in range(1, count + 1)]
        state: dict = {}
        for name in sorted(collections):
            coll = collections[name]
            props = coll["record"]["properties"]
            table = {}
            for key in ids[name]:
                record = {coll["id_field"]: key}
                for field in sorted(props):
                    if field == coll["id_field"] or field in ("last_action",):
                        continue
                    if field == "action_count":
                        record[field] = 0
                        continue
                    ref = coll["references"].get(field)
                    if ref is not None:
                        pool = ids.get(ref) or []
                        if _base_type(props[field]) == "array":
                            k = min(len(pool), self.rng.randint(1, 3))
                            items = props[field].get("items") or {}
                            record[field] = [self._coerce(v, items) for v in sorted(self.rng.sample(pool, k), key=str)]
                        else:
                            record[field] = self._coerce(self.rng.choice(pool), props[field]) if pool else None
                        continue
                    record[field] = self.value(coll, field, props[field])
                self._order_dates(record)
                self._person_email(record)
                table[str(key)] = record
            state[name] = table
        state["_meta"] = {"counters": {name: len(ids[name]) + 1 if collections[name]["id_type"] != "integer"
                                       else max(ids[name], default=0) + 1 for name in sorted(collections)}}
        return state

    @staticmethod
    def _coerce(value: Any, fschema: dict) -> Any:
        t = _base_type(fschema)
        if t == "string":
            return str(value)
        if t == "integer" and isinstance(value, str) and value.isdigit():
            return int(value)
        return value


def generate_states(schema: dict, *, seed: int, n_states: int = 3) -> dict[str, dict]:
    """``n_states`` initial states keyed ``state_0``, ``state_1``, ... (deterministic for the seed)."""
    return {f"state_{i}": StateFactory(schema, seed, i).build() for i in range(n_states)}


def state_problems(schema: dict, state: dict, limit: int = 20) -> list[str]:
    """Schema and referential-integrity problems of a state (empty when it is valid)."""
    problems: list[str] = []
    for name, coll in sorted(schema.get("collections", {}).items()):
        table = state.get(name)
        if not isinstance(table, dict):
            problems.append(f"collection '{name}' is missing or not an object")
            continue
        for key in sorted(table):
            record = table[key]
            problem = check_value(record, coll["record"], f"{name}['{key}']")
            if problem:
                problems.append(problem)
                continue
            if coll["id_field"] in record and str(record[coll["id_field"]]) != key:
                problems.append(f"{name}['{key}'] has {coll['id_field']}={record[coll['id_field']]!r}, not its key")
            for field, ref in coll["references"].items():
                value = record.get(field)
                refs = value if isinstance(value, list) else [] if value is None else [value]
                for ref_key in refs:
                    if str(ref_key) not in state.get(ref, {}):
                        problems.append(f"{name}['{key}'].{field} refers to missing {ref} '{ref_key}'")
            if len(problems) >= limit:
                return problems
    return problems
