/* sysinfo.h - machine facts for the DCUI (SMBIOS type 1, CPUID brand string). */
#ifndef SIM_ESXI_SYSINFO_H
#define SIM_ESXI_SYSINFO_H
#include "../lib/util.h"
void sysinfo_platform(CHAR16 *out, UINTN cap);   /* "<manufacturer> <product>" */
void sysinfo_cpu(CHAR16 *out, UINTN cap);        /* CPU brand string */
#endif
