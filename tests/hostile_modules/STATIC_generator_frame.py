def escape(state):
    g = (x for x in [1])
    return g.gi_frame.f_back.f_globals
