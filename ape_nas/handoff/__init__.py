"""Hand-off of a trained model to a product: a self-contained, checksummed bundle, and prediction from it.

* :mod:`~ape_nas.handoff.bundle`: bundle layout, checksums, verification, the one rename into place (no torch).
* :mod:`~ape_nas.handoff.export`: ``ape-nas export``, a short pipeline over the steps below (needs torch):
  :mod:`~ape_nas.handoff.source` (run id or an experiment's best trial, from the store),
  :mod:`~ape_nas.handoff.trial` (spec, checkpoint, network, the training windows),
  :mod:`~ape_nas.handoff.scores` (per-subject metrics), :mod:`~ape_nas.handoff.convert` (ONNX, TorchScript,
  parity, latency), :mod:`~ape_nas.handoff.preprocessing` (``preprocessing.json``),
  :mod:`~ape_nas.handoff.manifest` (``metrics.json``, ``bundle.json``), :mod:`~ape_nas.handoff.card` (the model
  card, from ``templates/model_card.md``), :mod:`~ape_nas.handoff.register` (MLflow artifacts and registry).
* :mod:`~ape_nas.handoff.onnx_session`: onnxruntime sessions, batched runs, latency (no torch).
* :mod:`~ape_nas.handoff.predict` / :mod:`~ape_nas.handoff.evaluate`: recordings → windows → onnxruntime
  probabilities, and their scores with labels (import no torch or lightning).

Nothing heavy is imported here, so ``ape_nas.handoff.predict`` stays torch-free.
"""

from __future__ import annotations
