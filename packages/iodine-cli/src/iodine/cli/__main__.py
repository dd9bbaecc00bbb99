"""``python -m iodine.cli``: the ``iodine`` command without the script on PATH."""

from __future__ import annotations

from iodine.cli.main import main

if __name__ == "__main__":
    main()
