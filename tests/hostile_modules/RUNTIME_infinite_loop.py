def escape(state):
    n = 0
    while True:
        n += 1
