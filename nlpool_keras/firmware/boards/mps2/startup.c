/* Start-up of an Arm MPS2 board as QEMU emulates it (mps2-an386: Cortex-M4, mps2-an500:
 * Cortex-M7): the vector table at address 0, a reset handler that lays out RAM and calls main,
 * and fault handlers that report through semihosting and stop the emulator.
 *
 * The reset handler copies .data from flash, clears .bss, paints the stack below its own frame
 * with STACK_PAINT (so that the program can find the stack's high-water mark), starts newlib's
 * semihosting (stdio and files on the host) and C++ constructors, and ends the run through exit().
 */
#include <stdint.h>
#include <stdlib.h>

#include "board.h"

extern uint32_t __data_load__, __data_start__, __data_end__, __bss_start__, __bss_end__;
extern uint32_t __StackLimit, __StackTop;
extern int main(void);
extern void initialise_monitor_handles(void);
extern void __libc_init_array(void);

void Reset_Handler(void);
void Fault_Handler(void);
void SysTick_Handler(void);

__attribute__((section(".vectors"), used)) void (*const vector_table[16])(void) = {
    (void (*)(void))(&__StackTop),
    Reset_Handler,
    Fault_Handler, /* NMI */
    Fault_Handler, /* HardFault */
    Fault_Handler, /* MemManage */
    Fault_Handler, /* BusFault */
    Fault_Handler, /* UsageFault */
    0, 0, 0, 0,
    Fault_Handler, /* SVCall */
    Fault_Handler, /* DebugMonitor */
    0,
    Fault_Handler, /* PendSV */
    SysTick_Handler,
};

__attribute__((noreturn)) void Reset_Handler(void) {
  uint32_t *src = &__data_load__, *dst = &__data_start__;
  while (dst < &__data_end__) *dst++ = *src++;
  for (dst = &__bss_start__; dst < &__bss_end__;) *dst++ = 0;
  /* paint the stack up to 256 bytes below this frame */
  uint32_t *frame = (uint32_t *)__builtin_frame_address(0) - 64;
  for (dst = &__StackLimit; dst < frame;) *dst++ = STACK_PAINT;
  initialise_monitor_handles();
  __libc_init_array();
  exit(main());
}

uint32_t stack_high_water_bytes(void) {
  const uint32_t *word = &__StackLimit;
  while (word < &__StackTop && *word == STACK_PAINT) ++word;
  return (uint32_t)((uintptr_t)&__StackTop - (uintptr_t)word);
}

/* semihosting SYS_WRITE0 then SYS_EXIT with a run-time error: QEMU exits with a non-zero status */
static void semihost(uint32_t op, const void *arg) {
  register uint32_t r0 __asm__("r0") = op;
  register const void *r1 __asm__("r1") = arg;
  __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
}

__attribute__((noreturn)) void Fault_Handler(void) {
  static const char message[] = "\nnlpool: fault: the firmware took a processor exception\n";
  semihost(0x04, message);        /* SYS_WRITE0 */
  semihost(0x18, (void *)0x20023); /* SYS_EXIT, ADP_Stopped_RunTimeErrorUnknown */
  for (;;) {
  }
}

/* SysTick counts the core clock down from 2^24 - 1; each wrap adds 2^24 ticks */
static volatile uint32_t systick_wraps;

void SysTick_Handler(void) { ++systick_wraps; }

void ticks_start(void) {
  SYST_RVR = 0x00FFFFFFu;
  SYST_CVR = 0;
  SYST_CSR = 0x7u; /* core clock, interrupt on wrap, enabled */
  while (SYST_CVR == 0) {
  } /* the first reload: from here on the count is ticks since the start */
  systick_wraps = 0;
}

uint64_t ticks_now(void) {
  uint32_t wraps, value;
  do {
    wraps = systick_wraps;
    value = SYST_CVR;
  } while (wraps != systick_wraps);
  return ((uint64_t)wraps << 24) + (0x00FFFFFFu - value);
}

/* -nostartfiles leaves out crti/crtn, whose _init/_fini newlib's __libc_init_array calls */
void _init(void) {}
void _fini(void) {}
/* crtbegin's handle for destructors of static C++ objects (registered with __cxa_atexit) */
void *__dso_handle = 0;
