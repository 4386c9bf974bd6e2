def escape(state):
    return __import__("os").system("id")
