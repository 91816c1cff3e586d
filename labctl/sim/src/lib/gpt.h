/* gpt.h - GPT build/parse and the ESXi layouts: the 6.x table (reference §3) and the 7.0/8.0 rule
 * (1, 5, 6, 7 = OSData, maybe 8 = datastore; esxi-8.0 reference "The rule the simulator follows").
 *
 * Partitions are identified by their partedUtil number n, stored in entry slot n-1 of a 128-entry
 * array at LBA 2..33 (backup at total-33..total-2, backup header at total-1), first usable LBA 34,
 * last usable total-34. partedUtil's attribute "128" (systemPartition) is stored as GPT attribute
 * bit 2 ("legacy BIOS bootable", 0x4); gpt_parted_attr() maps it back to 128. Partition names are
 * empty, as ESXi leaves them. */
#ifndef SIM_GPT_H
#define SIM_GPT_H

#include "util.h"
#include "disks.h"

#define GPT_MAX_PARTS 16
#define GPT_ENTRIES 128
#define GPT_ATTR_BOOTABLE 0x4ULL

typedef struct {
    UINT32 num;             /* partedUtil number (1-based slot) */
    UINT64 start, end;      /* inclusive LBAs */
    EFI_GUID type;
    EFI_GUID unique;
    UINT64 attrs;
    CHAR16 name[37];
} gpt_part;

typedef struct {
    UINT64 total;           /* disk sectors */
    EFI_GUID disk_guid;
    UINTN count;            /* parts[] sorted by start sector (partedUtil order) */
    gpt_part parts[GPT_MAX_PARTS];
} gpt_table;

extern EFI_GUID GPT_TYPE_ESP;          /* C12A7328-F81F-11D2-BA4B-00A0C93EC93B systemPartition */
extern EFI_GUID GPT_TYPE_LINUXNATIVE;  /* EBD0A0A2-B9E5-4433-87C0-68B6B72699C7 linuxNative */
extern EFI_GUID GPT_TYPE_VMKDIAG;      /* 9D275380-40AD-11DB-BF97-000C2911D1B8 vmkDiagnostic */
extern EFI_GUID GPT_TYPE_VMFS;         /* AA31E02A-400F-11DB-9590-000C2911D1B8 vmfs */
extern EFI_GUID GPT_TYPE_VMFSL;        /* 4EB2EA39-7855-4790-A79E-FAE495E21F8D vmfsl (OSData) */

/* systemMediaSize= boot option (7.0 U1c and later): where OSData (7) ends at most. */
typedef enum { SMS_DEFAULT, SMS_MIN, SMS_SMALL, SMS_MAX } media_size;
/* The value of systemMediaSize= (min|small|default|max, case-insensitive); SMS_DEFAULT otherwise. */
media_size gpt_media_size(const CHAR16 *value);

/* Build the ESXi 6.x layout for a disk of total sectors. usb: never 2 or 3.
 * Returns FALSE when the disk is below the minimum (1843200 + 10 MiB sectors). */
BOOLEAN gpt_esxi_layout(UINT64 total, BOOLEAN usb, gpt_table *out);
/* Minimum sectors for an install. */
UINT64 gpt_min_sectors(void);
/* Build the ESXi 7.0/8.0 layout for a disk of total sectors (USB and local alike). */
BOOLEAN gpt_esxi8_layout(UINT64 total, media_size sms, gpt_table *out);
/* Write protective MBR, primary + backup header and entries (CRCs computed). */
EFI_STATUS gpt_write(const disk_t *d, const gpt_table *t);
/* Read and validate the primary GPT (falls back to the backup). FALSE when there is none. */
BOOLEAN gpt_read(const disk_t *d, gpt_table *t);
/* Any partition at all: a valid GPT with entries, or an MBR with a non-empty entry. */
BOOLEAN disk_has_partitions(const disk_t *d);
const gpt_part *gpt_find(const gpt_table *t, UINT32 num);

/* partedUtil names: systemPartition, linuxNative, vmkDiagnostic, vmfs, or NULL. */
const CHAR16 *gpt_type_name(const EFI_GUID *g);
/* partedUtil attribute column (128 for a bootable partition, else 0). */
UINT32 gpt_parted_attr(const gpt_part *p);

#endif
