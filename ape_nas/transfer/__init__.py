"""Few-shot transfer of a trained network to new people (issue 12): adaptation methods (``methods``), leakage-free
protocols (``protocols``), the source and target (``source``, ``target``), the runs and their results (``run``,
``results``), the adapted bundle (``bundle_out``) and its MLflow run (``tracking``); ``command`` is
``ape-nas transfer``."""
