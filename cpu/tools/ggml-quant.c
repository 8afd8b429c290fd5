// ggml's own reference quantizers as a command, so `quantize_matches_ggml_byte_for_byte` (in
// cpu/src/quant/tests.rs) can compare Orrery's port with them:
//   ggml-quant TYPE INPUT.f32 OUTPUT   (TYPE: Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q4_K Q5_K Q6_K F16 BF16)
// Build against llama.cpp's source (never committed here) the way it builds ggml-base: default
// target, no -march, so the compiler cannot fuse multiplies and adds:
//   L=~/.cache/orrery-bench/llama.cpp-*/ggml
//   gcc -O3 -std=gnu11 -I$L/include -I$L/src $L/src/ggml-quants.c cpu/tools/ggml-quant.c -lm \
//       -o /tmp/ggml-quant
//   ORRERY_GGML_QUANT=/tmp/ggml-quant cargo test -p orrery-cpu quantize_matches_ggml
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdarg.h>
#include "ggml.h"
#include "ggml-impl.h"
#include "ggml-quants.h"
// What ggml-quants.c links against in ggml.c; the reference quantizers never call them.
void ggml_abort(const char * file, int line, const char * fmt, ...) { fprintf(stderr, "abort %s:%d\n", file, line); abort(); }
size_t ggml_row_size(enum ggml_type t, int64_t n) { abort(); }
const char * ggml_type_name(enum ggml_type t) { return "?"; }
size_t ggml_type_size(enum ggml_type t) { abort(); }
int main(int argc, char ** argv) {
    FILE * f = fopen(argv[2], "rb"); fseek(f, 0, SEEK_END); long n = ftell(f) / 4; fseek(f, 0, SEEK_SET);
    float * x = malloc(n * 4); fread(x, 4, n, f); fclose(f);
    unsigned char * y = calloc(n * 4 + 1024, 1); size_t bytes = 0;
    const char * t = argv[1];
    if (!strcmp(t, "Q4_0")) { quantize_row_q4_0_ref(x, (void*)y, n); bytes = n / 32 * 18; }
    else if (!strcmp(t, "Q4_1")) { quantize_row_q4_1_ref(x, (void*)y, n); bytes = n / 32 * 20; }
    else if (!strcmp(t, "Q5_0")) { quantize_row_q5_0_ref(x, (void*)y, n); bytes = n / 32 * 22; }
    else if (!strcmp(t, "Q5_1")) { quantize_row_q5_1_ref(x, (void*)y, n); bytes = n / 32 * 24; }
    else if (!strcmp(t, "Q8_0")) { quantize_row_q8_0_ref(x, (void*)y, n); bytes = n / 32 * 34; }
    else if (!strcmp(t, "Q4_K")) { quantize_row_q4_K_ref(x, (void*)y, n); bytes = n / 256 * 144; }
    else if (!strcmp(t, "Q5_K")) { quantize_row_q5_K_ref(x, (void*)y, n); bytes = n / 256 * 176; }
    else if (!strcmp(t, "Q6_K")) { quantize_row_q6_K_ref(x, (void*)y, n); bytes = n / 256 * 210; }
    else if (!strcmp(t, "F16")) { for (long i = 0; i < n; i++) ((ggml_fp16_t*)y)[i] = GGML_FP32_TO_FP16(x[i]); bytes = n * 2; }
    else if (!strcmp(t, "BF16")) { for (long i = 0; i < n; i++) ((ggml_bf16_t*)y)[i] = GGML_FP32_TO_BF16(x[i]); bytes = n * 2; }
    else return 2;
    f = fopen(argv[3], "wb"); fwrite(y, 1, bytes, f); fclose(f);
    return 0;
}
