"""Readers of recording formats. Each returns plain numpy data (``ape_nas.data.types``); none imports torch."""
