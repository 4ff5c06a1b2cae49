/* The exception numbers of an Arm Cortex-M core without vendor interrupts, as CMSIS' core
 * headers expect a device header to declare them (IRQn_Type). */
#ifndef NLPOOL_CORTEX_M_EXCEPTIONS_H
#define NLPOOL_CORTEX_M_EXCEPTIONS_H

typedef enum IRQn {
  NonMaskableInt_IRQn = -14,
  HardFault_IRQn = -13,
  MemoryManagement_IRQn = -12,
  BusFault_IRQn = -11,
  UsageFault_IRQn = -10,
  SVCall_IRQn = -5,
  DebugMonitor_IRQn = -4,
  PendSV_IRQn = -2,
  SysTick_IRQn = -1
} IRQn_Type;

#endif /* NLPOOL_CORTEX_M_EXCEPTIONS_H */
