import json


def escape(state):
    m = json
    return m.decoder.scanstring
