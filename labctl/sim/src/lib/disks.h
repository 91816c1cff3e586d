/* disks.h - whole disks as ESXi names them, and sector I/O.
 *
 * disks_scan() connects every controller (recursively: OVMF shows usb-storage only then), keeps the
 * whole-disk BlockIO handles (not partitions, not 2048-byte-sector CDs), classifies USB by a Usb()/
 * UsbClass() node in the device path, sorts by device path and names them like ESXi:
 * USB disks mpx.vmhba32:C0:T0:L0, mpx.vmhba33:C0:T0:L0, ...; local disks mpx.vmhba0:C0:T0:L0,
 * mpx.vmhba0:C0:T1:L0, ... Vendor/model come from EFI_DISK_INFO (SCSI INQUIRY / ATA IDENTIFY). */
#ifndef SIM_DISKS_H
#define SIM_DISKS_H

#include "util.h"

#define DISKS_MAX 16

typedef struct {
    EFI_HANDLE handle;
    EFI_BLOCK_IO *bio;
    BOOLEAN usb;
    BOOLEAN removable;
    UINT32 block_size;
    UINT64 sectors;             /* LastBlock + 1 */
    CHAR16 name[32];            /* mpx.vmhba32:C0:T0:L0 */
    CHAR16 vendor[12];          /* "QEMU", "ATA", ... */
    CHAR16 model[44];           /* "QEMU HARDDISK" */
    CHAR16 path[160];           /* device path text */
} disk_t;

/* Connect all controllers, recursively (idempotent; cheap after the first call). */
void disks_connect_all(void);
/* Fill out[] with the whole disks; returns the count. */
UINTN disks_scan(disk_t *out, UINTN max);
/* The CD/DVD the ISO is on (first whole-device BlockIO with 2048-byte blocks and "CD001" at sector 16). */
BOOLEAN disks_find_cdrom(disk_t *out);
/* "<vendor> <model>" */
void disk_label(const disk_t *d, CHAR16 *out, UINTN cap);

/* Sector I/O in the disk's own block size. Buffers from xalloc_pages() satisfy any IoAlign. */
EFI_STATUS disk_read(const disk_t *d, UINT64 lba, UINTN count, void *buf);
EFI_STATUS disk_write(const disk_t *d, UINT64 lba, UINTN count, const void *buf);
EFI_STATUS disk_zero(const disk_t *d, UINT64 lba, UINT64 count);
EFI_STATUS disk_flush(const disk_t *d);

#endif
