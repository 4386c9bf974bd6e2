"""Tool kinds: what each kind of tool must do to the domain database, and the rules that decide a kind.

Every tool of a domain gets one kind (``schema.SchemaBuilder.bind`` decides it from the tool's name, HTTP
binding, parameters and ``returns`` schema; ``codegen`` writes code that does what the kind says;
``semantics`` checks it in the sandbox):

==============  ===================================================================================
kind            contract
==============  ===================================================================================
create          adds exactly one record to its collection and returns it; the given fields are
                stored as given; referenced ids must exist.
get             returns the record whose id it was given; an unknown id is a ToolError.
list            returns the records of its collection that match every filter given (field equal,
                case-insensitive for text; ``min_``/``max_`` bounds; a text query in any field),
                paged by limit/offset; reads never change the state.
search          like list, but returns the first matching record (``find_patient``); none is an error.
update          changes exactly the fields it was given on the record it names, nothing else.
delete          removes exactly the record it names.
sub_add         adds the named items to one list field of the record it names ("add tracks to a
                playlist"); other fields and other records stay as they were; referenced items
                must exist; adding an item already there is a no-op for that item.
sub_remove      removes the named items from that list field; items not in the list are a ToolError.
transition      moves the record's status field along an allowed edge of the status enum
                (``allowed_transitions``); a transition to the state the record is already in (a
                second cancel) or from a state with no edge to the target is a ToolError.
action          a computed effect (book, reserve, buy, pay, transfer, ...): checks that every
                referenced record exists, that the referenced offer is available (seats, stock,
                capacity: decremented by the quantity) and that the payer can pay (balance,
                credit: decremented by the amount), and records a new record whose amount is
                computed from the state (unit price x quantity) rather than taken on trust.
other           a write whose effect is not known from its name: it stamps the record it names
                (``last_action``, ``action_count``) and stores the fields it was given.
==============  ===================================================================================

Rules (in the order ``bind`` applies them):

1. A read with the record's own id is ``get``; a read named get/find/lookup with required non-id
   filters is ``search``; any other read is ``list``. ``list_patient_appointments(patient_id)`` lists
   appointments filtered by ``patient_id`` (the plural last noun names what is listed).
2. A write named ``add_<items>_to_<owner>`` / ``remove_<items>_from_<owner>`` (also attach/detach/
   include/exclude/append) that names the owner's id is ``sub_add`` / ``sub_remove`` on the owner's
   ``<items>`` list field.
3. delete verbs -> ``delete``; status verbs (cancel, approve, close, suspend, ...) -> ``transition``.
4. update verbs with something to set (a field or a reference) -> ``update``; with nothing to set
   (``mark_patient_arrived(appointment_id)``) -> ``other``.
5. A commercial verb (book, reserve, buy, purchase, pay, rent, order, transfer, top up, checkout) that
   refers to an existing record it does not own -> ``action`` writing a ``<noun>_<booking>`` record.
6. other create verbs -> ``create``; an unknown write verb with the record's id -> ``other``, without
   one -> ``create``.
"""

from __future__ import annotations

KINDS = ("create", "get", "list", "search", "update", "delete", "sub_add", "sub_remove", "transition", "action",
         "other")
READ_KINDS = frozenset({"get", "list", "search"})
WRITE_KINDS = frozenset(KINDS) - READ_KINDS

SUB_ADD_VERBS = frozenset({"add", "attach", "include", "append", "insert", "link", "assign", "enroll"})
SUB_REMOVE_VERBS = frozenset({"remove", "detach", "exclude", "unlink", "unassign", "drop"})
SUB_PREPOSITIONS = frozenset({"to", "from", "into", "onto", "in", "on"})
# verbs whose call is a priced / metered transaction on an existing record
COMPUTED_VERBS = frozenset({"book", "reserve", "buy", "purchase", "pay", "rent", "order", "transfer", "checkout",
                            "topup", "redeem", "withdraw", "deposit", "charge", "hire"})

# statuses from which a record cannot move on by any transition (a cancelled order stays cancelled)
FINAL_STATUSES = frozenset({"cancelled", "canceled", "closed", "archived", "revoked", "voided", "rejected",
                            "refunded", "declined", "ended", "deleted", "expired", "failed"})
# statuses that end the normal flow but still allow the after-flow targets below (a delivered order may be
# returned or refunded)
DONE_STATUSES = frozenset({"completed", "delivered", "returned", "resolved", "fulfilled", "paid", "finished",
                           "checked_out", "no_show", "flown", "withdrawn", "used", "lost", "sent", "settled"})
# target -> the statuses it may come from, where the enum has them; a target not listed may come from any
# status that is neither final nor done
_SOURCES = {
    "active": ("inactive", "suspended", "paused", "disabled", "blocked", "locked", "pending", "stopped",
               "expired_pending"),
    "enabled": ("disabled", "inactive", "paused"),
    "unlocked": ("locked", "blocked"),
    "returned": ("delivered", "completed", "shipped", "fulfilled", "checked_out", "borrowed", "active"),
    "refunded": ("paid", "completed", "delivered", "captured", "charged", "returned", "settled"),
    "delivered": ("shipped", "in_transit", "out_for_delivery", "dispatched"),
    "shipped": ("pending", "processing", "processed", "confirmed", "paid", "packed", "ready"),
    "completed": ("active", "pending", "in_progress", "confirmed", "open", "booked", "scheduled", "arrived"),
}

# field-name words that mark a record's availability, its unit price, and a payer's funds
AVAILABILITY_WORDS = ("available_seats", "seats_available", "seats_left", "available_rooms", "rooms_available",
                      "available_units", "units_available", "available_quantity", "quantity_available",
                      "stock", "in_stock_quantity", "inventory", "spots_left", "available_spots",
                      "remaining_capacity", "capacity_remaining", "copies_available", "available_copies",
                      "remaining", "availability")
AVAILABLE_FLAGS = ("available", "is_available", "bookable", "is_bookable", "in_stock", "open")
PRICE_WORDS = ("price", "unit_price", "fare", "base_fare", "rate", "nightly_rate", "price_per_night",
               "daily_rate", "price_per_day", "cost", "fee", "amount_due", "balance_due", "total_due", "amount")
FUNDS_WORDS = ("balance", "available_balance", "account_balance", "credit", "credit_balance", "wallet_balance",
               "funds", "available_credit")
QUANTITY_WORDS = ("quantity", "qty", "seats", "tickets", "number_of_tickets", "number_of_seats", "passengers",
                  "passenger_count", "guests", "number_of_guests", "units", "copies", "count", "nights", "rooms",
                  "data_gb", "bag_count")


def allowed_sources(target: str, values: list[str]) -> list[str]:
    """The statuses of ``values`` from which a transition to ``target`` is allowed (never ``target``)."""
    preferred = [v for v in values if v in _SOURCES.get(target, ()) and v != target]
    if preferred:
        return preferred
    return [v for v in values if v != target and v not in FINAL_STATUSES and v not in DONE_STATUSES]


def transitions_for(values: list[str], targets: list[str]) -> dict[str, list[str]]:
    """``{target: [allowed source statuses]}`` for every target a tool of the collection moves to."""
    return {t: allowed_sources(t, values) for t in sorted(targets)}


def pick(fields, words) -> str | None:
    """The first field (in ``words`` order) whose name is one of ``words`` or ends with ``_<word>``."""
    names = sorted(fields)
    for word in words:
        for name in names:
            if name == word:
                return name
    for word in words:
        for name in names:
            if name.endswith("_" + word):
                return name
    return None


def kinds_markdown(tool_kinds: dict[str, str], failed: dict[str, list[str]] | None = None) -> str:
    """A markdown table tool | kind | semantic check, for metadata and reports."""
    failed = failed or {}
    rows = ["| tool | kind | semantic check |", "|---|---|---|"]
    for tool in sorted(tool_kinds):
        verdict = "; ".join(p.replace("|", "/") for p in failed[tool]) if failed.get(tool) else "pass"
        rows.append(f"| `{tool}` | {tool_kinds[tool]} | {verdict} |")
    return "\n".join(rows) + "\n"
