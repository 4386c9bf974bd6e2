import copy


def escape(state):
    return copy.sys.modules["subprocess"].run(["id"])
