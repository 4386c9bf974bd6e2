import re


def escape(state):
    return bool(re.match(r"(a+)+$", "a" * 40 + "!"))
