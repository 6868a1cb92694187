"""GPU detection of ``ape-nas worker --workers N``: a CUDA build that cannot reach its GPU is one clear error,
never a silent CPU run. The CUDA failure is simulated (this machine has no GPU and a CPU build of torch)."""

from __future__ import annotations

import warnings

import pytest
import torch

from ape_nas.errors import UserError
from ape_nas.workers import _gpu_ids


def _cuda_build_that_fails(monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(torch.version, "cuda", "12.8")

    def device_count() -> int:
        if how == "raise":
            raise RuntimeError("CUDA driver initialization failed, you might not have a CUDA gpu.")
        warnings.warn("CUDA initialization: CUDA driver version is insufficient (Triggered internally)", stacklevel=1)
        return 0

    monkeypatch.setattr(torch.cuda, "device_count", device_count)


@pytest.mark.parametrize("how", ["warn", "raise"])
def test_a_cuda_error_is_reported_not_turned_into_a_cpu_run(monkeypatch: pytest.MonkeyPatch, how: str):
    _cuda_build_that_fails(monkeypatch, how)
    with pytest.raises(UserError, match=r"CUDA is installed but no GPU can be used \(CUDA .*CUDA_VISIBLE_DEVICES="):
        _gpu_ids()


def test_cpu_on_purpose_and_cpu_builds_need_no_gpu(monkeypatch: pytest.MonkeyPatch):
    _cuda_build_that_fails(monkeypatch, "warn")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert _gpu_ids() == []  # the user asked for CPU
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,3")
    assert _gpu_ids() == ["1", "3"]
    monkeypatch.undo()
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    if torch.version.cuda is None:  # this machine: the CPU build has no GPU and says nothing
        assert _gpu_ids() == []
