def escape(state):
    return eval("1+1")
