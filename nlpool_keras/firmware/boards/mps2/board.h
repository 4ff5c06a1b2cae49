/* What the MPS2 start-up code offers the program: the stack's high-water mark and a tick count
 * of the core clock (SysTick), for firmware written in C or C++. */
#ifndef NLPOOL_BOARD_H
#define NLPOOL_BOARD_H

#include <stdint.h>

#define STACK_PAINT 0xA5A5A5A5u
#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)

#ifdef __cplusplus
extern "C" {
#endif

/* bytes of the stack written since reset (the painted words no longer intact) */
uint32_t stack_high_water_bytes(void);
/* starts the tick counter; ticks_now() counts core-clock ticks since then */
void ticks_start(void);
uint64_t ticks_now(void);

#ifdef __cplusplus
}
#endif

#endif /* NLPOOL_BOARD_H */
