/* cmds.c - the ESXi Shell's other commands: partedUtil (getptbl/get/getUsableSectors, from the GPT really
 * on the disk), busybox ls -l[h] of /, /dev/disks and /vmfs/volumes, reboot, poweroff, vmware -v,
 * /sbin/auto-backup.sh, and a few harmless ones (echo, clear, hostname, uname). */
#include "esxi.h"

static const CHAR16 *base_name(const CHAR16 *p) {
    static const CHAR16 *prefixes[] = {L"/dev/disks/", L"/vmfs/devices/disks/"};
    for (UINTN i = 0; i < ARRAY_LEN(prefixes); i++)
        if (StrnCmp((CHAR16 *)p, (CHAR16 *)prefixes[i], wlen(prefixes[i])) == 0) return p + wlen(prefixes[i]);
    return p;
}

void hex_lower(CHAR16 *out, const UINT8 *b, UINTN n) {
    static const CHAR16 digits[] = L"0123456789abcdef";
    for (UINTN i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = 0;
}

void esxi_volume_uuid(const EFI_GUID *g, CHAR16 *out, UINTN cap) {
    /* ESXi style 8-8-4-12 lowercase hex from a partition's unique GUID */
    const UINT8 *p = (const UINT8 *)g;
    UINT8 b[16] = {p[3], p[2], p[1], p[0], p[5], p[4], p[7], p[6], p[8], p[9], p[10], p[11], p[12], p[13], p[14], p[15]};
    CHAR16 h[33];
    hex_lower(h, b, 16);
    if (cap < 36) return;
    UINTN o = 0;
    for (UINTN i = 0; i < 32; i++) {
        if (i == 8 || i == 16 || i == 20) out[o++] = '-';
        out[o++] = h[i];
    }
    out[o] = 0;
}

void esxi_vml_name(const disk_t *d, CHAR16 *out, UINTN cap) {
    /* vml.0000000000 + hex of "vmhbaN:T:L" (the mpx name's adapter, target, lun) */
    CHAR16 id[32], hex[80];
    UINT8 raw[32];
    UINTN a = 0, t = 0, l = 0, i = 0;
    const CHAR16 *n = d->name + 9; /* after "mpx.vmhba" */
    while (*n >= '0' && *n <= '9') a = a * 10 + (*n++ - '0');
    while (*n && *n != 'T') n++;
    if (*n) n++;
    while (*n >= '0' && *n <= '9') t = t * 10 + (*n++ - '0');
    while (*n && *n != 'L') n++;
    if (*n) n++;
    while (*n >= '0' && *n <= '9') l = l * 10 + (*n++ - '0');
    SPrint(id, sizeof id, L"vmhba%d:%d:%d", a, t, l);
    for (i = 0; id[i] && i < ARRAY_LEN(raw); i++) raw[i] = (UINT8)id[i];
    hex_lower(hex, raw, i);
    SPrint(out, cap * sizeof(CHAR16), L"vml.0000000000%s", hex);
}

/* partedUtil's spelling of a type GUID: 32 uppercase hex digits, fields in text order */
void guid_upper(const EFI_GUID *g, CHAR16 *out) {
    static const CHAR16 digits[] = L"0123456789ABCDEF";
    const UINT8 *p = (const UINT8 *)g;
    UINT8 b[16] = {p[3], p[2], p[1], p[0], p[5], p[4], p[7], p[6], p[8], p[9], p[10], p[11], p[12], p[13], p[14], p[15]};
    for (UINTN i = 0; i < 16; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[32] = 0;
}

const disk_t *esxi_find_disk(const CHAR16 *name) {
    const CHAR16 *b = base_name(name);
    for (UINTN i = 0; i < G->n_disks; i++) {
        CHAR16 vml[80];
        esxi_vml_name(&G->disks[i], vml, ARRAY_LEN(vml));
        if (StrCmp(G->disks[i].name, (CHAR16 *)b) == 0 || StrCmp(vml, (CHAR16 *)b) == 0) return &G->disks[i];
    }
    return NULL;
}

/* ------------------------------------------------------------------------------------------ partedUtil */

static void parted_usage(void) {
    shell_out(L"Usage: \r\n");
    shell_out(L" Get Partitions : get <diskName>\r\n");
    shell_out(L" Set Partitions : set <diskName> [\"partNum startSector endSector type attr\"]*\r\n");
    shell_out(L" Delete Partition : delete <diskName> <partNum>\r\n");
    shell_out(L" Resize Partition : resize <diskName> <partNum> <start> <end>\r\n");
    shell_out(L" Get Partitions : getptbl <diskName>\r\n");
    shell_out(L" Set Partitions : setptbl <diskName> <label> [\"partNum startSector endSector type/guid attr\"]*\r\n");
    shell_out(L" Fix Partition Table : fix <diskName>\r\n");
    shell_out(L" Create New Label (all existing data will be lost): mklabel <diskName> <label>\r\n");
    shell_out(L" Show commonly known partition type guids : showGuids\r\n");
    shell_out(L" Get usable first and last sectors : getUsableSectors <diskName>\r\n");
    shell_out(L" Fix GPT Table interactively : fixGpt <diskName>\r\n");
}

static void parted(UINTN argc, CHAR16 **argv) {
    if (argc < 2) {
        shell_out(L"Not enough arguments\r\n\r\n");
        parted_usage();
        return;
    }
    BOOLEAN getptbl = StrCmp(argv[1], L"getptbl") == 0, get = StrCmp(argv[1], L"get") == 0;
    BOOLEAN usable = StrCmp(argv[1], L"getUsableSectors") == 0;
    if (StrCmp(argv[1], L"showGuids") == 0) {
        shell_out(L" Partition Type       GUID\r\n");
        shell_out(L" vmfs                 AA31E02A400F11DB9590000C2911D1B8\r\n");
        shell_out(L" vmkDiagnostic        9D27538040AD11DBBF97000C2911D1B8\r\n");
        shell_out(L" vsan                 381CFCCC728811E092EE000C2911D0B2\r\n");
        shell_out(L" virsto               77719A0CA4A011E3A47E000C29745A24\r\n");
        shell_out(L" VMware Reserved      9198EFFC31C011DB8F78000C2911D1B8\r\n");
        shell_out(L" Basic Data           EBD0A0A2B9E5443387C068B6B72699C7\r\n");
        shell_out(L" Linux Swap           0657FD6DA4AB43C484E50933C84B4F4F\r\n");
        shell_out(L" Linux Lvm            E6D6D379F50744C2A23C238F2A3DF928\r\n");
        shell_out(L" Linux Raid           A19D880F05FC4D3BA006743F0F84911E\r\n");
        shell_out(L" Efi System           C12A7328F81F11D2BA4B00A0C93EC93B\r\n");
        shell_out(L" Microsoft Reserved   E3C9E3160B5C4DB8817DF92DF00215AE\r\n");
        shell_out(L" Unused Entry         00000000000000000000000000000000\r\n");
        return;
    }
    if (StrCmp(argv[1], L"setptbl") == 0) {
        parted_setptbl(argc, argv); /* datastore.c */
        return;
    }
    if (!getptbl && !get && !usable) {
        if (StrCmp(argv[1], L"set") == 0 || StrCmp(argv[1], L"delete") == 0 ||
            StrCmp(argv[1], L"resize") == 0 || StrCmp(argv[1], L"mklabel") == 0 || StrCmp(argv[1], L"fix") == 0 ||
            StrCmp(argv[1], L"fixGpt") == 0) {
            shell_out(L"Error: the labctl simulator does not change partition tables (%s)\r\n", argv[1]);
            return;
        }
        shell_out(L"Unknown command %s\r\n\r\n", argv[1]);
        parted_usage();
        return;
    }
    if (argc < 3) {
        shell_out(L"Not enough arguments\r\n\r\n");
        parted_usage();
        return;
    }
    const disk_t *d = esxi_find_disk(argv[2]);
    if (!d) {
        shell_out(L"Error: Could not stat device %s- No such file or directory.\r\n", argv[2]);
        return;
    }
    if (usable) {
        shell_out(L"34 %ld\r\n", d->sectors - 34);
        return;
    }
    gpt_table *t = xalloc(sizeof *t);
    BOOLEAN ok = gpt_read(d, t);
    if (getptbl) shell_out(L"%s\r\n", ok ? L"gpt" : L"unknown");
    shell_out(L"%ld 255 63 %ld\r\n", d->sectors / (255 * 63), d->sectors);
    for (UINTN i = 0; ok && i < t->count; i++) {
        const gpt_part *p = &t->parts[i];
        if (getptbl) {
            CHAR16 hex[33];
            const CHAR16 *tn = gpt_type_name(&p->type);
            guid_upper(&p->type, hex);
            shell_out(L"%d %ld %ld %s %s %d\r\n", p->num, p->start, p->end, hex, tn ? tn : L"unknown",
                      gpt_parted_attr(p));
        } else {
            shell_out(L"%d %ld %ld 0 %d\r\n", p->num, p->start, p->end, gpt_parted_attr(p));
        }
    }
    xfree(t);
}

/* ------------------------------------------------------------------------------------------------ ls */

static CHAR16 stamp[16];

static void make_stamp(void) {
    static const CHAR16 *mon[] = {L"Jan", L"Feb", L"Mar", L"Apr", L"May", L"Jun",
                                  L"Jul", L"Aug", L"Sep", L"Oct", L"Nov", L"Dec"};
    EFI_TIME t;
    ZeroMem(&t, sizeof t);
    CALL(RT->GetTime, 2, &t, NULL);
    UINTN m = t.Month >= 1 && t.Month <= 12 ? t.Month - 1 : 0;
    SPrint(stamp, sizeof stamp, L"%s %2d %02d:%02d", mon[m], t.Day, t.Hour, t.Minute);
}

/* busybox make_human_readable_str: bytes below 1024 as is, else one decimal and K/M/G/T */
static void human(UINT64 bytes, CHAR16 *out, UINTN cap) {
    static const CHAR16 units[] = {'K', 'M', 'G', 'T'};
    if (bytes < 1024) {
        SPrint(out, cap * sizeof(CHAR16), L"%ld", bytes);
        return;
    }
    UINTN u = 0;
    UINT64 scale = 1024;
    while (u + 1 < ARRAY_LEN(units) && bytes >= scale * 1024) {
        scale *= 1024;
        u++;
    }
    UINT64 tenths = (bytes * 10 + scale / 2) / scale;
    SPrint(out, cap * sizeof(CHAR16), L"%ld.%ld%c", tenths / 10, tenths % 10, units[u]);
}

static BOOLEAN ls_long, ls_human;

static void ls_entry(const CHAR16 *perm, UINTN links, UINT64 size, const CHAR16 *name, const CHAR16 *target) {
    if (!ls_long) {
        shell_out(L"%s\r\n", name);
        return;
    }
    CHAR16 sz[24], col[16];
    if (ls_human)
        human(size, sz, ARRAY_LEN(sz));
    else
        SPrint(sz, sizeof sz, L"%ld", size);
    UINTN w = ls_human ? 7 : 9, n = wlen(sz), i = 0;
    for (; i + n < w && i < ARRAY_LEN(col) - 1; i++) col[i] = ' ';
    col[i] = 0;
    if (target)
        shell_out(L"%s %4d root     root     %s%s %s %s -> %s\r\n", perm, links, col, sz, stamp, name, target);
    else
        shell_out(L"%s %4d root     root     %s%s %s %s\r\n", perm, links, col, sz, stamp, name);
}

static void part_uuid(UINT32 num, CHAR16 *out, UINTN cap) {
    gpt_table *t = xalloc(sizeof *t);
    out[0] = 0;
    if (G->boot_disk >= 0 && gpt_read(&G->disks[G->boot_disk], t)) {
        const gpt_part *p = gpt_find(t, num);
        if (p) esxi_volume_uuid(&p->unique, out, cap);
    }
    xfree(t);
    if (!out[0]) wcopy(out, cap, L"00000000-00000000-0000-000000000000");
}

BOOLEAN esxi_osdata_volume(CHAR16 *label, UINTN cap, CHAR16 *uuid, UINTN ucap) {
    BOOLEAN ok = FALSE;
    if (PROFILE->layout != LAYOUT_ESXI8 || G->boot_disk < 0) return FALSE;
    const disk_t *d = &G->disks[G->boot_disk];
    gpt_table *t = xalloc(sizeof *t);
    UINT8 *sec = xalloc_pages(512);
    const gpt_part *p = gpt_read(d, t) ? gpt_find(t, 7) : NULL;
    if (p && CompareGuid((EFI_GUID *)&p->type, &GPT_TYPE_VMFSL) == 0 && !EFI_ERROR(disk_read(d, p->start + 2048, 1, sec))) {
        a2w(label, cap, (const CHAR8 *)sec + 64, 47);
        esxi_volume_uuid(&p->unique, uuid, ucap);
        ok = label[0] != 0;
    }
    xfree_pages(sec, 512);
    xfree(t);
    return ok;
}

static void ls_root(void) {
    CHAR16 boot[80], alt[80], store[80], u[40];
    part_uuid(5, u, ARRAY_LEN(u));
    SPrint(boot, sizeof boot, L"/vmfs/volumes/%s", u);
    part_uuid(6, u, ARRAY_LEN(u));
    SPrint(alt, sizeof alt, L"/vmfs/volumes/%s", u);
    part_uuid(PROFILE->layout == LAYOUT_ESXI8 ? 7 : 8, u, ARRAY_LEN(u)); /* 8.0: the store is on OSData */
    SPrint(store, sizeof store, L"/vmfs/volumes/%s", u);
    if (ls_long) shell_out(L"total 565\r\n");
    ls_entry(L"lrwxrwxrwx", 1, wlen(alt), L"altbootbank", alt);
    ls_entry(L"drwxr-xr-x", 1, 512, L"bin", NULL);
    ls_entry(L"lrwxrwxrwx", 1, wlen(boot), L"bootbank", boot);
    ls_entry(L"-r--r--r--", 1, 339661, L"bootpart.gz", NULL);
    ls_entry(L"-r--r--r--", 1, 2493197, L"bootpart4kn.gz", NULL);
    ls_entry(L"drwxr-xr-x", 15, 512, L"dev", NULL);
    ls_entry(L"drwxr-xr-x", 1, 512, L"etc", NULL);
    ls_entry(L"drwxr-xr-x", 1, 512, L"lib", NULL);
    ls_entry(L"drwxr-xr-x", 1, 512, L"lib64", NULL);
    ls_entry(L"-r-x------", 1, 13722, L"local.tgz", NULL);
    ls_entry(L"lrwxrwxrwx", 1, 6, L"locker", L"/store");
    ls_entry(L"drwxr-xr-x", 1, 512, L"mbr", NULL);
    ls_entry(L"drwxr-xr-x", 1, 512, L"opt", NULL);
    ls_entry(L"drwxr-xr-x", 1, 131072, L"proc", NULL);
    ls_entry(L"lrwxrwxrwx", 1, 29, L"productLocker", L"/locker/packages/vmtoolsRepo/");
    ls_entry(L"lrwxrwxrwx", 1, 4, L"sbin", L"/bin");
    ls_entry(L"lrwxrwxrwx", 1, wlen(G->rt.scratch), L"scratch", G->rt.scratch);
    ls_entry(L"lrwxrwxrwx", 1, wlen(store), L"store", store);
    ls_entry(L"drwxr-xr-x", 1, 512, L"tardisks", NULL);
    ls_entry(L"drwxr-xr-x", 1, 512, L"tardisks.noauto", NULL);
    ls_entry(L"drwxrwxrwt", 1, 512, L"tmp", NULL);
    ls_entry(L"drwxr-xr-x", 1, 512, L"usr", NULL);
    ls_entry(L"drwxr-xr-x", 1, 512, L"var", NULL);
    ls_entry(L"drwxr-xr-x", 1, 512, L"vmfs", NULL);
    ls_entry(L"drwxr-xr-x", 1, 512, L"vmimages", NULL);
    ls_entry(L"lrwxrwxrwx", 1, 18, L"vmupgrade", L"/locker/vmupgrade/");
}

/* /dev/disks: every disk and its partitions (names sort like ls does), then the vml.* links. */
static void ls_disks(void) {
    gpt_table *t = xalloc(sizeof *t);
    UINT64 total = 0;
    for (UINTN i = 0; i < G->n_disks; i++) total += G->disks[i].sectors / 2;
    if (ls_long) shell_out(L"total %ld\r\n", total);
    /* mpx.* sort before vml.*; disks in their name order */
    UINTN order[DISKS_MAX];
    for (UINTN i = 0; i < G->n_disks; i++) order[i] = i;
    for (UINTN i = 1; i < G->n_disks; i++)
        for (UINTN j = i; j > 0 && StrCmp(G->disks[order[j - 1]].name, G->disks[order[j]].name) > 0; j--) {
            UINTN x = order[j];
            order[j] = order[j - 1];
            order[j - 1] = x;
        }
    for (UINTN pass = 0; pass < 2; pass++) {
        for (UINTN oi = 0; oi < G->n_disks; oi++) {
            const disk_t *d = &G->disks[order[oi]];
            CHAR16 vml[80], name[96], target[64];
            esxi_vml_name(d, vml, ARRAY_LEN(vml));
            BOOLEAN ok = gpt_read(d, t);
            /* partitions in name order (":1" < ":2" ...) */
            UINT32 nums[GPT_MAX_PARTS];
            UINTN np = 0;
            for (UINTN p = 0; ok && p < t->count; p++) nums[np++] = t->parts[p].num;
            for (UINTN a = 1; a < np; a++)
                for (UINTN b = a; b > 0 && nums[b - 1] > nums[b]; b--) {
                    UINT32 x = nums[b];
                    nums[b] = nums[b - 1];
                    nums[b - 1] = x;
                }
            if (pass == 0) {
                ls_entry(L"-rw-------", 1, d->sectors * d->block_size, d->name, NULL);
                for (UINTN a = 0; a < np; a++) {
                    const gpt_part *p = gpt_find(t, nums[a]);
                    SPrint(name, sizeof name, L"%s:%d", d->name, p->num);
                    ls_entry(L"-rw-------", 1, (p->end - p->start + 1) * d->block_size, name, NULL);
                }
            } else {
                ls_entry(L"lrwxrwxrwx", 1, wlen(d->name), vml, d->name);
                for (UINTN a = 0; a < np; a++) {
                    SPrint(name, sizeof name, L"%s:%d", vml, nums[a]);
                    SPrint(target, sizeof target, L"%s:%d", d->name, nums[a]);
                    ls_entry(L"lrwxrwxrwx", 1, wlen(target), name, target);
                }
            }
        }
    }
    xfree(t);
}

static void ls_volumes(void) {
    CHAR16 u5[40], u6[40], u8[40], osd[64], osd_uuid[40];
    BOOLEAN have_osdata = esxi_osdata_volume(osd, ARRAY_LEN(osd), osd_uuid, ARRAY_LEN(osd_uuid));
    part_uuid(5, u5, ARRAY_LEN(u5));
    part_uuid(6, u6, ARRAY_LEN(u6));
    part_uuid(8, u8, ARRAY_LEN(u8));
    if (ls_long) shell_out(L"total 1024\r\n");
    if (G->have_vmfs) ls_entry(L"drwxr-xr-t", 1, 73728, G->vmfs_uuid, NULL);
    ls_entry(L"drwxr-xr-x", 1, 8, u5, NULL);
    ls_entry(L"drwxr-xr-x", 1, 8, u6, NULL);
    if (PROFILE->layout != LAYOUT_ESXI8) ls_entry(L"drwxr-xr-x", 1, 8, u8, NULL);
    if (have_osdata) ls_entry(L"drwxr-xr-t", 1, 73728, osd_uuid, NULL);
    ls_entry(L"lrwxr-xr-x", 1, 35, L"BOOTBANK1", u5);
    ls_entry(L"lrwxr-xr-x", 1, 35, L"BOOTBANK2", u6);
    if (have_osdata) ls_entry(L"lrwxr-xr-x", 1, 35, osd, osd_uuid);
    if (G->have_vmfs) ls_entry(L"lrwxr-xr-x", 1, 35, G->vmfs_name, G->vmfs_uuid);
}

/* vmkfstools -P <volume>: the file system of a datastore or of OSData (what a script checks before it
 * moves scratch or logs there). */
static void vmkfstools(UINTN argc, CHAR16 **argv) {
    if (argc > 1 && StrCmp(argv[1], L"-C") == 0) {
        vmkfs_create(argc, argv); /* datastore.c */
        return;
    }
    if (argc < 3 || StrCmp(argv[1], L"-P") != 0) {
        shell_out(L"Usage: vmkfstools -P <path> | -C vmfs6 -S <label> <disk>:<partition>\r\n");
        return;
    }
    const CHAR16 *path = argv[2];
    CHAR16 osd[64], osd_uuid[40], name[80];
    BOOLEAN have_osdata = esxi_osdata_volume(osd, ARRAY_LEN(osd), osd_uuid, ARRAY_LEN(osd_uuid));
    const CHAR16 *vol = wstarts_ci(path, L"/vmfs/volumes/") ? path + 14 : path;
    UINTN n = 0;
    while (vol[n] && vol[n] != '/' && n + 1 < ARRAY_LEN(name)) {
        name[n] = vol[n];
        n++;
    }
    name[n] = 0;
    if (G->have_vmfs && (StrCmp(name, G->vmfs_name) == 0 || StrCmp(name, G->vmfs_uuid) == 0)) {
        shell_out(L"VMFS-6.82 (Raw Major Version: 24) file system spanning 1 partitions.\r\n");
        shell_out(L"File system label (if any): %s\r\n", G->vmfs_name);
        shell_out(L"Mode: public\r\nUUID: %s\r\n", G->vmfs_uuid);
        return;
    }
    if (have_osdata && (StrCmp(name, osd) == 0 || StrCmp(name, osd_uuid) == 0)) {
        shell_out(L"VMFS-L-1.00 (Raw Major Version: 24) file system spanning 1 partitions.\r\n");
        shell_out(L"File system label (if any): %s\r\n", osd);
        shell_out(L"Mode: private\r\nUUID: %s\r\n", osd_uuid);
        return;
    }
    shell_out(L"Error: No such file or directory\r\n");
}

static void ls(UINTN argc, CHAR16 **argv) {
    const CHAR16 *path = NULL;
    ls_long = ls_human = FALSE;
    make_stamp();
    for (UINTN i = 1; i < argc; i++) {
        if (argv[i][0] == '-') {
            for (const CHAR16 *f = argv[i] + 1; *f; f++) {
                if (*f == 'l') ls_long = TRUE;
                else if (*f == 'h') ls_human = TRUE;
                else if (*f != 'a' && *f != 'A') {
                    shell_out(L"ls: unrecognized option: %c\r\n", *f);
                    return;
                }
            }
        } else {
            path = argv[i];
        }
    }
    if (!path || StrCmp((CHAR16 *)path, L"/") == 0) {
        ls_root();
        return;
    }
    if (StrCmp((CHAR16 *)path, L"/dev/disks") == 0 || StrCmp((CHAR16 *)path, L"/dev/disks/") == 0 ||
        StrCmp((CHAR16 *)path, L"/vmfs/devices/disks") == 0 || StrCmp((CHAR16 *)path, L"/vmfs/devices/disks/") == 0) {
        ls_disks();
        return;
    }
    if (StrCmp((CHAR16 *)path, L"/vmfs/volumes") == 0 || StrCmp((CHAR16 *)path, L"/vmfs/volumes/") == 0) {
        ls_volumes();
        return;
    }
    const disk_t *d = esxi_find_disk(path);
    if (d && StrnCmp((CHAR16 *)path, L"/", 1) == 0) {
        ls_entry(L"-rw-------", 1, d->sectors * d->block_size, path, NULL);
        return;
    }
    shell_out(L"ls: %s: No such file or directory\r\n", path);
}

/* ------------------------------------------------------------------------------------------ dispatch */

BOOLEAN cmd_run(UINTN argc, CHAR16 **argv) {
    const CHAR16 *c = argv[0];
    if (StrCmp((CHAR16 *)c, L"partedUtil") == 0 || StrCmp((CHAR16 *)c, L"/bin/partedUtil") == 0) {
        parted(argc, argv);
    } else if (StrCmp((CHAR16 *)c, L"vmkfstools") == 0) {
        vmkfstools(argc, argv);
    } else if (StrCmp((CHAR16 *)c, L"ls") == 0) {
        ls(argc, argv);
    } else if (StrCmp((CHAR16 *)c, L"reboot") == 0) {
        esxi_shutdown(TRUE);
    } else if (StrCmp((CHAR16 *)c, L"poweroff") == 0 || StrCmp((CHAR16 *)c, L"halt") == 0) {
        esxi_shutdown(FALSE);
    } else if (StrCmp((CHAR16 *)c, L"vmware") == 0) {
        if (argc > 1 && (StrCmp(argv[1], L"-v") == 0 || StrCmp(argv[1], L"-vl") == 0))
            shell_out(L"VMware ESXi %s build-%s\r\n", ESXI_VERSION, ESXI_BUILD);
        else
            shell_out(L"Usage: vmware -v | -l\r\n");
    } else if (StrCmp((CHAR16 *)c, L"/sbin/auto-backup.sh") == 0 || StrCmp((CHAR16 *)c, L"auto-backup.sh") == 0) {
        shell_out(L"Saving current state in /bootbank\r\n");
        if (!state_save()) shell_out(L"Error: could not write the state to /bootbank\r\n");
        make_stamp();
        shell_out(L"Clock updated.\r\nTime: %s UTC\r\n", stamp + 7);
    } else if (StrCmp((CHAR16 *)c, L"echo") == 0) {
        for (UINTN i = 1; i < argc; i++) shell_out(i + 1 < argc ? L"%s " : L"%s", argv[i]);
        shell_out(L"\r\n");
    } else if (StrCmp((CHAR16 *)c, L"clear") == 0) {
        vt_clear();
    } else if (StrCmp((CHAR16 *)c, L"hostname") == 0) {
        shell_out(HOSTNAME L"\r\n");
    } else if (StrCmp((CHAR16 *)c, L"uname") == 0) {
        if (argc > 1 && StrCmp(argv[1], L"-a") == 0)
            shell_out(L"VMkernel localhost %s #1 SMP Release build-%s %s x86_64 x86_64 x86_64 ESXi\r\n",
                      ESXI_VERSION, ESXI_BUILD, PROFILE->id == 80 ? L"Dec 12 2024 10:33:41" : L"Jun  5 2018 18:08:46");
        else
            shell_out(L"VMkernel\r\n");
    } else {
        return FALSE;
    }
    return TRUE;
}
