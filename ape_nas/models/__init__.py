"""Model families. Importing this package imports every family, so registration cannot be forgotten."""

from ape_nas.models import (  # noqa: F401  (registration side effect)
    cnn,
    fcn,
    inception,
    proto,
    resnet,
    rnn,
    searched,
    tcn,
    transformer,
    xresnet,
)
from ape_nas.models.registry import (
    ModelFamily,
    arch_defaults,
    build_model,
    canonical_arch,
    canonical_spec,
    get_family,
    list_models,
    register_model,
)

__all__ = [
    "ModelFamily",
    "arch_defaults",
    "build_model",
    "canonical_arch",
    "canonical_spec",
    "get_family",
    "list_models",
    "register_model",
]
