"""The parts of the Ray backend (``ape_nas.backends.ray_backend.RayBackend``), one job per module.

Light (no Ray import; ``status`` / ``best`` use the backend without Ray, ≈ 4 s saved):

- ``keys``: the keys of a Ray trial's config and results, shared by the driver and the trial actors;
- ``study``: the Optuna study as the sweep's record — its storage, and the driver's writes to it;
- ``environment``: a quiet Ray driver, ``init_ray``;
- ``runs``: what the driver does to trial runs in the store (interrupted, lost, never reported);
- ``schedulers``: the scheduler table and its options.

Imported only when a Ray sweep runs (they import Ray at module level, so pickle finds them by module path):

- ``searcher``: a Ray Tune ``Searcher`` on the study's public ask interface;
- ``trainable``: the function trainable and the TrialHandle a trial sees;
- ``recorder``: the driver-side Tune callback that tells the study and the store how each trial ended.
"""
