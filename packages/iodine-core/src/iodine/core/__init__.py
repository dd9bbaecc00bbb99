"""iodine's core runtime: the reactor, connections, timers, threads and hooks.

The public names are re-exported by the ``iodine`` package; import from there.
"""
