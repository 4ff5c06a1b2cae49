/* Device header for a bare Arm Cortex-M7 (as TFLM's cortex_m_generic target includes it):
 * the core's configuration, then CMSIS' core header. */
#ifndef NLPOOL_ARMCM7_H
#define NLPOOL_ARMCM7_H

#include "cortex_m_exceptions.h"

#define __CM7_REV 0x0001U
#define __MPU_PRESENT 1U
#define __VTOR_PRESENT 1U
#define __NVIC_PRIO_BITS 3U
#define __Vendor_SysTickConfig 0U
#define __FPU_PRESENT 0U
#define __ICACHE_PRESENT 0U
#define __DCACHE_PRESENT 0U
#define __DTCM_PRESENT 0U
#include "core_cm7.h"

#endif /* NLPOOL_ARMCM7_H */
