"""mathtx helpers."""
