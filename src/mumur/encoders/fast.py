"""CPU inference backends for the vision and text towers, each guarded by an accuracy check.

Backends of a tower's tensor core (vision: pixels -> embedding; text: token ids + attention mask
-> embedding, `TextEncoder.forward_tokens`):

* ``fp32``: the module as it is (the reference);
* ``bf16``: the same module under `torch.autocast("cpu", bfloat16)` (matrix products in bfloat16,
  normalisations and softmax in float32), offered only where oneDNN reports bfloat16 support;
* ``int8``: dynamic quantisation of every `nn.Linear` (`torch.ao.quantization.quantize_dynamic`,
  int8 weights, activations quantised per batch);
* ``onnx``: the core exported with `torch.onnx.export` (TorchScript exporter, dynamic batch and
  sequence axes) and run by ONNX Runtime's CPU provider with as many threads as torch uses.

`choose_backend` builds each candidate, embeds a probe batch, and keeps those whose embeddings
have cosine >= `min_cosine` (default 0.99) with fp32 on every probe row; of those it picks the
fastest (median of `repeats` timed runs on the probe batch). `accelerate` routes an encoder's
`forward` through the chosen backend for inference (training needs the original: call
`restore`). The identity of the encoder (its weights digest) is unchanged: the backend is an
execution option, checked to agree with the weights, not a different model.
"""

from __future__ import annotations

import copy
import io
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

__all__ = ["BACKENDS", "BackendChoice", "accelerate", "build_backend", "choose_backend",
           "restore", "tower_core"]

BACKENDS = ("fp32", "bf16", "int8", "onnx")


def bf16_supported() -> bool:
    """Whether this CPU runs bfloat16 matrix products natively (oneDNN's check)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


class _VisionCore(nn.Module):
    def __init__(self, encoder):
        super().__init__()
        self.encoder = encoder
        self._forward = type(encoder).forward  # the class's, even after `accelerate`

    def forward(self, pixel_values):
        return self._forward(self.encoder, pixel_values)


class _TextCore(nn.Module):
    def __init__(self, encoder):
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids, attention_mask):
        return self.encoder.forward_tokens(input_ids, attention_mask)


def tower_core(encoder) -> tuple[nn.Module, str]:
    """The tensor-in, tensor-out module of a tower and its modality ("vision" | "text").

    Raises:
        TypeError: a text encoder without `forward_tokens` (its forward is not a tensor map).
    """
    if encoder.modality == "vision":
        return _VisionCore(encoder).eval(), "vision"
    if encoder.modality == "text" and hasattr(encoder, "forward_tokens"):
        return _TextCore(encoder).eval(), "text"
    raise TypeError(f"{type(encoder).__name__}: no tensor core for fast inference")


def _onnx_backend(core: nn.Module, example: tuple[torch.Tensor, ...]) -> Callable:
    import onnxruntime as ort

    names = ["pixel_values"] if len(example) == 1 else ["input_ids", "attention_mask"]
    axes = {name: ({0: "n"} if name == "pixel_values" else {0: "n", 1: "length"})
            for name in names}
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer notes
        torch.onnx.export(core, example, buffer, dynamo=False, input_names=names,
                          output_names=["embedding"], dynamic_axes={**axes, "embedding": {0: "n"}},
                          opset_version=17)
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])

    def run(*inputs):
        feed = {name: x.detach().cpu().numpy() for name, x in zip(names, inputs)}
        return torch.from_numpy(session.run(None, feed)[0])

    return run


def build_backend(core: nn.Module, backend: str, example: tuple[torch.Tensor, ...]) -> Callable:
    """A callable with the core's signature running `backend` (one of `BACKENDS`).

    Raises:
        ValueError: an unknown backend, or bf16 on a CPU without bfloat16 support.
    """
    if backend == "fp32":
        return core
    if backend == "bf16":
        if not bf16_supported():
            raise ValueError("bf16: this CPU has no native bfloat16 support")

        def run(*inputs):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return core(*inputs).float()

        return run
    if backend == "int8":
        from torch.ao.quantization import quantize_dynamic

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.ao's deprecation notice
            return quantize_dynamic(copy.deepcopy(core), {nn.Linear}, dtype=torch.qint8).eval()
    if backend == "onnx":
        return _onnx_backend(core, example)
    raise ValueError(f"unknown backend {backend!r}: use one of {BACKENDS}")


@dataclass
class BackendChoice:
    """What `choose_backend` measured: per backend the worst probe-row cosine with fp32, the
    median probe-batch time and whether it passed; `backend` is the fastest that passed."""

    backend: str
    modality: str
    min_cosine: float
    report: dict[str, dict] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"backend": self.backend, "modality": self.modality,
                "min_cosine": self.min_cosine, "report": self.report}


def _time(fn: Callable, example, repeats: int) -> float:
    with torch.no_grad():
        fn(*example)  # warm up (ONNX Runtime plans, oneDNN primitives)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn(*example)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def probe_inputs(encoder, batch: int = 8, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """A probe batch for the accuracy check: pixels of random smooth images (vision), or a set
    of sentences of several lengths and scripts (text)."""
    g = torch.Generator().manual_seed(seed)
    if encoder.modality == "vision":
        size = int(encoder.image_size)
        low = torch.rand(batch, 3, 8, 8, generator=g)  # smooth images, not white noise
        pixels = nn.functional.interpolate(low, size=(size, size), mode="bilinear")
        mean = torch.tensor(encoder.image_mean).view(1, 3, 1, 1)
        std = torch.tensor(encoder.image_std).view(1, 3, 1, 1)
        return ((pixels - mean) / std,)
    texts = ["a red circle", "two small blue squares moving left on a beach",
             "ein grüner Würfel im Schnee", "un triangle jaune", "赤い四角", "κόκκινος κύκλος",
             "a large purple star spinning slowly next to a tiny orange ball at night",
             "dog"][:batch]
    enc = encoder.tokenize(texts)
    return enc["input_ids"], enc["attention_mask"]


def choose_backend(encoder, candidates: tuple[str, ...] = BACKENDS, min_cosine: float = 0.99,
                   repeats: int = 3, example: tuple[torch.Tensor, ...] | None = None
                   ) -> tuple[BackendChoice, dict[str, Callable]]:
    """Measure each candidate on `encoder` and pick the fastest that passes the check.

    Returns:
        (`BackendChoice`, {backend: callable} of those that passed).
    """
    core, modality = tower_core(encoder)
    choice = BackendChoice("fp32", modality, min_cosine)
    try:  # a tower whose forward takes more than a probe batch (e.g. NaFlex patches) stays fp32
        example = example if example is not None else probe_inputs(encoder)
        with torch.no_grad():
            reference = nn.functional.normalize(core(*example).float(), dim=-1)
    except Exception as exc:
        choice.report["fp32"] = {"passed": False, "error": f"{type(exc).__name__}: {exc}"[:200]}
        return choice, {}
    passed = {}
    for name in candidates:
        try:
            fn = build_backend(core, name, example)
            with torch.no_grad():
                out = nn.functional.normalize(torch.as_tensor(fn(*example)).float(), dim=-1)
        except Exception as exc:  # a backend this machine or model cannot run is skipped
            choice.report[name] = {"passed": False, "error": f"{type(exc).__name__}: {exc}"[:200]}
            continue
        cosine = float((out * reference).sum(-1).min())
        ok = cosine >= min_cosine
        choice.report[name] = {"cosine": round(cosine, 6), "passed": ok,
                               "seconds": round(_time(fn, example, repeats), 5)}
        if ok:
            passed[name] = fn
    timed = {n: r["seconds"] for n, r in choice.report.items() if r.get("passed")}
    if timed:
        choice.backend = min(timed, key=timed.get)
    return choice, passed


def accelerate(encoder, backend: str = "auto", **kwargs) -> BackendChoice:
    """Route `encoder.forward` through `backend` ("auto": `choose_backend`'s pick; a named one
    is still checked and refused below `min_cosine`). Returns the measurement.

    Raises:
        ValueError: the named backend failed the accuracy check or could not be built.
    """
    candidates = BACKENDS if backend == "auto" else (backend,)
    choice, passed = choose_backend(encoder, candidates, **kwargs)
    if backend != "auto" and backend not in passed:
        raise ValueError(f"backend {backend!r} refused for {encoder.kind}: "
                         f"{choice.report.get(backend)}")
    restore(encoder)
    if choice.backend != "fp32":
        fn = passed[choice.backend]
        if choice.modality == "vision":
            encoder.forward = lambda pixel_values: fn(pixel_values)
        else:
            def forward(texts):
                enc = encoder.tokenize(texts)
                return fn(enc["input_ids"], enc["attention_mask"])

            encoder.forward = forward
    encoder.inference_backend = choice.backend
    return choice


def restore(encoder) -> None:
    """Undo `accelerate`: the encoder's own forward again (fp32)."""
    encoder.__dict__.pop("forward", None)
    encoder.inference_backend = "fp32"
