/* Device header for a bare Arm Cortex-M4 (as TFLM's cortex_m_generic target includes it):
 * the core's configuration, then CMSIS' core header. */
#ifndef NLPOOL_ARMCM4_H
#define NLPOOL_ARMCM4_H

#include "cortex_m_exceptions.h"

#define __CM4_REV 0x0001U
#define __MPU_PRESENT 1U
#define __VTOR_PRESENT 1U
#define __NVIC_PRIO_BITS 3U
#define __Vendor_SysTickConfig 0U
#define __FPU_PRESENT 0U
#include "core_cm4.h"

#endif /* NLPOOL_ARMCM4_H */
