def escape(state):
    return open("/etc/passwd").read()
