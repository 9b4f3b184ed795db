"""ONNX export of the trained checkpoints, with parity checks, an int8 U, and manifest entries.

For every checkpoint in `models/artifacts/checkpoints/` this writes `models/artifacts/onnx/<name>.onnx`
and an entry in `models/artifacts/manifest.json` (name, path, sha256 = model id, dim, dtype, input
and output names). Graphs, inputs -> outputs (B is a dynamic batch axis):

| name                      | inputs                                       | outputs |
| market, sentiment, risk   | features (B, F)                              | embedding (B, d), probs (B, 3) |
| m-learned, m-learned-dec  | scores (B, A*3), mask (B, A)                 | probs (B, 3) |
| e-d<d>                    | embeddings (B, A*d), mask (B, A)             | probs (B, 3) |
| u, u-int8                 | market (B, 26), sentiment (B, 1152), risk (B, 10), mask (B, 3) | probs (B, 3), embedding (B, e) |

The sentiment features (the sentiment agent's and U's) are 3 headline slots of 384
(`models.data.features.text_features`); U splits them into one token per headline inside the graph.
Every entry's `extra.features_version` is the `models.data.features.FEATURES_VERSION` its checkpoint
was trained on (1 where the checkpoint does not say: trained before the version existed).

Parity: onnxruntime must match torch within `PARITY_ATOL` (absolute, on every output) over the
saved test batch, or export fails. `u-int8` (dynamic int8 weights of every MatMul/Gemm) is checked on
accuracy instead: it may lose at most `INT8_MAX_ACC_LOSS` against `u` on the same batch.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from models import fusion
from node.protocol import codec
from models.data.features import FeatureSet
from models.manifest import ARTIFACTS_DIR, MANIFEST_PATH, ManifestEntry, sha256_file, upsert_entries
from models.nets import AgentNet, EdHead, Stacker, UNet
from models.train import CHECKPOINT_DIR, load_checkpoint, load_eval_batch
from node.protocol.errors import ModelError

log = logging.getLogger(__name__)

OPSET = 17
"""The opset of the deployable graphs (TorchScript exporter, see `export_graph`)."""
DYNAMO_OPSET = 18
"""The opset `write_onnx` writes: the lowest the dynamo exporter writes without converting."""
PARITY_ATOL = 1e-4
"""Max |onnxruntime - torch| allowed on any output element (probabilities, embeddings) in f32."""
INT8_MAX_ACC_LOSS = 0.01
"""Max accuracy the int8 U may lose against the f32 U on the test batch (1 point)."""
ONNX_DIR = ARTIFACTS_DIR / "onnx"


class _AgentGraph(nn.Module):
    def __init__(self, m: AgentNet) -> None:
        super().__init__()
        self.m = m

    def forward(self, features: torch.Tensor):
        e, logits = self.m(features)
        return e, torch.softmax(logits, dim=1)


class _HeadGraph(nn.Module):
    def __init__(self, m: nn.Module) -> None:
        super().__init__()
        self.m = m

    def forward(self, x: torch.Tensor, mask: torch.Tensor):
        return torch.softmax(self.m(x, mask), dim=1)


class _UGraph(nn.Module):
    def __init__(self, m: UNet) -> None:
        super().__init__()
        self.m = m

    def forward(self, *inputs: torch.Tensor):
        e, logits = self.m(*inputs)
        return torch.softmax(logits, dim=1), e


@dataclass
class Graph:
    """What to export for one checkpoint: the module, its I/O names and a batch of real inputs."""

    name: str
    module: nn.Module
    inputs: dict[str, np.ndarray]
    outputs: list[str]
    dim: int
    dtype: str
    extra: dict = field(default_factory=dict)


@dataclass
class ExportReport:
    name: str
    path: Path
    sha256: str
    max_abs_diff: float | None
    extra: dict = field(default_factory=dict)


def _agent_outputs(agents: list[AgentNet], batch: FeatureSet) -> tuple[np.ndarray, np.ndarray]:
    """(probs (N, A, C), embeddings (N, A, d)) from the torch agents, zeros where absent."""
    n = len(batch)
    probs = np.zeros((n, len(agents), batch.n_classes), np.float32)
    emb = np.zeros((n, len(agents), agents[0].cfg.embed_dim), np.float32)
    with torch.no_grad():
        for k, a in enumerate(agents):
            e, logits = a(torch.from_numpy(batch.x[batch.names[k]]))
            rows = batch.mask[:, k] > 0
            probs[rows, k] = torch.softmax(logits, 1).numpy()[rows]
            emb[rows, k] = e.numpy()[rows]
    return probs, emb


def graphs_for(models: dict[str, tuple[nn.Module, dict]], batch: FeatureSet) -> list[Graph]:
    """One Graph per checkpoint, with its parity inputs computed from the saved test batch."""
    names = list(batch.names)
    agents = [models[k][0] for k in names if k in models]
    if len(agents) != len(names):
        raise ModelError(f"checkpoints for agents {names} are incomplete: have {sorted(models)}")
    probs, emb = _agent_outputs(agents, batch)  # type: ignore[arg-type]
    mask = batch.mask.astype(np.float32)
    out = []
    for name, (model, meta) in models.items():
        common = {"kind": type(model).__name__, "dataset": meta.get("dataset"), "seed": meta.get("seed"),
                  "test_accuracy": meta.get("test_accuracy"), "features_version": meta.get("features_version", 1)}
        if isinstance(model, AgentNet):
            k = names.index(name)
            rows = batch.mask[:, k] > 0
            dtype = meta.get("publish_dtype", "f32")
            out.append(Graph(name, _AgentGraph(model), {"features": batch.x[name][rows]}, ["embedding", "probs"],
                             model.cfg.embed_dim, dtype, {**common, "modality": name}))
        elif isinstance(model, Stacker):
            if model.cfg.scores == "probs":
                scores = fusion.stack_probs(probs, mask)
            else:
                actions, confs = fusion.decision(probs)
                scores = fusion.decision_scores(actions, confs, mask, batch.n_classes)
            out.append(Graph(name, _HeadGraph(model), {"scores": scores, "mask": mask}, ["probs"],
                             batch.n_classes, "f32", {**common, "scores": model.cfg.scores, "agents": names}))
        elif isinstance(model, EdHead):
            dt = model.cfg.dtype
            e = codec.dequantize(codec.quantize(emb, dt), dt) * mask[:, :, None]
            out.append(Graph(name, _HeadGraph(model), {"embeddings": e.reshape(len(e), -1), "mask": mask},
                             ["probs"], batch.n_classes, "f32",
                             {**common, "embedding_dim": model.cfg.embed_dim, "embedding_dtype": dt, "agents": names}))
        elif isinstance(model, UNet):
            inputs = {k: batch.x[k] for k in names} | {"mask": mask}
            out.append(Graph(name, _UGraph(model), inputs, ["probs", "embedding"], model.cfg.embed_dim, "f32",
                             {**common, "modalities": names,
                              **({"mixer": model.cfg.mixer} if model.cfg.mixer != "attention" else {})}))
        else:
            raise ModelError(f"checkpoint {name!r}: no export rule for {type(model).__name__}")
    return out


def write_onnx(module: nn.Module, example: tuple[torch.Tensor, ...], path: Path, input_names: list[str],
               output_names: list[str], dims: dict[int, torch.export.Dim], opset: int = DYNAMO_OPSET) -> None:
    """Export `module` with the dynamo exporter (torch.export) to one self-contained ONNX file.

    `dims` are the dynamic axes every input shares (e.g. `{0: Dim("batch")}`). The weights are kept
    inside the file and the exporter's per-node metadata (Python stack traces with absolute paths and
    line numbers) is dropped: the model id is the file's sha256, and it must depend on the graph and
    the weights only, not on where the checkout lives."""
    import onnx

    shapes = torch.export.ShapesCollection()
    for tensor in example:
        shapes[tensor] = dims
    with _quiet_exporter(), torch.no_grad():
        program = torch.onnx.export(module.eval(), example, input_names=input_names, output_names=output_names,
                                    dynamic_shapes=shapes.dynamic_shapes(module, example), opset_version=opset,
                                    dynamo=True, verbose=False)
    _unshadow_outputs(program.model.graph, output_names)
    proto = program.model_proto
    _drop_metadata(proto.graph)
    for function in proto.functions:
        for node in function.node:
            del node.metadata_props[:]
    onnx.checker.check_model(proto)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(proto, str(path))


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Errors only from the exporter and its optimizer while exporting.

    They warn about optional torchvision ops, axis names they merge and their own deprecations, and
    log every rewrite at INFO: nothing the caller can act on; the parity check is what counts."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "onnxscript", "onnx_ir")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _unshadow_outputs(graph, output_names: list[str]) -> None:
    """Rename inner values that carry the name of a graph output.

    The exporter names the outputs as asked without checking that an inner value (an fx node name,
    e.g. BERT's `embedding` lookup) already has that name, which leaves an invalid, non-SSA graph
    (pytorch/pytorch#158094). The inner value takes a free name; the outputs keep theirs."""
    from onnx_ir.traversal import RecursiveGraphIterator

    outputs = {id(v) for v in graph.outputs}
    values = [v for node in RecursiveGraphIterator(graph) for v in node.outputs]
    taken = {v.name for v in values} | {v.name for v in graph.inputs} | set(graph.initializers)
    for value in values:
        if value.name in output_names and id(value) not in outputs:
            n = 1
            while f"{value.name}_{n}" in taken:
                n += 1
            value.name = f"{value.name}_{n}"
            taken.add(value.name)


def _drop_metadata(graph) -> None:
    """Remove `metadata_props` from `graph` and everything in it, subgraphs included."""
    del graph.metadata_props[:]
    for items in (graph.input, graph.output, graph.value_info, graph.initializer, graph.node):
        for item in items:
            del item.metadata_props[:]
    for node in graph.node:
        for attr in node.attribute:
            for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                _drop_metadata(sub)


def export_graph(g: Graph, path: Path) -> None:
    """Write `g` to `path` with a dynamic batch axis, traced on the first 8 rows of its inputs.

    These small graphs stay on the TorchScript exporter, deprecated as it is: the dynamo exporter
    (`write_onnx`, which MiniLM uses) exports them with the same parity, but it rebuilds its whole
    aten-to-ONNX registry from source on every call (torch 2.13, onnxscript 0.7: about 1.1 s per
    graph warm against 0.02 s), and the bench exports 7 graphs for each seed and sweep point: about
    +100 s on the quick profile (the `make demo` bench went from 168 s to 276 s) and +15 min on the
    full one. Move them when the exporter can reuse its registry across calls."""
    path.parent.mkdir(parents=True, exist_ok=True)
    example = tuple(torch.from_numpy(v[:8]) for v in g.inputs.values())
    names = list(g.inputs)
    torch.onnx.export(g.module.eval(), example, str(path), input_names=names, output_names=g.outputs,
                      dynamic_axes={n: {0: "batch"} for n in names + g.outputs}, opset_version=OPSET,
                      dynamo=False, do_constant_folding=True)


def _session(path: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def parity(g: Graph, path: Path) -> float:
    """Max |onnxruntime - torch| over every output element on the graph's inputs."""
    with torch.no_grad():
        ref = g.module(*[torch.from_numpy(v) for v in g.inputs.values()])
    ref = [r.numpy() for r in (ref if isinstance(ref, tuple) else (ref,))]
    got = _session(path).run(g.outputs, dict(g.inputs))
    return float(max(np.max(np.abs(a - b)) if a.size else 0.0 for a, b in zip(ref, got)))


def quantize_int8(src: Path, dst: Path) -> None:
    """Dynamic int8 quantisation of every MatMul/Gemm weight (activations quantised at run time),
    after onnxruntime's recommended pre-processing (shape inference, graph optimisation)."""
    import tempfile

    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(src), str(pre))
        quantize_dynamic(str(pre), str(dst), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"])


def onnx_accuracy(path: Path, inputs: dict[str, np.ndarray], y: np.ndarray) -> float:
    probs = _session(path).run(["probs"], inputs)[0]
    return float(np.mean(probs.argmax(1) == y))


def export_all(ckpt_dir: Path = CHECKPOINT_DIR, out_dir: Path = ONNX_DIR, manifest_path: Path = MANIFEST_PATH,
               int8: bool = True) -> list[ExportReport]:
    """Export every checkpoint (plus `u-int8`), check parity, and upsert the manifest entries."""
    paths = sorted(p for p in ckpt_dir.glob("*.pt"))
    if not paths:
        raise ModelError(f"no checkpoints in {ckpt_dir}; run `chorus train` first")
    models = {p.stem: load_checkpoint(p) for p in paths}
    batch = load_eval_batch(ckpt_dir / "eval.npz")
    reports, entries = [], []
    root = manifest_path.parent
    for g in graphs_for(models, batch):
        path = out_dir / f"{g.name}.onnx"
        export_graph(g, path)
        diff = parity(g, path)
        if diff > PARITY_ATOL:
            raise ModelError(f"{g.name}: onnxruntime differs from torch by {diff:.2e} > {PARITY_ATOL:.0e}")
        log.info("exported %s (parity %.1e)", g.name, diff)
        extra = {**g.extra, "opset": OPSET, "parity_atol": PARITY_ATOL, "parity_max_abs_diff": diff,
                 "checkpoint": f"checkpoints/{g.name}.pt"}
        reports.append(ExportReport(g.name, path, sha256_file(path), diff, extra))
        if int8 and isinstance(g.module, _UGraph):
            qpath = out_dir / f"{g.name}-int8.onnx"
            quantize_int8(path, qpath)
            acc = onnx_accuracy(path, g.inputs, batch.y)
            acc_q = onnx_accuracy(qpath, g.inputs, batch.y)
            loss = acc - acc_q
            if loss > INT8_MAX_ACC_LOSS:
                raise ModelError(f"{g.name}-int8 loses {100 * loss:.2f} accuracy points (> {100 * INT8_MAX_ACC_LOSS:.0f})")
            qextra = {**g.extra, "opset": OPSET, "quantization": "dynamic int8 (MatMul, Gemm weights)",
                      "source": g.name, "accuracy_f32": acc, "accuracy_int8": acc_q, "accuracy_loss": loss,
                      "max_accuracy_loss": INT8_MAX_ACC_LOSS}
            reports.append(ExportReport(f"{g.name}-int8", qpath, sha256_file(qpath), None, qextra))
            graphs_q = Graph(f"{g.name}-int8", g.module, g.inputs, g.outputs, g.dim, g.dtype, qextra)
            entries.append(_entry(graphs_q, qpath, root))
        entries.append(_entry(Graph(g.name, g.module, g.inputs, g.outputs, g.dim, g.dtype, extra), path, root))
    upsert_entries(entries, manifest_path)
    return reports


def _entry(g: Graph, path: Path, root: Path) -> ManifestEntry:
    rel = path.resolve().relative_to(root.resolve()) if path.resolve().is_relative_to(root.resolve()) else path
    shapes = {k: ["batch", *v.shape[1:]] for k, v in g.inputs.items()}
    return ManifestEntry(name=g.name, path=str(rel), sha256=sha256_file(path), dim=int(g.dim), dtype=g.dtype,
                         inputs=list(g.inputs), outputs=list(g.outputs), extra={**g.extra, "input_shapes": shapes})
