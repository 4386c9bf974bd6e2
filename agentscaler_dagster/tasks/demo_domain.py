"""A small, hand-written retail domain: a real environment for tests, demos and smoke runs.

Five tools (three reads, two writes) over customers and orders, written to the tool module
contract and served by the sandbox runtime like any generated environment. It is deliberately
tiny so that tests using it run in seconds.
"""

from __future__ import annotations

from agentscaler_dagster.contracts import ToolSource, ToolSpec

TOOL_MODULE = '''
def get_customer(state, customer_id):
    customer = state["customers"].get(customer_id)
    if customer is None:
        raise ToolError(f"customer {customer_id} not found")
    return dict(customer)


def list_orders(state, customer_id, status=None):
    if customer_id not in state["customers"]:
        raise ToolError(f"customer {customer_id} not found")
    found = []
    for order_id in sorted(state["orders"]):
        order = state["orders"][order_id]
        if order["customer_id"] == customer_id and (status is None or order["status"] == status):
            found.append({"order_id": order_id, "status": order["status"]})
    return found


def get_order(state, order_id):
    order = state["orders"].get(order_id)
    if order is None:
        raise ToolError(f"order {order_id} not found")
    return dict(order)


def cancel_order(state, order_id, reason):
    order = state["orders"].get(order_id)
    if order is None:
        raise ToolError(f"order {order_id} not found")
    if order["status"] != "pending":
        raise ToolError(f"order {order_id} is {order['status']}; only pending orders can be cancelled")
    order["status"] = "cancelled"
    order["cancel_reason"] = reason
    return {"order_id": order_id, "status": "cancelled"}


def create_order(state, customer_id, item, quantity):
    if customer_id not in state["customers"]:
        raise ToolError(f"customer {customer_id} not found")
    order_id = f"o-{len(state['orders']) + 1}"
    state["orders"][order_id] = {
        "order_id": order_id, "customer_id": customer_id, "item": item,
        "quantity": quantity, "status": "pending",
    }
    return {"order_id": order_id, "status": "pending"}
'''


def _spec(name: str, description: str, properties: dict, required: list[str], operation: str) -> ToolSpec:
    return ToolSpec(
        tool_id=f"demo-{name}",
        name=name,
        description=description,
        parameters={"type": "object", "properties": properties, "required": required},
        operation=operation,
        source=ToolSource(format="handwritten", file="demo_domain.py", api_title="Demo retail"),
    )


_ID = {"type": "string"}
TOOL_SPECS = [
    _spec("get_customer", "Look up a customer's account.", {"customer_id": _ID}, ["customer_id"], "read"),
    _spec(
        "list_orders",
        "List a customer's orders, optionally by status.",
        {"customer_id": _ID, "status": {"type": "string", "enum": ["pending", "shipped", "cancelled"]}},
        ["customer_id"],
        "read",
    ),
    _spec("get_order", "Show one order.", {"order_id": _ID}, ["order_id"], "read"),
    _spec(
        "cancel_order",
        "Cancel a pending order.",
        {"order_id": _ID, "reason": {"type": "string", "enum": ["no longer needed", "ordered by mistake"]}},
        ["order_id", "reason"],
        "write",
    ),
    _spec(
        "create_order",
        "Place an order for a customer.",
        {
            "customer_id": _ID,
            "item": {"type": "string", "enum": ["lamp", "kettle", "desk"]},
            "quantity": {"type": "integer", "minimum": 1, "maximum": 3},
        },
        ["customer_id", "item", "quantity"],
        "write",
    ),
]

DEPENDENCY_GRAPH = {
    "nodes": [{"name": s.name, "operation": s.operation} for s in TOOL_SPECS],
    "edges": [
        {"source": "get_customer", "target": "list_orders", "field": "customer_id"},
        {"source": "get_customer", "target": "create_order", "field": "customer_id"},
        {"source": "list_orders", "target": "get_order", "field": "order_id"},
        {"source": "list_orders", "target": "cancel_order", "field": "order_id"},
        {"source": "get_order", "target": "cancel_order", "field": "order_id"},
        {"source": "create_order", "target": "get_order", "field": "order_id"},
        {"source": "create_order", "target": "cancel_order", "field": "order_id"},
        {"source": "cancel_order", "target": "get_order", "field": "order_id"},
    ],
}

SCHEMA = {
    "domain_id": "demo-retail",
    "collections": {
        "customers": {"key": "customer_id", "fields": {"customer_id": "string", "name": "string", "tier": "string"}},
        "orders": {
            "key": "order_id",
            "fields": {"order_id": "string", "customer_id": "string", "item": "string", "quantity": "integer", "status": "string"},
        },
    },
}


def initial_states() -> dict[str, dict]:
    def order(oid, cid, item, qty, status):
        return {"order_id": oid, "customer_id": cid, "item": item, "quantity": qty, "status": status}

    return {
        "s0": {
            "customers": {
                "c-1": {"customer_id": "c-1", "name": "Ada Moss", "tier": "gold"},
                "c-2": {"customer_id": "c-2", "name": "Ben Ortiz", "tier": "silver"},
            },
            "orders": {
                "o-1": order("o-1", "c-1", "lamp", 1, "pending"),
                "o-2": order("o-2", "c-1", "desk", 1, "shipped"),
                "o-3": order("o-3", "c-2", "kettle", 2, "pending"),
            },
        },
        "s1": {
            "customers": {"c-7": {"customer_id": "c-7", "name": "Cleo Park", "tier": "bronze"}},
            "orders": {
                "o-1": order("o-1", "c-7", "kettle", 1, "pending"),
                "o-2": order("o-2", "c-7", "lamp", 3, "pending"),
            },
        },
    }


def demo_environment(**kwargs):
    """The demo domain as a sandboxed ``Environment`` (close it, or use it as a context manager)."""
    from agentscaler_dagster.sandbox import Environment

    return Environment(
        domain_id="demo-retail",
        tool_specs=list(TOOL_SPECS),
        source=TOOL_MODULE,
        schema=SCHEMA,
        initial_states=initial_states(),
        dependency_graph_data=DEPENDENCY_GRAPH,
        **kwargs,
    )
