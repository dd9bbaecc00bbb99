"""iodine's benchmark suite: iodine against its peers, same run, pinned cores.

Run it with ``nox -s bench -- echo`` or ``nox -s bench -- http`` (see README.md).
"""
