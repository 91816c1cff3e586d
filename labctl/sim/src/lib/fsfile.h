/* fsfile.h - files on the FAT partitions of a disk through SimpleFileSystem (OVMF's FAT driver reads
 * and writes), the partitions found by device path: "partition N of the disk that holds handle H".
 * Partition numbers are GPT entry slots + 1 (the HD() node's PartitionNumber), as partedUtil numbers them. */
#ifndef SIM_FSFILE_H
#define SIM_FSFILE_H

#include "util.h"

/* The device path of the whole disk that partition handle `part` belongs to (its HD() node cut off),
 * as text (pool memory, free with FreePool), or NULL. */
CHAR16 *fs_disk_path_text(EFI_HANDLE part);
/* Root directory of the file system on partition num of the disk holding `part` (the boot partition,
 * e.g. the loaded image's DeviceHandle). NULL when there is none. Close with fs_close(). */
EFI_FILE_HANDLE fs_open_sibling(EFI_HANDLE part, UINT32 num);
void fs_close(EFI_FILE_HANDLE f);
/* Whole file as a NUL-terminated pool buffer (free with FreePool); NULL when missing. */
CHAR8 *fs_read_all(EFI_FILE_HANDLE root, const CHAR16 *path, UINTN *size);
/* Create or replace the file with exactly size bytes, flushed to the disk. */
EFI_STATUS fs_write_all(EFI_FILE_HANDLE root, const CHAR16 *path, const void *data, UINTN size);

#endif
