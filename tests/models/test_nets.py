"""Shapes, masking and quantisation of the torch models."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pytest
import torch

from models import fusion
from node.protocol import codec
from models.nets import (AgentNetConfig, AgentNet, EdHead, EdHeadConfig, EdJoint, EdJointConfig, Stacker,
                         StackerConfig, UConfig, UNet, build, fake_quant, kind_of)

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
    AgentNet(AgentNetConfig(in_dim=10)), Stacker(StackerConfig(scores="decisions")), EdHead(EdHeadConfig(dtype="binary")),
    UNet(UConfig(in_dims=DIMS)), EdJoint(EdJointConfig([AgentNetConfig(in_dim=4)], EdHeadConfig(n_agents=1))),
])
def test_config_dict_rebuilds_the_same_architecture(model):
    rebuilt = build(kind_of(model), asdict(model.cfg))
    assert rebuilt.cfg == model.cfg
    assert [(k, v.shape) for k, v in rebuilt.state_dict().items()] == [(k, v.shape) for k, v in model.state_dict().items()]
