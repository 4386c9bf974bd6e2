def escape(state, grab=lambda: (lambda: 0).__globals__["__builtins__"]):
    return grab()
