from collections import abc


def escape(state):
    return abc
