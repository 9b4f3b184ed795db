"""Shapes, masking and quantisation of the torch models."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pytest
import torch

from models import fusion
from node.protocol import codec
from models.nets import (AgentNetConfig, AgentNet, EdHead, EdHeadConfig, EdJoint, EdJointConfig, Stacker,
                         StackerConfig, UConfig, UNet, build, fake_quant, kind_of, slot_rows)

DIMS = (26, 384, 10)


def _inputs(b: int = 5, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, d, generator=g) for d in DIMS] + [torch.ones(b, 3)]


def test_agent_shapes_and_bounded_embedding():
    m = AgentNet(AgentNetConfig(in_dim=26, embed_dim=8)).eval()
    e, logits = m(torch.randn(4, 26) * 100)
    assert e.shape == (4, 8) and logits.shape == (4, 3)
    assert e.abs().max() <= 1.0  # tanh: what i8 and binary encodings assume


def test_u_shapes_and_absent_modalities_are_ignored():
    m = UNet(UConfig(in_dims=DIMS, d_model=32, n_heads=4)).eval()
    xs = _inputs()
    e, logits = m(*xs)
    assert e.shape == (5, 32) and logits.shape == (5, 3)
    mask = torch.tensor([[1.0, 0.0, 1.0]] * 5)
    other = [xs[0], torch.randn(5, 384) * 50, xs[2], mask]  # garbage where the modality is absent
    torch.testing.assert_close(m(*xs[:3], mask)[1], m(*other)[1])
    assert not torch.allclose(m(*xs)[1], m(*xs[:3], mask)[1])


SLOTS = (1, 3, 1)
SLOT_DIMS = (26, 3 * 384, 10)
"""U as trained on the synthetic market: the sentiment input is three headline slots of 384."""


def _slot_inputs(b: int = 6, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    xs = [torch.randn(b, d, generator=g) for d in SLOT_DIMS]
    xs[1][:, 2 * 384:] = 0.0  # slot 2 absent (a task of two headlines)
    return xs + [torch.ones(b, 3)]


@pytest.mark.parametrize("mixer", ["attention", "concat"])
def test_u_absent_headline_slot_has_no_influence(mixer):
    """A zero slot is an absent token: what only that token carries (its slot-position embedding)
    cannot move the output, while it does move it once the slot holds a headline. If the slot's
    token leaked into attention (or into the concat MLP) the first check would fail."""
    m = UNet(UConfig(in_dims=SLOT_DIMS, d_model=32, n_heads=4, token_slots=SLOTS, mixer=mixer)).eval()
    xs = _slot_inputs()
    filled = [x.clone() for x in xs]
    filled[1][:, 2 * 384:] = torch.randn(6, 384, generator=torch.Generator().manual_seed(5))
    # not a constant shift: LayerNorm would cancel it before attention reads the token
    nudge = torch.randn(32, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        before_absent, before_filled = m(*xs)[1], m(*filled)[1]
        m.slot[3] += nudge  # tokens: market, headline 0, 1, 2, risk -> index 3 is headline slot 2
        after_absent, after_filled = m(*xs)[1], m(*filled)[1]
    torch.testing.assert_close(before_absent, after_absent, rtol=0, atol=0)
    assert (before_filled - after_filled).abs().max() > 1e-3


def test_u_with_an_absent_slot_equals_u_that_has_two_slots():
    """Attention over 1 + 5 tokens with headline slot 2 absent is attention over 1 + 4 tokens: the same
    weights in a U whose sentiment input has only slots 0 and 1 give the same output."""
    three = UNet(UConfig(in_dims=SLOT_DIMS, d_model=32, n_heads=4, token_slots=SLOTS)).eval()
    two = UNet(UConfig(in_dims=(26, 2 * 384, 10), d_model=32, n_heads=4, token_slots=(1, 2, 1))).eval()
    state = three.state_dict()
    state["slot"] = state["slot"][[0, 1, 2, 4]]  # drop headline slot 2's position
    two.load_state_dict(state)
    xs = _slot_inputs()
    short = [xs[0], xs[1][:, :2 * 384], xs[2], xs[3]]
    with torch.no_grad():
        torch.testing.assert_close(three(*xs)[1], two(*short)[1], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(three(*xs)[0], two(*short)[0], rtol=1e-5, atol=1e-6)


def test_u_slot_presence_needs_the_modality_too():
    """A headline slot is present only when the modality is: a masked-out sentiment input is ignored
    whatever its slots hold."""
    m = UNet(UConfig(in_dims=SLOT_DIMS, d_model=32, n_heads=4, token_slots=SLOTS)).eval()
    xs = _slot_inputs()
    mask = torch.tensor([[1.0, 0.0, 1.0]] * 6)
    other = [xs[0], torch.randn(6, 3 * 384) * 50, xs[2], mask]
    with torch.no_grad():
        torch.testing.assert_close(m(*xs[:3], mask)[1], m(*other)[1])


def test_u_norms_are_fitted_per_slot_on_present_slots():
    m = UNet(UConfig(in_dims=SLOT_DIMS, d_model=16, n_heads=4, token_slots=SLOTS))
    g = torch.Generator().manual_seed(1)
    sent = torch.randn(50, 3 * 384, generator=g) + 2.0
    sent[:30, 384:] = 0.0  # 30 tasks of one headline, 20 of three: 90 present slots
    m.fit_norms([torch.randn(50, 26, generator=g), sent, torch.randn(50, 10, generator=g)])
    assert m.norms[1].mean.shape == (384,)
    present = torch.cat([sent[:, :384], sent[30:, 384:768], sent[30:, 768:]])
    torch.testing.assert_close(m.norms[1].mean, present.mean(0))
    assert slot_rows(sent, 3).shape == (90, 384)


def test_u_config_checks_token_slots():
    assert UConfig(in_dims=DIMS).token_slots == (1, 1, 1)
    with pytest.raises(ValueError, match="token_slots"):
        UConfig(in_dims=(26, 1000, 10), token_slots=(1, 3, 1))
    with pytest.raises(ValueError, match="token_slots"):
        UConfig(in_dims=DIMS, token_slots=(1, 3))
    assert not hasattr(UNet(UConfig(in_dims=DIMS)), "slot")  # one token per modality: no new weights


def _slot_agent(pool: str = "mean", m: int = 3) -> AgentNet:
    return AgentNet(AgentNetConfig(in_dim=m * 384, embed_dim=8, hidden=32, slots=m, pool=pool)).eval()


def _headlines(b: int = 6, seed: int = 0) -> torch.Tensor:
    x = torch.randn(b, 3 * 384, generator=torch.Generator().manual_seed(seed))
    x[:, 2 * 384:] = 0.0  # slot 2 absent (tasks of two headlines)
    x[:2, 384:] = 0.0  # slot 1 too on two rows
    return x


@pytest.mark.parametrize("pool", ["mean", "attention"])
def test_agent_absent_slot_has_no_influence(pool):
    """A zero slot is an absent headline: what only that slot carries (its slot-position embedding)
    cannot move the agent's outputs, while it does once the slot holds a headline. If the absent
    slot entered the pool (an unmasked mean or softmax) the first check would fail."""
    m = _slot_agent(pool)
    x = _headlines()
    filled = x.clone()
    filled[:, 2 * 384:] = torch.randn(6, 384, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        before = [t.clone() for t in m(x)], [t.clone() for t in m(filled)]
        m.slot[2] += torch.randn(32, generator=torch.Generator().manual_seed(6))
        after = m(x), m(filled)
    for b, a in zip(before[0], after[0]):
        torch.testing.assert_close(b, a, rtol=0, atol=0)
    assert (before[1][1] - after[1][1]).abs().max() > 1e-3


@pytest.mark.parametrize("pool", ["mean", "attention"])
def test_agent_with_an_absent_slot_equals_an_agent_that_has_two_slots(pool):
    three, two = _slot_agent(pool), _slot_agent(pool, m=2)
    state = three.state_dict()
    state["slot"] = state["slot"][:2]
    two.load_state_dict(state)
    x = _headlines()
    with torch.no_grad():
        for a, b in zip(three(x), two(x[:, :2 * 384])):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_agent_reads_slot_order():
    """Slot order matters (the generator's latent_dim > 1 reads slot j its own way): swapping two
    headlines changes the output, unlike the mean feature."""
    m = _slot_agent()
    x = _headlines()
    swapped = torch.cat([x[:, 384:768], x[:, :384], x[:, 768:]], dim=1)
    with torch.no_grad():
        assert (m(x)[1][2:] - m(swapped)[1][2:]).abs().max() > 1e-4


def test_agent_norm_is_fitted_per_slot_on_present_slots():
    m = _slot_agent()
    sent = torch.randn(50, 3 * 384, generator=torch.Generator().manual_seed(1)) + 2.0
    sent[:30, 384:] = 0.0
    m.fit_norm(sent)
    assert m.norm.mean.shape == (384,)
    torch.testing.assert_close(m.norm.mean, slot_rows(sent, 3).mean(0))
    flat = AgentNet(AgentNetConfig(in_dim=26))
    x = torch.randn(40, 26)
    flat.fit_norm(x)
    torch.testing.assert_close(flat.norm.mean, x.mean(0))


def test_agent_without_slots_rebuilds_as_before():
    """A config without slots (every checkpoint before them) has the pre-slot weights and forward."""
    old = dict(in_dim=26, embed_dim=8, hidden=64, depth=2, dropout=0.1, n_classes=3)  # a pre-slot checkpoint's config
    m = AgentNet(AgentNetConfig(**old)).eval()
    assert m.cfg.slots == 1 and not hasattr(m, "slot") and not hasattr(m, "query")
    assert [k for k in m.state_dict()] == ["norm.mean", "norm.scale", "body.0.weight", "body.0.bias", "body.3.weight",
                                           "body.3.bias", "to_embed.weight", "to_embed.bias", "head.weight", "head.bias"]
    x = torch.randn(5, 26)
    with torch.no_grad():
        e = torch.tanh(m.to_embed(torch.nn.functional.gelu(m.body(m.norm(x)))))
        torch.testing.assert_close(m(x)[0], e)
        torch.testing.assert_close(m(x)[1], m.head(e))


def test_agent_config_checks_slots():
    with pytest.raises(ValueError, match="slots"):
        AgentNetConfig(in_dim=1000, slots=3)
    with pytest.raises(ValueError, match="pool"):
        AgentNetConfig(in_dim=1152, slots=3, pool="max")


@pytest.mark.parametrize("pool", ["mean", "attention"])
def test_slot_agent_onnx_matches_torch_with_empty_slots(pool, tmp_path):
    """The exported slot agent takes the same (B, 1152) input and computes presence in the graph:
    rows with absent slots, and a row with none present, match torch."""
    ort = pytest.importorskip("onnxruntime")
    from models.export import Graph, _AgentGraph, export_graph

    m = _slot_agent(pool)
    m.fit_norm(_headlines(40, seed=3))
    x = _headlines(12)
    x[7] = 0.0  # no headline at all
    g = _AgentGraph(m).eval()
    path = tmp_path / "agent.onnx"
    export_graph(Graph("sentiment", g, {"features": x.numpy()}, ["embedding", "probs"], 8, "f32"), path)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for rows in (x, x[:3], x[8:]):
        with torch.no_grad():
            ref = g(rows)
        got = sess.run(["embedding", "probs"], {"features": rows.numpy()})
        for r, o in zip(ref, got):
            np.testing.assert_allclose(o, r.numpy(), atol=1e-5, rtol=0)


def test_heads_and_joint_shapes():
    s = Stacker(StackerConfig(hidden=0))
    assert s(torch.rand(4, 9), torch.ones(4, 3)).shape == (4, 3)
    h = EdHead(EdHeadConfig(embed_dim=8))
    assert h(torch.rand(4, 24), torch.ones(4, 3)).shape == (4, 3)
    j = EdJoint(EdJointConfig([AgentNetConfig(in_dim=d, embed_dim=8) for d in DIMS], EdHeadConfig(embed_dim=8, dtype="i8")))
    assert j(*_inputs(4)).shape == (4, 3)


@pytest.mark.parametrize("dtype", ["f32", "f16", "i8", "binary"])
def test_fake_quant_matches_the_published_encoding(dtype):
    e = torch.tanh(torch.randn(64, 16) * 2)
    ours = fake_quant(e, dtype).detach().numpy()
    wire = codec.dequantize(codec.quantize(e.numpy(), dtype), dtype)
    np.testing.assert_array_equal(ours, wire)
    for row in e.numpy()[:4]:  # and through the byte encoding that travels in calldata
        blob = codec.encode_vector(row, dtype)
        assert len(blob) == codec.vector_nbytes(16, dtype)
        np.testing.assert_array_equal(codec.decode_vector(blob, dtype, 16), codec.dequantize(codec.quantize(row, dtype), dtype))


def test_fake_quant_passes_gradients_straight_through():
    e = torch.tanh(torch.randn(3, 8)).requires_grad_()
    fake_quant(e, "binary").sum().backward()
    torch.testing.assert_close(e.grad, torch.ones_like(e))


@pytest.mark.parametrize("model", [
    AgentNet(AgentNetConfig(in_dim=10)), AgentNet(AgentNetConfig(in_dim=12, slots=3, pool="attention")), Stacker(StackerConfig(scores="decisions")), EdHead(EdHeadConfig(dtype="binary")),
    UNet(UConfig(in_dims=DIMS)), UNet(UConfig(in_dims=SLOT_DIMS, token_slots=SLOTS, mixer="concat")), EdJoint(EdJointConfig([AgentNetConfig(in_dim=4)], EdHeadConfig(n_agents=1))),
])
def test_config_dict_rebuilds_the_same_architecture(model):
    rebuilt = build(kind_of(model), asdict(model.cfg))
    assert rebuilt.cfg == model.cfg
    assert [(k, v.shape) for k, v in rebuilt.state_dict().items()] == [(k, v.shape) for k, v in model.state_dict().items()]


def test_agent_pool_matches_the_cache_keys():
    """The model-set cache keys name the agents' pooling; changing one without the other would reuse stale sets."""
    from models.train import AGENT_POOL
    from node.experiment.modelsets import AGENT_ENCODER

    assert AGENT_ENCODER == f"slots-{AGENT_POOL}"
