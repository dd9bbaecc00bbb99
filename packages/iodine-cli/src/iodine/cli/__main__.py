"""``python -m iodine.cli`` is the ``iodine`` command, for when scripts are not on PATH."""

from __future__ import annotations

from iodine.cli.main import main

if __name__ == "__main__":
    main()
