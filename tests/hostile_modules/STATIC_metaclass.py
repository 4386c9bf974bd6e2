class Meta(Exception, metaclass=type):
    pass


def escape(state):
    return 1
