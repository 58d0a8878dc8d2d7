"""``python -m napari_milseg``: the same as the ``milseg`` command."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
