def escape(state):
    blocks = []
    while True:
        blocks.append(bytes(50_000_000))
