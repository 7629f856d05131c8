#!/usr/bin/env python3
"""Seed corpus for the GGUF fuzz target (tests/gguf/fuzz_gguf.cpp).

    python3 tests/gguf/make_corpus.py OUT_DIR [MODEL.gguf]

Writes small seed files into OUT_DIR: a valid file with every metadata type and
one tensor of each supported type; truncations of it; mutated counts and lengths
(huge, off by one, past the end); bad alignments; unknown value and tensor types;
overflowing dims; overlapping tensors; NaN and infinite block scales, minimums
and values (and the largest finite half, which is valid). With MODEL, also the real file's header
cut at a few sizes. Python 3 standard library only; run by tools/fuzz_gguf.sh.
"""
import pathlib
import struct
import sys


def gguf_string(s: bytes) -> bytes:
    return struct.pack("<Q", len(s)) + s


class Sample:
    """A small GGUF v3 file, with the offsets of the fields that seeds mutate."""

    def __init__(self, alignment=32):
        self.alignment = alignment
        self.at = {}
        kvs = [
            (b"general.architecture", 8, gguf_string(b"llama")),
            (b"general.alignment", 4, struct.pack("<I", alignment)),
            (b"t.u8", 0, struct.pack("<B", 200)), (b"t.i8", 1, struct.pack("<b", -5)),
            (b"t.u16", 2, struct.pack("<H", 65000)), (b"t.i16", 3, struct.pack("<h", -300)),
            (b"t.u32", 4, struct.pack("<I", 7)), (b"t.i32", 5, struct.pack("<i", -7)),
            (b"t.f32", 6, struct.pack("<f", 0.5)), (b"t.bool", 7, struct.pack("<B", 1)),
            (b"t.u64", 10, struct.pack("<Q", 1 << 40)), (b"t.i64", 11, struct.pack("<q", -1)),
            (b"t.f64", 12, struct.pack("<d", 0.1)),
            (b"tokenizer.ggml.tokens", 9, struct.pack("<IQ", 8, 3) + b"".join(gguf_string(s) for s in (b"a", b"bc", b""))),
            (b"t.i32s", 9, struct.pack("<IQ", 5, 3) + struct.pack("<3i", 1, -2, 3)),
            (b"t.bools", 9, struct.pack("<IQ", 7, 2) + bytes([0, 1])),
        ]
        tensors = [  # name, dims, type, data bytes
            (b"norm", [4], 0, struct.pack("<4f", 1, 2, 3, 4)),
            (b"w", [32, 2], 3, bytes((k * 37) % 256 for k in range(40))),
            (b"emb", [32], 8, bytes((k * 11) % 256 for k in range(34))),
            (b"h", [2, 2], 1, bytes(range(8))),
            (b"q", [32], 2, bytes(range(18))),
        ]
        out = bytearray(b"GGUF" + struct.pack("<I", 3))
        self.at["tensor_count"] = len(out)
        out += struct.pack("<Q", len(tensors))
        self.at["kv_count"] = len(out)
        out += struct.pack("<Q", len(kvs))
        for key, vtype, payload in kvs:
            self.at["key:" + key.decode()] = len(out)
            out += gguf_string(key) + struct.pack("<I", vtype)
            self.at["value:" + key.decode()] = len(out)
            out += payload
        offset, offsets = 0, []
        for name, dims, ttype, data in tensors:
            offset = -(-offset // alignment) * alignment
            offsets.append(offset)
            self.at["tensor:" + name.decode()] = len(out)
            out += gguf_string(name) + struct.pack("<I", len(dims))
            self.at["dims:" + name.decode()] = len(out)
            out += struct.pack(f"<{len(dims)}Q", *dims)
            self.at["type:" + name.decode()] = len(out)
            out += struct.pack("<I", ttype)
            self.at["offset:" + name.decode()] = len(out)
            out += struct.pack("<Q", offset)
            offset += len(data)
        out += bytes(-len(out) % alignment)
        self.at["data"] = len(out)
        for (name, dims, ttype, data), off in zip(tensors, offsets):
            out += bytes(self.at["data"] + off - len(out))
            self.at["data:" + name.decode()] = len(out)
            out += data
        self.bytes = bytes(out)

    def poke(self, field: str, fmt: str, value, delta: int = 0) -> bytes:
        """The file with `value` packed by `fmt` at the field's offset + delta."""
        b = bytearray(self.bytes)
        struct.pack_into(fmt, b, self.at[field] + delta, value)
        return bytes(b)


def seeds(model):
    s = Sample()
    yield "valid", s.bytes
    yield "valid_align64", Sample(64).bytes
    yield "empty_header", b"GGUF" + struct.pack("<IQQ", 3, 0, 0)
    for n in (0, 3, 7, 15, 23, 40, s.at["value:tokenizer.ggml.tokens"] + 6, s.at["tensor:w"] + 3,
              s.at["data"] - 1, s.at["data"] + 50, len(s.bytes) - 1):
        yield f"truncated_{n}", s.bytes[:n]
    yield "bad_magic", b"GGUG" + s.bytes[4:]
    yield "version_2", s.poke("tensor_count", "<I", 2, delta=-4)
    yield "big_endian", s.bytes[:4] + struct.pack(">I", 3) + s.bytes[8:]
    for name, value in (("huge", 1 << 62), ("max", (1 << 64) - 1), ("one_more", 17)):
        yield f"kv_count_{name}", s.poke("kv_count", "<Q", value)
        yield f"tensor_count_{name}", s.poke("tensor_count", "<Q", value)
    yield "key_len_huge", s.poke("key:t.u8", "<Q", 1 << 40)
    yield "key_len_past_end", s.poke("key:t.u8", "<Q", len(s.bytes))
    yield "string_len_huge", s.poke("value:general.architecture", "<Q", (1 << 64) - 1)
    yield "array_count_huge", s.poke("value:tokenizer.ggml.tokens", "<Q", 1 << 60, delta=4)
    yield "array_count_past_end", s.poke("value:tokenizer.ggml.tokens", "<Q", 100, delta=4)
    yield "array_nested", s.poke("value:tokenizer.ggml.tokens", "<I", 9)
    yield "array_type_unknown", s.poke("value:tokenizer.ggml.tokens", "<I", 13)
    yield "value_type_unknown", s.poke("value:t.u8", "<I", 99, delta=-4)
    yield "bool_2", s.poke("value:t.bool", "<B", 2)
    for a in (0, 3, 48, 1 << 31):
        yield f"alignment_{a}", s.poke("value:general.alignment", "<I", a)
    yield "offset_misaligned", s.poke("offset:w", "<Q", 36)
    yield "offset_past_end", s.poke("offset:w", "<Q", (1 << 64) - 32)
    yield "offset_overlap", s.poke("offset:emb", "<Q", 32)
    yield "n_dims_5", s.poke("dims:norm", "<I", 5, delta=-4)
    yield "dim_zero", s.poke("dims:w", "<Q", 0)
    b = bytearray(s.bytes)
    struct.pack_into("<QQ", b, s.at["dims:w"], 1 << 32, 1 << 32)
    yield "dims_overflow", bytes(b)
    yield "dims_large", s.poke("dims:w", "<Q", 1 << 40)
    yield "row_not_blocks", s.poke("dims:emb", "<Q", 16)
    for t in (4, 12, 30, 0xFFFFFFFF):
        yield f"tensor_type_{t}", s.poke("type:w", "<I", t)
    # Numbers that are not finite: the float16 scale d of Q4_0, Q4_1 and Q8_0 blocks, the
    # minimum m of Q4_1 (in its second block), F16 and F32 values; then a valid extreme.
    yield "q4_0_scale_nan", s.poke("data:q", "<H", 0x7E00)
    yield "q4_1_scale_inf", s.poke("data:w", "<H", 0x7C00)
    yield "q4_1_min_nan_block_1", s.poke("data:w", "<H", 0xFE01, delta=22)
    yield "q8_0_scale_minus_inf", s.poke("data:emb", "<H", 0xFC00)
    yield "f16_inf", s.poke("data:h", "<H", 0x7C00, delta=6)
    yield "f32_nan", s.poke("data:norm", "<I", 0x7FC00000, delta=8)
    yield "f32_inf", s.poke("data:norm", "<f", float("inf"))
    yield "q4_1_scale_max_finite", s.poke("data:w", "<H", 0x7BFF)
    if model is not None:
        with open(model, "rb") as f:
            head = f.read(16384)
        for n in (64, 1024, 4096, 16384):
            yield f"model_head_{n}", head[:n]


def main() -> int:
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    out = pathlib.Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    model = sys.argv[2] if len(sys.argv) == 3 else None
    count = 0
    for name, data in seeds(model):
        (out / f"{name}.gguf").write_bytes(bytes(data))
        count += 1
    print(f"make_corpus: {count} seeds in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
