/* bootcfg.h - esx-boot's boot.cfg: "key=value" lines (title, timeout, kernelopt, ...). The installer reads
 * the CD's EFI/BOOT/BOOT.CFG (ISO9660, iso9660.c) as esx-boot does on the real ISO; the installed
 * system reads boot.cfg from its bootbank. */
#ifndef SIM_BOOTCFG_H
#define SIM_BOOTCFG_H

#include "disks.h"

typedef struct {
    CHAR16 title[80];
    CHAR16 kernelopt[512];
    UINTN timeout;              /* seconds of the countdown */
    BOOLEAN found;              /* a boot.cfg was read */
} bootcfg_t;

/* Value of the "key=" line of a boot.cfg text, trimmed (installer placeholders @@...@@ read as empty).
 * FALSE when there is no such line. */
BOOLEAN bootcfg_value(const CHAR8 *text, UINTN len, const CHAR8 *key, CHAR16 *out, UINTN cap);
/* title, kernelopt and timeout of a boot.cfg text; missing keys keep what *cfg held. */
void bootcfg_parse(const CHAR8 *text, UINTN len, bootcfg_t *cfg);
/* The boot CD's EFI/BOOT/BOOT.CFG (the UEFI entry of the real ISO), else /BOOT.CFG. */
BOOLEAN bootcfg_read_cd(const disk_t *cd, bootcfg_t *cfg);

#endif
