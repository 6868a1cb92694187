"""Hand-off of a trained model to a product: a self-contained, checksummed bundle, and prediction from it.

* :mod:`ape_nas.handoff.bundle`: bundle layout, checksums and verification (no torch).
* :mod:`ape_nas.handoff.export`: MLflow trial run → bundle (ONNX + TorchScript + preprocessing + model card),
  parity and latency checks, model registry (needs torch).
* :mod:`ape_nas.handoff.predict`: recordings → windows → onnxruntime probabilities, and evaluation with labels
  (imports no torch or lightning).
* :mod:`ape_nas.handoff.card`: the model card (Markdown).

Nothing heavy is imported here, so ``ape_nas.handoff.predict`` stays torch-free.
"""

from __future__ import annotations
