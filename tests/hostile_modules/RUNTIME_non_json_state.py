def escape(state):
    state["bad"] = {1, 2, 3}
    return "ok"
