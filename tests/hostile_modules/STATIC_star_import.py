from math import *


def escape(state):
    return pi
