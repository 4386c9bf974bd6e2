def escape(state, depth=0):
    return escape(state, depth + 1)
