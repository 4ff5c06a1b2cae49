/* Counts SysTick ticks over a loop of a known number of instructions (2 per iteration), for
 * tests/test_firmware.py; with FAULT or HANG defined it faults or never ends instead. */
#include <stdint.h>
#include <stdio.h>

#include "board.h"

#define STR2(x) #x
#define STR(x) STR2(x)

int main(void) {
#ifdef FAULT
  *(volatile uint32_t *)0xF0000000u = 1; /* no memory there: a bus fault, escalated to HardFault */
#endif
#ifdef HANG
  for (;;) {
  }
#endif
  ticks_start();
  uint64_t begin = ticks_now();
  __asm__ volatile(
      "ldr r0, =" STR(LOOPS) "\n"
      "1: subs r0, r0, #1\n"
      "bne 1b\n" ::: "r0", "cc");
  uint64_t ticks = ticks_now() - begin;
  printf("nlpool: input 0 ticks %llu\n", (unsigned long long)ticks);
  printf("nlpool: arena_used 0\n");
  printf("nlpool: stack_high_water %lu\n", (unsigned long)stack_high_water_bytes());
  printf("nlpool: done 1\n");
  FILE *out = fopen("nlpool_out.bin", "wb");
  fclose(out);
  return 0;
}
