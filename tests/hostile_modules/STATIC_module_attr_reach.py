import re


def escape(state):
    return re.sys.modules["os"].getcwd()
