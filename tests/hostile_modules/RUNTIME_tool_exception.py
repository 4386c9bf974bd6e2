import math


def escape(state):
    return math.sqrt(-1)
