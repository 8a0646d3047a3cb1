"""The ONNX graph of the e5-small (BERT / XLM-RoBERTa) encoder, built from :class:`E5Weights`.

Inputs: ``embeds`` (batch, tokens, hidden) float32 — word + position + token-type embeddings,
added on the host so the 250k-row vocabulary stays 4-bit in a memory map — and ``mask``
(batch, tokens) float32, 1 for real tokens and 0 for padding. Output: ``mean`` (batch,
hidden), the masked mean of the last layer (not normalised: long texts combine windows first).

Standard opset-17 operators only (LayerNormalization, Softmax, Erf-GELU); ONNX Runtime fuses
them (attention, skip-layer-norm, bias-GELU) at load time.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .e5_weights import E5Weights


class _Builder:
    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self._n = 0

    def const(self, name: str, value: np.ndarray | float | list[int]) -> str:
        from onnx import numpy_helper

        arr = np.asarray(value, dtype=np.int64 if isinstance(value, list) else np.float32)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def op(self, op_type: str, inputs: list[str], **attrs: Any) -> str:
        from onnx import helper

        self._n += 1
        out = f"{op_type.lower()}_{self._n}"
        self.nodes.append(helper.make_node(op_type, inputs, [out], **attrs))
        return out


def build_encoder(w: E5Weights) -> Any:
    """An ``onnx.ModelProto`` of the encoder with mean pooling (see module docs)."""
    from onnx import TensorProto, checker, helper

    b = _Builder()
    h, heads = w.hidden, w.heads
    head_dim = h // heads
    ln = {"axis": -1, "epsilon": float(w.eps)}

    x = b.op("LayerNormalization", ["embeds", b.const("emb.ln.w", w.embed_ln[0]), b.const("emb.ln.b", w.embed_ln[1])],
             **ln)
    # additive attention bias (batch, 1, 1, tokens): 0 for tokens, -10000 for padding
    bias = b.op("Mul", [b.op("Sub", [b.const("one", 1.0), "mask"]), b.const("neg", -1e4)])
    bias = b.op("Unsqueeze", [bias, b.const("axes12", [1, 2])])
    split_heads = b.const("split_heads", [0, 0, heads, head_dim])
    merge_heads = b.const("merge_heads", [0, 0, h])
    scale = b.const("scale", float(np.sqrt(head_dim)))
    half, sqrt2 = b.const("half", 0.5), b.const("sqrt2", float(np.sqrt(2.0)))

    for i in range(w.layers):
        p = w.layer(i)

        def linear(inp: str, name: str, p: dict[str, np.ndarray] = p, i: int = i) -> str:
            mm = b.op("MatMul", [inp, b.const(f"l{i}.{name}.wT", p[f"{name}.w"].T)])
            return b.op("Add", [mm, b.const(f"l{i}.{name}.b", p[f"{name}.b"])])

        def heads_of(t: str, perm: list[int]) -> str:
            return b.op("Transpose", [b.op("Reshape", [t, split_heads])], perm=perm)

        q = heads_of(linear(x, "q"), [0, 2, 1, 3])
        k = heads_of(linear(x, "k"), [0, 2, 3, 1])
        v = heads_of(linear(x, "v"), [0, 2, 1, 3])
        scores = b.op("Add", [b.op("Div", [b.op("MatMul", [q, k]), scale]), bias])
        ctx = b.op("MatMul", [b.op("Softmax", [scores], axis=-1), v])
        ctx = b.op("Reshape", [b.op("Transpose", [ctx], perm=[0, 2, 1, 3]), merge_heads])
        x = b.op("LayerNormalization", [b.op("Add", [x, linear(ctx, "ao")]),
                                        b.const(f"l{i}.aln.w", p["aln.w"]), b.const(f"l{i}.aln.b", p["aln.b"])], **ln)
        f = linear(x, "fi")
        gelu = b.op("Mul", [b.op("Mul", [f, half]), b.op("Add", [b.op("Erf", [b.op("Div", [f, sqrt2])]), "one"])])
        x = b.op("LayerNormalization", [b.op("Add", [x, linear(gelu, "fo")]),
                                        b.const(f"l{i}.oln.w", p["oln.w"]), b.const(f"l{i}.oln.b", p["oln.b"])], **ln)

    mask3 = b.op("Unsqueeze", ["mask", b.const("axis2", [2])])
    axis1 = b.const("axis1", [1])
    total = b.op("ReduceSum", [b.op("Mul", [x, mask3]), axis1], keepdims=0)
    count = b.op("ReduceSum", ["mask", axis1], keepdims=1)
    b.nodes.append(helper.make_node("Div", [total, count], ["mean"]))

    graph = helper.make_graph(
        b.nodes, "e5_small_encoder",
        [helper.make_tensor_value_info("embeds", TensorProto.FLOAT, ["batch", "tokens", h]),
         helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["batch", "tokens"])],
        [helper.make_tensor_value_info("mean", TensorProto.FLOAT, ["batch", h])],
        b.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="jisik")
    model.ir_version = 8
    checker.check_model(model)
    return model
