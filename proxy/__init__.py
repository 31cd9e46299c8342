"""ProgImage: image storage and on-the-fly transformation over plain GET URLs."""

__version__ = "0.1.0"
