// The type table: block size and bytes per block for every ggml type id a GGUF file may
// name. Sizes of types we don't compute with are still known, so any file can be
// bounds-checked and its tokenizer used.
#include "ckernels.h"

typedef struct {
  const char *name;
  int64_t block_size;
  int64_t type_size;
  bool supported;
} type_row;

// Indexed by ggml type id; a NULL name marks an id that ggml retired or never used.
static const type_row type_table[] = {
    [0] = {"F32", 1, 4, true},        [1] = {"F16", 1, 2, true},
    [2] = {"Q4_0", 32, 18, true},     [3] = {"Q4_1", 32, 20, true},
    [6] = {"Q5_0", 32, 22, true},     [7] = {"Q5_1", 32, 24, true},
    [8] = {"Q8_0", 32, 34, true},     [9] = {"Q8_1", 32, 36, false},
    [10] = {"Q2_K", 256, 84, false},  [11] = {"Q3_K", 256, 110, false},
    [12] = {"Q4_K", 256, 144, true},  [13] = {"Q5_K", 256, 176, true},
    [14] = {"Q6_K", 256, 210, true},  [15] = {"Q8_K", 256, 292, false},
    [16] = {"IQ2_XXS", 256, 66, false}, [17] = {"IQ2_XS", 256, 74, false},
    [18] = {"IQ3_XXS", 256, 98, false}, [19] = {"IQ1_S", 256, 50, false},
    [20] = {"IQ4_NL", 32, 18, false},  [21] = {"IQ3_S", 256, 110, false},
    [22] = {"IQ2_S", 256, 82, false},  [23] = {"IQ4_XS", 256, 136, false},
    [24] = {"I8", 1, 1, false},        [25] = {"I16", 1, 2, false},
    [26] = {"I32", 1, 4, false},       [27] = {"I64", 1, 8, false},
    [28] = {"F64", 1, 8, false},       [29] = {"IQ1_M", 256, 56, false},
    [30] = {"BF16", 1, 2, true},       [34] = {"TQ1_0", 256, 54, false},
    [35] = {"TQ2_0", 256, 66, false},  [39] = {"MXFP4", 32, 17, false},
};

static const type_row *row_for(uint32_t type) {
  if (type >= sizeof(type_table) / sizeof(type_table[0])) return NULL;
  const type_row *row = &type_table[type];
  return row->name ? row : NULL;
}

bool dq_type_info(uint32_t type, int64_t *block_size, int64_t *type_size) {
  const type_row *row = row_for(type);
  if (!row) return false;
  *block_size = row->block_size;
  *type_size = row->type_size;
  return true;
}

const char *dq_type_name(uint32_t type) {
  const type_row *row = row_for(type);
  return row ? row->name : NULL;
}

bool dq_type_is_supported(uint32_t type) {
  const type_row *row = row_for(type);
  return row && row->supported;
}

int64_t dq_row_size(uint32_t type, int64_t n) {
  const type_row *row = row_for(type);
  if (!row || n < 0 || n % row->block_size != 0) return -1;
  return n / row->block_size * row->type_size;
}
