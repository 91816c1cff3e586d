/* datastore.c - making a datastore from the ESXi Shell, as the command-line way on ESXi does it:
 *
 *   partedUtil setptbl /vmfs/devices/disks/<disk> gpt "1 2048 <end> AA31E02A400F11DB9590000C2911D1B8 0"
 *   vmkfstools -C vmfs6 -S datastore1 /vmfs/devices/disks/<disk>:1
 *
 * setptbl writes a new GPT (both headers, CRCs) on a disk other than the one the system booted from;
 * vmkfstools -C writes the VMFS-like header the installer puts on a local disk's partition 3 (the LVM magic
 * at 1 MiB, the file system magic and the label at 0x1300000) on a vmfs partition and mounts the volume at
 * once (/vmfs/volumes). At the next boot a local VMFS datastore takes scratch (<datastore>/.locker). */
#include "esxi.h"

#define VMFS_LVM_MAGIC 0xC001D00DU
#define VMFS_FS_MAGIC 0x2FABF15EU

static BOOLEAN parse_u64(const CHAR16 *s, UINT64 *out) {
    UINT64 v = 0;
    if (!*s) return FALSE;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return FALSE;
        v = v * 10 + (UINT64)(*s - '0');
    }
    *out = v;
    return TRUE;
}

static int hexval(CHAR16 c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* partedUtil's spelling (32 hex digits, dashes allowed) or one of its type names */
static BOOLEAN parse_type(const CHAR16 *s, EFI_GUID *g) {
    static const struct { const CHAR16 *name; EFI_GUID *guid; } names[] = {
        {L"vmfs", &GPT_TYPE_VMFS}, {L"linuxNative", &GPT_TYPE_LINUXNATIVE},
        {L"vmkDiagnostic", &GPT_TYPE_VMKDIAG}, {L"systemPartition", &GPT_TYPE_ESP},
    };
    for (UINTN i = 0; i < ARRAY_LEN(names); i++)
        if (wcmp_ci(s, names[i].name) == 0) {
            *g = *names[i].guid;
            return TRUE;
        }
    UINT8 b[16];
    UINTN n = 0;
    for (; *s && n < 32; s++) {
        if (*s == '-') continue;
        int v = hexval(*s);
        if (v < 0) return FALSE;
        if (n % 2 == 0) b[n / 2] = (UINT8)(v << 4);
        else b[n / 2] |= (UINT8)v;
        n++;
    }
    if (n != 32 || *s) return FALSE;
    g->Data1 = ((UINT32)b[0] << 24) | ((UINT32)b[1] << 16) | ((UINT32)b[2] << 8) | b[3];
    g->Data2 = (UINT16)((b[4] << 8) | b[5]);
    g->Data3 = (UINT16)((b[6] << 8) | b[7]);
    CopyMem(g->Data4, b + 8, 8);
    return TRUE;
}

static void random_guid(EFI_GUID *g) {
    UINT64 a = sim_random(), b = sim_random();
    CopyMem(g, &a, 8);
    CopyMem((UINT8 *)g + 8, &b, 8);
    g->Data3 = (UINT16)((g->Data3 & 0x0fff) | 0x4000);
    g->Data4[0] = (UINT8)((g->Data4[0] & 0x3f) | 0x80);
}

/* partedUtil setptbl <disk> <label> ["partNum startSector endSector type/guid attr"]* */
void parted_setptbl(UINTN argc, CHAR16 **argv) {
    if (argc < 4) {
        shell_out(L"Not enough arguments\r\n");
        return;
    }
    const disk_t *d = esxi_find_disk(argv[2]);
    if (!d) {
        shell_out(L"Error: Could not stat device %s- No such file or directory.\r\n", argv[2]);
        return;
    }
    if (G->boot_disk >= 0 && d == &G->disks[G->boot_disk]) {
        shell_out(L"Error: Read-only file system during write on %s\r\n", d->name);
        return;
    }
    if (StrCmp(argv[3], L"gpt") != 0) {
        shell_out(L"Error: the labctl simulator writes gpt labels only (%s)\r\n", argv[3]);
        return;
    }
    gpt_table *t = xalloc(sizeof *t);
    t->total = d->sectors;
    random_guid(&t->disk_guid);
    for (UINTN a = 4; a < argc; a++) {
        CHAR16 *w[6];
        UINTN nw = 0;
        CHAR16 *p = argv[a];
        while (*p && nw < ARRAY_LEN(w)) {
            while (*p == ' ') *p++ = 0;
            if (!*p) break;
            w[nw++] = p;
            while (*p && *p != ' ') p++;
        }
        gpt_part *part = &t->parts[t->count];
        UINT64 num = 0, attr = 0;
        if (nw != 5 || t->count >= GPT_MAX_PARTS || !parse_u64(w[0], &num) || !parse_u64(w[1], &part->start) ||
            !parse_u64(w[2], &part->end) || !parse_type(w[3], &part->type) || !parse_u64(w[4], &attr) ||
            num < 1 || num > GPT_ENTRIES) {
            shell_out(L"Error: Invalid partition information (%s)\r\n", argv[a]);
            xfree(t);
            return;
        }
        if (part->start < 34 || part->end > d->sectors - 34 || part->end < part->start ||
            (t->count && part->start <= t->parts[t->count - 1].end)) {
            shell_out(L"Error: Can't have a partition outside the disk or overlapping another one (%s)\r\n", argv[a]);
            xfree(t);
            return;
        }
        part->num = (UINT32)num;
        part->attrs = attr == 128 ? GPT_ATTR_BOOTABLE : 0;
        random_guid(&part->unique);
        t->count++;
    }
    EFI_STATUS st = gpt_write(d, t);
    if (EFI_ERROR(st)) {
        shell_out(L"Error: could not write the partition table of %s (%r)\r\n", d->name, st);
    } else {
        shell_out(L"gpt\r\n0 0 0 0\r\n");
        for (UINTN i = 0; i < t->count; i++) {
            CHAR16 hex[33];
            guid_upper(&t->parts[i].type, hex);
            shell_out(L"%d %ld %ld %s %d\r\n", t->parts[i].num, t->parts[i].start, t->parts[i].end, hex,
                      gpt_parted_attr(&t->parts[i]));
        }
    }
    xfree(t);
}

/* vmkfstools -C vmfs5|vmfs6 [-S label] <disk>:<partition> */
void vmkfs_create(UINTN argc, CHAR16 **argv) {
    const CHAR16 *fs = NULL, *label = L"", *dev = NULL;
    for (UINTN i = 1; i < argc; i++) {
        if (StrCmp(argv[i], L"-C") == 0 && i + 1 < argc) fs = argv[++i];
        else if (StrCmp(argv[i], L"-S") == 0 && i + 1 < argc) label = argv[++i];
        else if (StrCmp(argv[i], L"-b") == 0 && i + 1 < argc) i++;
        else dev = argv[i];
    }
    if (!fs || !dev || (StrCmp((CHAR16 *)fs, L"vmfs5") != 0 && StrCmp((CHAR16 *)fs, L"vmfs6") != 0)) {
        shell_out(L"Usage: vmkfstools -C vmfs5|vmfs6 -S <label> /vmfs/devices/disks/<disk>:<partition>\r\n");
        return;
    }
    CHAR16 disk[160];
    wcopy(disk, ARRAY_LEN(disk), dev);
    UINTN n = wlen(disk);
    while (n && disk[n - 1] >= '0' && disk[n - 1] <= '9') n--;
    UINT64 num = 0;
    if (!n || disk[n - 1] != ':' || !parse_u64(disk + n, &num)) {
        shell_out(L"Error: %s is not a partition (<disk>:<number>)\r\n", dev);
        return;
    }
    disk[n - 1] = 0;
    const disk_t *d = esxi_find_disk(disk);
    gpt_table *t = xalloc(sizeof *t);
    const gpt_part *p = d && gpt_read(d, t) ? gpt_find(t, (UINT32)num) : NULL;
    if (!p) {
        shell_out(L"Error: No such file or directory (%s)\r\n", dev);
        xfree(t);
        return;
    }
    if (CompareGuid((EFI_GUID *)&p->type, &GPT_TYPE_VMFS) != 0 || p->end - p->start + 1 < 2097152) {
        shell_out(L"Error: %s is not a vmfs partition of at least 1 GiB\r\n", dev);
        xfree(t);
        return;
    }
    const CHAR16 *base = dev;
    for (const CHAR16 *c = dev; *c; c++)
        if (*c == '/') base = c + 1;
    shell_out(L"create fs deviceName:'%s', fsShortName:'%s', fsName:'%s'\r\n", dev, fs, label);
    shell_out(L"deviceFullPath:/dev/disks/%s deviceFile:%s\r\n", base, base);
    shell_out(L"Checking if remote hosts are using this device as a valid file system. This may take a few "
              L"seconds...\r\n");
    shell_out(L"Creating %s file system on \"%s\" with blockSize 1048576, unmapGranularity 1048576, unmapPriority "
              L"default and volume label \"%s\".\r\n", fs, base, label);
    UINT8 *sec = xalloc_pages(512);
    EFI_STATUS st = disk_zero(d, p->start, 2048 + 1);
    *(UINT32 *)sec = VMFS_LVM_MAGIC;
    CopyMem(sec + 16, "labctl simulator VMFS LVM header", 32);
    if (!EFI_ERROR(st)) st = disk_write(d, p->start + 2048, 1, sec);
    ZeroMem(sec, 512);
    *(UINT32 *)sec = VMFS_FS_MAGIC;
    w2a((CHAR8 *)sec + 16, 64, label);
    if (!EFI_ERROR(st)) st = disk_write(d, p->start + 38912, 1, sec);
    if (!EFI_ERROR(st)) st = disk_flush(d);
    xfree_pages(sec, 512);
    if (EFI_ERROR(st)) {
        shell_out(L"Error: could not write to %s (%r)\r\n", dev, st);
    } else if (!d->usb) {
        G->have_vmfs = TRUE; /* mounted at once; scratch follows at the next boot */
        esxi_volume_uuid(&p->unique, G->vmfs_uuid, ARRAY_LEN(G->vmfs_uuid));
        wcopy(G->vmfs_name, ARRAY_LEN(G->vmfs_name), label[0] ? label : G->vmfs_uuid);
        shell_out(L"Successfully created new volume: %s\r\n", G->vmfs_uuid);
    } else {
        esxi_volume_uuid(&p->unique, disk, ARRAY_LEN(disk));
        shell_out(L"Successfully created new volume: %s\r\n", disk);
    }
    xfree(t);
}
