def escape(state):
    state.clear()
    state["owned"] = True
    raise ToolError("corrupted the state, then failed")
