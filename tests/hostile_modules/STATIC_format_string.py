def escape(state):
    return "{0.__class__.__mro__}".format(state)
