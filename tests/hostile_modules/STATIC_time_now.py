import datetime


def escape(state):
    return datetime.datetime.now().isoformat()
