/* Runs TinyEngine's generated code (genModel.c of tinyengine_codegen.py) on the emulated board over
 * inputs handed over through semihosting, and reports in the lines the project's runner prints
 * (nlpool_keras/firmware/emulator.py reads them).
 *
 * Build with -DNLPOOL_INPUT_BYTES=..., -DNLPOOL_OUTPUT_BYTES=..., -DNLPOOL_ACTIVATION_BYTES=...
 * (TinyEngine's activation buffer, reported as the arena) and, for patch-based inference,
 * -DNLPOOL_PATCHES: the image then lives in a buffer of its own, which end2endinference reads
 * patch by patch into TinyEngine's buffer. */
#include <stdio.h>

#include "board.h"
#include "genNN.h"
#include "tinyengine_function.h"

#ifdef NLPOOL_PATCHES
static q7_t image[NLPOOL_INPUT_BYTES];
void end2endinference(q7_t* img);
#endif

static int fail(const char* what) {
  printf("nlpool: error %s\n", what);
  return 1;
}

int main(void) {
  printf("nlpool: arena_size %lu\n", (unsigned long)NLPOOL_ACTIVATION_BYTES);
  printf("nlpool: arena_used %lu\n", (unsigned long)NLPOOL_ACTIVATION_BYTES);
  printf("nlpool: io %lu %lu\n", (unsigned long)NLPOOL_INPUT_BYTES, (unsigned long)NLPOOL_OUTPUT_BYTES);
  FILE* inputs = fopen("nlpool_in.bin", "rb");
  FILE* outputs = fopen("nlpool_out.bin", "wb");
  if (inputs == NULL) return fail("input-file");
  if (outputs == NULL) return fail("output-file");
  ticks_start();
  unsigned long count = 0;
  for (;; ++count) {
#ifdef NLPOOL_PATCHES
    signed char* input = image;
#else
    signed char* input = getInput();
#endif
    if (fread(input, 1, NLPOOL_INPUT_BYTES, inputs) != NLPOOL_INPUT_BYTES) break;
    const uint64_t begin = ticks_now();
#ifdef NLPOOL_PATCHES
    end2endinference(image);
#else
    invoke(NULL);
#endif
    const uint64_t ticks = ticks_now() - begin;
    printf("nlpool: input %lu ticks %llu\n", count, (unsigned long long)ticks);
    if (fwrite(getOutput(), 1, NLPOOL_OUTPUT_BYTES, outputs) != NLPOOL_OUTPUT_BYTES) return fail("write");
  }
  fclose(outputs);
  printf("nlpool: stack_high_water %lu\n", (unsigned long)stack_high_water_bytes());
  printf("nlpool: done %lu\n", count);
  return 0;
}
