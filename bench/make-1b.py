#!/usr/bin/env python3
"""Writes an F16 GGUF with random weights and the shape of Llama 3.2 1B (2048 wide, 16 layers,
32 query and 8 key/value heads of 64, feed-forward 8192, Llama 3's 128 256-token vocabulary and
rope scaling, output head tied to the embeddings), for the engine benchmark's "model of a real
shape". `bench/make-1b` quantizes it to Q4_K_M with llama.cpp's `llama-quantize`.

The vocabulary (tokens, merges, types) is copied from llama.cpp's `ggml-vocab-llama-bpe.gguf`, and
the chat template is Llama 3.2's from llama.cpp's template corpus, so both engines tokenize and
template exactly as they would the real model. Random weights make the text meaningless, not the
speed: every matrix has the real model's dimensions.

usage: make-1b.py LLAMA_CPP_SOURCE OUT.gguf   (needs numpy, and the source's gguf-py on PYTHONPATH)
"""

import sys
from pathlib import Path

import numpy as np
import gguf

EMBD = 2048
LAYERS = 16
HEADS = 32
KV_HEADS = 8
HEAD_DIM = 64
FF = 8192
CONTEXT = 131072


def llama3_rope_factors() -> np.ndarray:
    """Llama 3.1+'s per-frequency rope divisors (factor 32, low 1, high 4, original 8192), as
    llama.cpp's converter computes them."""
    base, factor, low, high, original = 500000.0, 32.0, 1.0, 4.0, 8192
    freqs = 1.0 / (base ** (np.arange(0, HEAD_DIM, 2, dtype=np.float64) / HEAD_DIM))
    low_wavelen, high_wavelen = original / low, original / high
    out = []
    for f in freqs:
        wavelen = 2 * np.pi / f
        if wavelen < high_wavelen:
            out.append(1.0)
        elif wavelen > low_wavelen:
            out.append(factor)
        else:
            smooth = (original / wavelen - low) / (high - low)
            out.append(1.0 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


def string_array(field) -> list:
    return [bytes(field.parts[i]).decode("utf-8") for i in field.data]


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    src, out = Path(sys.argv[1]), Path(sys.argv[2])
    vocab = gguf.GGUFReader(str(src / "models" / "ggml-vocab-llama-bpe.gguf"))
    fields = vocab.fields
    tokens = string_array(fields["tokenizer.ggml.tokens"])
    merges = string_array(fields["tokenizer.ggml.merges"])
    types = [int(fields["tokenizer.ggml.token_type"].parts[i][0]) for i in fields["tokenizer.ggml.token_type"].data]
    template = (src / "models" / "templates" / "meta-llama-Llama-3.2-3B-Instruct.jinja").read_text()

    w = gguf.GGUFWriter(str(out), "llama")
    w.add_name("random-weights Llama-3.2-1B shape")
    w.add_context_length(CONTEXT)
    w.add_embedding_length(EMBD)
    w.add_block_count(LAYERS)
    w.add_feed_forward_length(FF)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV_HEADS)
    w.add_rope_dimension_count(HEAD_DIM)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(500000.0)
    w.add_vocab_size(len(tokens))
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("llama-bpe")
    w.add_token_list(tokens)
    w.add_token_merges(merges)
    w.add_token_types(types)
    w.add_bos_token_id(128000)
    w.add_eos_token_id(128009)
    w.add_add_bos_token(True)
    w.add_chat_template(template)

    rng = np.random.default_rng(1)

    def matrix(rows: int, cols: int) -> np.ndarray:
        m = rng.standard_normal((rows, cols), dtype=np.float32)
        m *= 1.0 / np.sqrt(cols)
        return m.astype(np.float16)

    def norm(n: int) -> np.ndarray:
        return (1.0 + 0.1 * rng.standard_normal(n, dtype=np.float32)).astype(np.float32)

    qd, kvd = HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM
    w.add_tensor("token_embd.weight", matrix(len(tokens), EMBD))
    w.add_tensor("rope_freqs.weight", llama3_rope_factors())
    for i in range(LAYERS):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", norm(EMBD))
        w.add_tensor(p + "attn_q.weight", matrix(qd, EMBD))
        w.add_tensor(p + "attn_k.weight", matrix(kvd, EMBD))
        w.add_tensor(p + "attn_v.weight", matrix(kvd, EMBD))
        w.add_tensor(p + "attn_output.weight", matrix(EMBD, qd))
        w.add_tensor(p + "ffn_norm.weight", norm(EMBD))
        w.add_tensor(p + "ffn_gate.weight", matrix(FF, EMBD))
        w.add_tensor(p + "ffn_up.weight", matrix(FF, EMBD))
        w.add_tensor(p + "ffn_down.weight", matrix(EMBD, FF))
    w.add_tensor("output_norm.weight", norm(EMBD))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main()
