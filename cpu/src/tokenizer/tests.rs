//! Tokenizer unit tests on tiny hand-made vocabularies (no files needed); the real vocabularies
//! are checked against llama.cpp's vectors in `tests/llama_cpp_vocabs.rs`.
