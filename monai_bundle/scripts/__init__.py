"""Glue the bundle's configs call; the logic lives in radedit_core."""
