/* disks.c - see disks.h */
#include "disks.h"

/* EFI_DISK_INFO_PROTOCOL (PI spec) - not declared by gnu-efi. */
typedef struct SIM_DISK_INFO SIM_DISK_INFO;
struct SIM_DISK_INFO {
    EFI_GUID Interface;
    EFI_STATUS (EFIAPI *Inquiry)(SIM_DISK_INFO *This, void *Data, UINT32 *Size);
    EFI_STATUS (EFIAPI *Identify)(SIM_DISK_INFO *This, void *Data, UINT32 *Size);
    void *SenseData;
    void *WhichIde;
};
static EFI_GUID disk_info_guid = {0xd432a67f, 0x14dc, 0x484b, {0xb3, 0xbb, 0x3f, 0x02, 0x91, 0x84, 0x93, 0x27}};
static EFI_GUID di_ahci = {0x9e498932, 0x4abc, 0x45af, {0xa3, 0x4d, 0x02, 0x47, 0x78, 0x7b, 0xe7, 0xc6}};
static EFI_GUID di_ide = {0x5e948fe3, 0x26d3, 0x42b5, {0xaf, 0x17, 0x61, 0x02, 0x87, 0x18, 0x8d, 0xec}};

void disks_connect_all(void) {
    UINTN n = 0;
    EFI_HANDLE *handles = NULL;
    if (EFI_ERROR(CALL(BS->LocateHandleBuffer, 5, AllHandles, NULL, NULL, &n, &handles))) return;
    for (UINTN i = 0; i < n; i++) CALL(BS->ConnectController, 4, handles[i], NULL, NULL, TRUE);
    FreePool(handles);
}

static BOOLEAN path_is_usb(EFI_DEVICE_PATH *dp) {
    for (; dp && !IsDevicePathEnd(dp); dp = NextDevicePathNode(dp)) {
        if (DevicePathType(dp) == MESSAGING_DEVICE_PATH &&
            (DevicePathSubType(dp) == MSG_USB_DP || DevicePathSubType(dp) == MSG_USB_CLASS_DP ||
             DevicePathSubType(dp) == MSG_USB_WWID_DP))
            return TRUE;
    }
    return FALSE;
}

static void fill_identity(disk_t *d) {
    SIM_DISK_INFO *di = NULL;
    UINT8 buf[512];
    UINT32 size = sizeof buf;
    wcopy(d->vendor, ARRAY_LEN(d->vendor), d->usb ? L"USB" : L"ATA");
    wcopy(d->model, ARRAY_LEN(d->model), d->usb ? L"Flash Disk" : L"Virtual disk");
    if (EFI_ERROR(CALL(BS->HandleProtocol, 3, d->handle, &disk_info_guid, (void **)&di)) || !di) return;
    ZeroMem(buf, sizeof buf);
    if (CompareGuid(&di->Interface, &di_ahci) == 0 || CompareGuid(&di->Interface, &di_ide) == 0) {
        if (!EFI_ERROR(CALL(di->Identify, 3, di, buf, &size)) && size >= 94) {
            CHAR8 model[41];
            for (UINTN i = 0; i < 20; i++) { /* words 27..46, bytes swapped */
                model[2 * i] = (CHAR8)buf[54 + 2 * i + 1];
                model[2 * i + 1] = (CHAR8)buf[54 + 2 * i];
            }
            model[40] = 0;
            a2w(d->model, ARRAY_LEN(d->model), model, 40);
            wcopy(d->vendor, ARRAY_LEN(d->vendor), L"ATA");
        }
        return;
    }
    size = sizeof buf;
    if (!EFI_ERROR(CALL(di->Inquiry, 3, di, buf, &size)) && size >= 32) {
        a2w(d->vendor, ARRAY_LEN(d->vendor), (CHAR8 *)buf + 8, 8);
        a2w(d->model, ARRAY_LEN(d->model), (CHAR8 *)buf + 16, 16);
    }
}

static UINTN collect(disk_t *out, UINTN max, BOOLEAN want_cd) {
    UINTN n = 0, count = 0;
    EFI_HANDLE *handles = NULL;
    if (EFI_ERROR(CALL(BS->LocateHandleBuffer, 5, ByProtocol, &BlockIoProtocol, NULL, &n, &handles))) return 0;
    for (UINTN i = 0; i < n && count < max; i++) {
        EFI_BLOCK_IO *bio = NULL;
        EFI_DEVICE_PATH *dp = NULL;
        if (EFI_ERROR(CALL(BS->HandleProtocol, 3, handles[i], &BlockIoProtocol, (void **)&bio))) continue;
        if (!bio->Media || bio->Media->LogicalPartition || !bio->Media->MediaPresent) continue;
        BOOLEAN cd = bio->Media->BlockSize == 2048;
        if (cd != want_cd) continue;
        CALL(BS->HandleProtocol, 3, handles[i], &DevicePathProtocol, (void **)&dp);
        disk_t *d = &out[count];
        ZeroMem(d, sizeof *d);
        d->handle = handles[i];
        d->bio = bio;
        d->block_size = bio->Media->BlockSize;
        d->sectors = bio->Media->LastBlock + 1;
        d->removable = bio->Media->RemovableMedia;
        d->usb = path_is_usb(dp);
        if (dp) {
            CHAR16 *txt = DevicePathToStr(dp);
            if (txt) {
                wcopy(d->path, ARRAY_LEN(d->path), txt);
                FreePool(txt);
            }
        }
        count++;
    }
    FreePool(handles);
    /* Stable order: by device path text (insertion sort; a handful of disks). */
    for (UINTN i = 1; i < count; i++) {
        for (UINTN j = i; j > 0 && StrCmp(out[j - 1].path, out[j].path) > 0; j--) {
            disk_t t = out[j];
            out[j] = out[j - 1];
            out[j - 1] = t;
        }
    }
    return count;
}

UINTN disks_scan(disk_t *out, UINTN max) {
    UINTN usb = 0, local = 0;
    disks_connect_all();
    UINTN n = collect(out, max, FALSE);
    for (UINTN i = 0; i < n; i++) {
        disk_t *d = &out[i];
        if (d->usb)
            SPrint(d->name, sizeof d->name, L"mpx.vmhba%d:C0:T0:L0", 32 + usb++);
        else
            SPrint(d->name, sizeof d->name, L"mpx.vmhba0:C0:T%d:L0", local++);
        fill_identity(d);
    }
    return n;
}

BOOLEAN disks_find_cdrom(disk_t *out) {
    disk_t cds[4];
    disks_connect_all();
    UINTN n = collect(cds, ARRAY_LEN(cds), TRUE);
    UINT8 *buf = xalloc_pages(2048);
    BOOLEAN found = FALSE;
    for (UINTN i = 0; i < n && !found; i++) {
        if (!EFI_ERROR(disk_read(&cds[i], 16, 1, buf)) && CompareMem(buf + 1, "CD001", 5) == 0) {
            *out = cds[i];
            wcopy(out->name, ARRAY_LEN(out->name), L"mpx.vmhba1:C0:T0:L0");
            found = TRUE;
        }
    }
    xfree_pages(buf, 2048);
    return found;
}

void disk_label(const disk_t *d, CHAR16 *out, UINTN cap) {
    SPrint(out, cap * sizeof(CHAR16), L"%s %s", d->vendor, d->model);
}

EFI_STATUS disk_read(const disk_t *d, UINT64 lba, UINTN count, void *buf) {
    return CALL(d->bio->ReadBlocks, 5, d->bio, d->bio->Media->MediaId, lba, count * d->block_size, buf);
}

EFI_STATUS disk_write(const disk_t *d, UINT64 lba, UINTN count, const void *buf) {
    return CALL(d->bio->WriteBlocks, 5, d->bio, d->bio->Media->MediaId, lba, count * d->block_size, (void *)buf);
}

EFI_STATUS disk_zero(const disk_t *d, UINT64 lba, UINT64 count) {
    const UINTN chunk = 2048; /* sectors per write */
    UINTN bytes = chunk * d->block_size;
    UINT8 *z = xalloc_pages(bytes);
    EFI_STATUS st = EFI_SUCCESS;
    while (count > 0 && !EFI_ERROR(st)) {
        UINTN c = count > chunk ? chunk : (UINTN)count;
        st = disk_write(d, lba, c, z);
        lba += c;
        count -= c;
    }
    xfree_pages(z, bytes);
    return st;
}

EFI_STATUS disk_flush(const disk_t *d) {
    return CALL(d->bio->FlushBlocks, 1, d->bio);
}
