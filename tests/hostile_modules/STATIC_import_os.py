import os


def escape(state):
    return os.listdir("/")
