/* iso9660.c - see iso9660.h */
#include "iso9660.h"

static BOOLEAN name_eq(const UINT8 *id, UINTN idlen, const CHAR16 *comp, UINTN clen) {
    UINTN n = idlen;
    for (UINTN i = 0; i < idlen; i++)
        if (id[i] == ';') {
            n = i;
            break;
        }
    if (n > 0 && id[n - 1] == '.') n--;
    if (n != clen) return FALSE;
    for (UINTN i = 0; i < n; i++)
        if (wlower((CHAR16)id[i]) != wlower(comp[i])) return FALSE;
    return TRUE;
}

BOOLEAN iso_find(const disk_t *cd, const CHAR16 *path, iso_file *out) {
    UINT8 *blk = xalloc_pages(2048);
    BOOLEAN ok = FALSE;
    if (EFI_ERROR(disk_read(cd, 16, 1, blk)) || blk[0] != 1 || CompareMem(blk + 1, "CD001", 5) != 0) goto done;
    UINT32 dir_lba = le32(blk + 156 + 2), dir_size = le32(blk + 156 + 10);
    const CHAR16 *p = path;
    while (*p == '/' || *p == '\\') p++;
    while (*p) {
        UINTN clen = 0;
        while (p[clen] && p[clen] != '/' && p[clen] != '\\') clen++;
        BOOLEAN last = p[clen] == 0, found = FALSE;
        for (UINT32 off = 0; off < dir_size && !found; off += 2048) {
            if (EFI_ERROR(disk_read(cd, dir_lba + off / 2048, 1, blk))) goto done;
            for (UINTN i = 0; i < 2048 && blk[i] != 0;) {
                UINT8 len = blk[i];
                if (len < 34 || i + len > 2048) break;
                UINT8 idlen = blk[i + 32];
                BOOLEAN isdir = (blk[i + 25] & 2) != 0;
                if (name_eq(blk + i + 33, idlen, p, clen) && isdir == !last) {
                    dir_lba = le32(blk + i + 2);
                    dir_size = le32(blk + i + 10);
                    found = TRUE;
                    break;
                }
                i += len;
            }
        }
        if (!found) goto done;
        p += clen;
        while (*p == '/' || *p == '\\') p++;
        if (last) {
            out->lba = dir_lba;
            out->size = dir_size;
            ok = TRUE;
        }
    }
done:
    xfree_pages(blk, 2048);
    return ok;
}

CHAR8 *iso_read_all(const disk_t *cd, const iso_file *f, UINTN *size) {
    UINTN blocks = (f->size + 2047) / 2048;
    UINT8 *buf = xalloc_pages(blocks * 2048 + 2048);
    CHAR8 *res = NULL;
    if (blocks == 0 || !EFI_ERROR(disk_read(cd, f->lba, blocks, buf))) {
        res = xalloc(f->size + 1);
        CopyMem(res, buf, f->size);
        res[f->size] = 0;
        if (size) *size = f->size;
    }
    xfree_pages(buf, blocks * 2048 + 2048);
    return res;
}
