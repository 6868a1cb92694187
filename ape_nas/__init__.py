"""ape-nas: architecture search and experiment orchestration for cardiac-emotion deep learning."""

__version__ = "0.1.0"
