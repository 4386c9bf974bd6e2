def escape(state):
    return "x" * 20_000_000
