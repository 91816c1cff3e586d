/* iso9660.h - find a file in the ISO9660 tree of the boot CD (plain ISO9660 names, case-insensitive,
 * ";1" version and a trailing "." ignored). Paths like "/KS.CFG" or "PAYLOAD/P5.IMG". */
#ifndef SIM_ISO9660_H
#define SIM_ISO9660_H

#include "disks.h"

typedef struct {
    UINT32 lba;    /* first 2048-byte block */
    UINT32 size;   /* bytes */
} iso_file;

BOOLEAN iso_find(const disk_t *cd, const CHAR16 *path, iso_file *out);
/* Read a whole (small) file into a NUL-terminated pool buffer; *size gets its length. */
CHAR8 *iso_read_all(const disk_t *cd, const iso_file *f, UINTN *size);

#endif
