import time


def escape(state):
    time.sleep(3600)
