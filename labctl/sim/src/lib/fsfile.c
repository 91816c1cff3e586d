/* fsfile.c - see fsfile.h */
#include "fsfile.h"

/* Copy of dp without its last node (pool memory). */
static EFI_DEVICE_PATH *cut_last(EFI_DEVICE_PATH *dp, EFI_DEVICE_PATH **last) {
    EFI_DEVICE_PATH *n = dp, *prev = NULL;
    while (!IsDevicePathEnd(n)) {
        prev = n;
        n = NextDevicePathNode(n);
    }
    if (!prev) return NULL;
    UINTN head = (UINT8 *)prev - (UINT8 *)dp;
    EFI_DEVICE_PATH *out = xalloc(head + sizeof(EFI_DEVICE_PATH));
    CopyMem(out, dp, head);
    EFI_DEVICE_PATH *end = (EFI_DEVICE_PATH *)((UINT8 *)out + head);
    SetDevicePathEndNode(end);
    if (last) *last = prev;
    return out;
}

static EFI_DEVICE_PATH *handle_path(EFI_HANDLE h) {
    EFI_DEVICE_PATH *dp = NULL;
    if (EFI_ERROR(CALL(BS->HandleProtocol, 3, h, &DevicePathProtocol, (void **)&dp))) return NULL;
    return dp;
}

static BOOLEAN same_path(EFI_DEVICE_PATH *a, EFI_DEVICE_PATH *b) {
    UINTN la = DevicePathSize(a), lb = DevicePathSize(b);
    return la == lb && CompareMem(a, b, la) == 0;
}

CHAR16 *fs_disk_path_text(EFI_HANDLE part) {
    EFI_DEVICE_PATH *dp = handle_path(part);
    if (!dp) return NULL;
    EFI_DEVICE_PATH *disk = cut_last(dp, NULL);
    if (!disk) return NULL;
    CHAR16 *txt = DevicePathToStr(disk);
    xfree(disk);
    return txt;
}

EFI_FILE_HANDLE fs_open_sibling(EFI_HANDLE part, UINT32 num) {
    EFI_DEVICE_PATH *dp = handle_path(part), *last = NULL;
    if (!dp) return NULL;
    EFI_DEVICE_PATH *disk = cut_last(dp, &last);
    if (!disk) return NULL;
    EFI_FILE_HANDLE root = NULL;
    UINTN n = 0;
    EFI_HANDLE *handles = NULL;
    if (!EFI_ERROR(CALL(BS->LocateHandleBuffer, 5, ByProtocol, &FileSystemProtocol, NULL, &n, &handles))) {
        for (UINTN i = 0; i < n && !root; i++) {
            EFI_DEVICE_PATH *p = handle_path(handles[i]), *pl = NULL;
            if (!p) continue;
            EFI_DEVICE_PATH *pd = cut_last(p, &pl);
            if (!pd) continue;
            if (DevicePathType(pl) == MEDIA_DEVICE_PATH && DevicePathSubType(pl) == MEDIA_HARDDRIVE_DP &&
                ((HARDDRIVE_DEVICE_PATH *)pl)->PartitionNumber == num && same_path(pd, disk)) {
                EFI_FILE_IO_INTERFACE *fs = NULL;
                if (!EFI_ERROR(CALL(BS->HandleProtocol, 3, handles[i], &FileSystemProtocol, (void **)&fs)) &&
                    EFI_ERROR(CALL(fs->OpenVolume, 2, fs, &root)))
                    root = NULL;
            }
            xfree(pd);
        }
        FreePool(handles);
    }
    xfree(disk);
    return root;
}

void fs_close(EFI_FILE_HANDLE f) {
    if (f) CALL(f->Close, 1, f);
}

CHAR8 *fs_read_all(EFI_FILE_HANDLE root, const CHAR16 *path, UINTN *size) {
    EFI_FILE_HANDLE f = NULL;
    if (!root || EFI_ERROR(CALL(root->Open, 5, root, &f, (CHAR16 *)path, EFI_FILE_MODE_READ, 0))) return NULL;
    EFI_FILE_INFO *info = LibFileInfo(f);
    UINTN n = info ? (UINTN)info->FileSize : 0;
    if (info) FreePool(info);
    CHAR8 *buf = xalloc(n + 1);
    UINTN got = n;
    if (n && EFI_ERROR(CALL(f->Read, 3, f, &got, buf))) got = 0;
    buf[got] = 0;
    CALL(f->Close, 1, f);
    if (size) *size = got;
    return buf;
}

EFI_STATUS fs_write_all(EFI_FILE_HANDLE root, const CHAR16 *path, const void *data, UINTN size) {
    EFI_FILE_HANDLE f = NULL;
    EFI_STATUS st;
    if (!root) return EFI_NOT_FOUND;
    st = CALL(root->Open, 5, root, &f, (CHAR16 *)path,
              EFI_FILE_MODE_READ | EFI_FILE_MODE_WRITE | EFI_FILE_MODE_CREATE, 0);
    if (EFI_ERROR(st)) return st;
    /* Truncate first (SetInfo with FileSize 0), then write the new contents. */
    EFI_FILE_INFO *info = LibFileInfo(f);
    if (info) {
        if (info->FileSize != 0) {
            info->FileSize = 0;
            CALL(f->SetInfo, 4, f, &GenericFileInfo, (UINTN)info->Size, info);
        }
        FreePool(info);
    }
    CALL(f->SetPosition, 2, f, 0);
    UINTN n = size;
    st = CALL(f->Write, 3, f, &n, (void *)data);
    if (!EFI_ERROR(st) && n != size) st = EFI_DEVICE_ERROR;
    EFI_STATUS fl = CALL(f->Flush, 1, f);
    if (!EFI_ERROR(st)) st = fl;
    CALL(f->Close, 1, f);
    return st;
}
