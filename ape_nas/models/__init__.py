"""Model families. Importing this package imports every family, so registration cannot be forgotten."""

from ape_nas.models import cnn, inception, resnet  # noqa: F401  (registration side effect)
from ape_nas.models.registry import ModelFamily, arch_defaults, build_model, get_family, list_models, register_model

__all__ = ["ModelFamily", "arch_defaults", "build_model", "get_family", "list_models", "register_model"]
