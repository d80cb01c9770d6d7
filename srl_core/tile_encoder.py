"""The tile engine's model stage: batches of normalised tiles in host memory to embeddings.

Kept apart from :mod:`srl_core.tiles` (which reads rasters through GDAL) so that the model stage
can be imported, tested and timed on a machine with torch alone, e.g. a GPU host without GDAL.

``precision``: "fp32" (default) or "mixed". fp32 runs float32 tensors with torch's defaults, so
on a CUDA GPU of the Ampere generation or later cuDNN convolves in TensorFloat-32: on an H100 that
was 4.7x faster than strict float32 on a 50 px TileNet and 1.1-3.6x on the bundled models, and
the embeddings of 4096 real Landsat tiles stayed within 0.06 % (of the largest value) of the CPU's,
cosine 1.00000, 99.9-100 % of nearest neighbours the same. (Set
``torch.backends.cudnn.allow_tf32 = False`` for strict float32.) "mixed" runs the convolutions
and matrix products in float16 under ``torch.autocast`` (CUDA only) and returns float32: within
0.14 %, 99.8 % of nearest neighbours the same (bfloat16: 1 %, 98.8 %). It pays where the model
takes the time (the 50 px TileNet: 1.5x over fp32), not on the bundled 17 px models, whose
copies to and from the GPU take longer than the model. Mixed precision on the CPU is refused: it
is not faster there and changes the result. Measured by ``benchmarks/bench_cuda.py``.

On a CUDA GPU the engine's default batch is :data:`CUDA_BATCH` tiles, 64 elsewhere: at 64 tiles a
batch the GPU waits on each call (the bundled models on an H100: 35,000-68,000 tiles/s at 64
against 480,000-650,000 at 1024, where the CPU's reader is then the bound).
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from .bundle import LoadedModel
from .checks import check_finite_output
from .device import resolve_device
from .errors import InputError, ModelError
from .models.inference import prepare_for_inference
from .names import PRECISIONS

CPU_BATCH = 64
CUDA_BATCH = 1024


def check_precision(precision: str, device: torch.device) -> None:
    """Refuse an unknown precision, or mixed precision on a device that is not a CUDA GPU."""
    if precision not in PRECISIONS:
        raise InputError(f"Precision must be one of {', '.join(PRECISIONS)}, got '{precision}'.")
    if precision == "mixed" and device.type != "cuda":
        raise InputError(f"Precision 'mixed' needs a CUDA device and this run is on {device.type}: "
                         "set precision to fp32.")


def default_batch_size(device: torch.device) -> int:
    """Tiles per model call when the caller gives none: :data:`CUDA_BATCH` on a CUDA GPU, else 64."""
    return CUDA_BATCH if device.type == "cuda" else CPU_BATCH


class TileEncoder:
    """The model ready on its device: float32 tiles (n, C, T, T) in, float32 embeddings (n, D) out.

    The model family's inference hook prepares the module (a TileNet runs with its BatchNorms
    folded and channels-last tensors, see :mod:`srl_core.models.inference`); the loaded module
    is left as it is. The gain depends on the model and the machine: 1.3-2.0x on the bundled
    model, one thread, measured on a shared 2-core machine (``benchmarks/bench_tiles.py`` prints
    it per model).
    """

    def __init__(self, loaded: LoadedModel, device: str = "auto", precision: str = "fp32") -> None:
        self.device = resolve_device(device)
        check_precision(precision, self.device)
        self.autocast = torch.float16 if precision == "mixed" else None
        prepared = prepare_for_inference(loaded.module, self.device)
        self.module, self.channels_last = prepared.module, prepared.channels_last
        self.size = int(loaded.card.embedding_size)
        self.model_id = loaded.card.id

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The prepared module on a batch already on the device, in this encoder's precision."""
        with torch.inference_mode():
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            if self.autocast is None:
                return self.module(x)
            with torch.autocast(self.device.type, dtype=self.autocast):
                return self.module(x)

    def submit(self, tiles: np.ndarray) -> PendingEmbeddings:
        """Start embedding a batch; :meth:`PendingEmbeddings.result` gives its embeddings.

        On a CUDA GPU this returns once the batch is on its way: it is copied into pinned memory,
        then to the GPU, the model runs and its embeddings are copied back (into pinned memory) while
        the caller prepares the next batch and writes the last one. For the bundled 17 px models
        the copies and the model take about as long as the main thread's other work, so a caller
        that keeps one batch in flight (the tile engine does) overlaps the two instead of adding
        them. The input is pinned because a copy from ordinary (pageable) memory waits on the
        host for the work queued before it, the batch in flight included. Elsewhere the
        embeddings are computed here.
        """
        batch = torch.from_numpy(tiles)
        if self.device.type == "cuda":
            batch = batch.pin_memory()  # torch's pinned-block cache keeps it until the copy is done
        out = self.forward(batch.to(self.device, non_blocking=True))
        if out.ndim != 2 or out.shape[1] != self.size:
            raise ModelError(
                f"Model '{self.model_id}' returned embeddings of shape {tuple(out.shape)}, "
                f"its card says {self.size} dimensions."
            )
        if self.device.type != "cuda":
            return PendingEmbeddings(out.float(), None, self.model_id)
        values = out.float().to("cpu", non_blocking=True)  # pinned memory, copied asynchronously
        ready = torch.cuda.Event()
        ready.record(torch.cuda.current_stream(self.device))  # the model's GPU, not the current one
        return PendingEmbeddings(values, ready, self.model_id)

    def __call__(self, tiles: np.ndarray) -> np.ndarray:
        """The embeddings of a batch, waiting for them."""
        return self.submit(tiles).result()


class PendingEmbeddings:
    """One batch's embeddings, possibly still being computed or copied back from the GPU."""

    def __init__(self, values: torch.Tensor, ready: Optional[torch.cuda.Event], model_id: str) -> None:
        self._values, self._ready, self._model_id = values, ready, model_id

    def result(self) -> np.ndarray:
        """Wait for the embeddings (float32, (n, D)) and refuse non-finite ones, naming the model."""
        if self._ready is not None:
            self._ready.synchronize()
        values = self._values.numpy()
        check_finite_output(values, f"Model '{self._model_id}'")
        return values
