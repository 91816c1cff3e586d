/* gpt.c - see gpt.h */
#include "gpt.h"

EFI_GUID GPT_TYPE_ESP = {0xC12A7328, 0xF81F, 0x11D2, {0xBA, 0x4B, 0x00, 0xA0, 0xC9, 0x3E, 0xC9, 0x3B}};
EFI_GUID GPT_TYPE_LINUXNATIVE = {0xEBD0A0A2, 0xB9E5, 0x4433, {0x87, 0xC0, 0x68, 0xB6, 0xB7, 0x26, 0x99, 0xC7}};
EFI_GUID GPT_TYPE_VMKDIAG = {0x9D275380, 0x40AD, 0x11DB, {0xBF, 0x97, 0x00, 0x0C, 0x29, 0x11, 0xD1, 0xB8}};
EFI_GUID GPT_TYPE_VMFS = {0xAA31E02A, 0x400F, 0x11DB, {0x95, 0x90, 0x00, 0x0C, 0x29, 0x11, 0xD1, 0xB8}};
EFI_GUID GPT_TYPE_VMFSL = {0x4EB2EA39, 0x7855, 0x4790, {0xA7, 0x9E, 0xFA, 0xE4, 0x95, 0xE2, 0x1F, 0x8D}};

#define LAST_MINUS_34 0 /* end marker in the table: last usable LBA */

/* Reference §3, in on-disk order. */
static const struct {
    UINT32 num;
    UINT64 start, end;
    EFI_GUID *type;
    UINT64 attrs;
} esxi_rows[] = {
    {1, 64, 8191, &GPT_TYPE_ESP, GPT_ATTR_BOOTABLE},
    {5, 8224, 520191, &GPT_TYPE_LINUXNATIVE, 0},
    {6, 520224, 1032191, &GPT_TYPE_LINUXNATIVE, 0},
    {7, 1032224, 1257471, &GPT_TYPE_VMKDIAG, 0},
    {8, 1257504, 1843199, &GPT_TYPE_LINUXNATIVE, 0},
    {9, 1843200, 7086079, &GPT_TYPE_VMKDIAG, 0},
    {2, 7086080, 15472639, &GPT_TYPE_LINUXNATIVE, 0},
    {3, 15472640, LAST_MINUS_34, &GPT_TYPE_VMFS, 0},
};

#define GIB_SECTORS(tenths) ((UINT64)(tenths) * 2097152ULL / 10) /* tenths of GiB in 512-byte sectors */
#define SCRATCH_SECTORS 8388608ULL                               /* 4 GiB */

UINT64 gpt_min_sectors(void) {
    return 1843200ULL + 20480ULL; /* + 10 MiB */
}

static void new_guid(EFI_GUID *g) {
    UINT64 a = sim_random(), b = sim_random();
    CopyMem(g, &a, 8);
    CopyMem((UINT8 *)g + 8, &b, 8);
    g->Data3 = (UINT16)((g->Data3 & 0x0fff) | 0x4000);
    g->Data4[0] = (UINT8)((g->Data4[0] & 0x3f) | 0x80);
}

static void add(gpt_table *t, UINT32 num, UINT64 start, UINT64 end, EFI_GUID *type, UINT64 attrs) {
    gpt_part *p = &t->parts[t->count++];
    ZeroMem(p, sizeof *p);
    p->num = num;
    p->start = start;
    p->end = end;
    p->type = *type;
    p->attrs = attrs;
    new_guid(&p->unique);
}

BOOLEAN gpt_esxi_layout(UINT64 total, BOOLEAN usb, gpt_table *out) {
    ZeroMem(out, sizeof *out);
    out->total = total;
    new_guid(&out->disk_guid);
    if (total < gpt_min_sectors()) return FALSE;
    UINT64 last = total - 34;
    for (UINTN i = 0; i < 5; i++) /* 1, 5, 6, 7, 8 always */
        add(out, esxi_rows[i].num, esxi_rows[i].start, esxi_rows[i].end, esxi_rows[i].type, esxi_rows[i].attrs);
    if (usb || total < GIB_SECTORS(52)) {
        /* USB/SD (or a small local disk): the extended coredump from 3.4 GiB, never scratch/VMFS. */
        if (total >= GIB_SECTORS(34) && esxi_rows[5].end <= last) add(out, 9, esxi_rows[5].start, esxi_rows[5].end, esxi_rows[5].type, 0);
        return TRUE;
    }
    if (total <= GIB_SECTORS(85)) {
        /* local 5.2-8.5 GiB: scratch at 1843200, then VMFS */
        UINT64 s_end = 1843200ULL + SCRATCH_SECTORS - 1;
        add(out, 2, 1843200ULL, s_end, &GPT_TYPE_LINUXNATIVE, 0);
        if (s_end + 1 < last) add(out, 3, s_end + 1, last, &GPT_TYPE_VMFS, 0);
        return TRUE;
    }
    for (UINTN i = 5; i < ARRAY_LEN(esxi_rows); i++) {
        UINT64 end = esxi_rows[i].end == LAST_MINUS_34 ? last : esxi_rows[i].end;
        if (esxi_rows[i].start > last) break;
        add(out, esxi_rows[i].num, esxi_rows[i].start, end, esxi_rows[i].type, esxi_rows[i].attrs);
    }
    return TRUE;
}

/* ---- ESXi 7.0 / 8.0 (esxi-8.0 reference: "The rule the simulator follows") ---- */

#define MIB_SECTORS 2048ULL
#define E8_P1_START 64ULL
#define E8_P1_END 204863ULL            /* 100 MiB system partition */
#define E8_P5_START 208896ULL          /* 102 MiB */
#define E8_BB_SMALL 1024000ULL         /* 500 MiB bootbanks on media under 10 GiB */
#define E8_BB_MID 2097152ULL           /* 1 GiB under 28 GiB */
#define E8_BB_LARGE 8386560ULL         /* 4 GiB less 1 MiB from 28 GiB, as published */
#define E8_CAP_MIN 67108863ULL         /* systemMediaSize=min: OSData ends by 32 GiB */
#define E8_CAP_SMALL 134217727ULL      /* small: 64 GiB */
#define E8_CAP_DEFAULT 268435455ULL    /* default: 128 GiB */
#define E8_DATASTORE_MIN 8388608ULL    /* 4 GiB: a datastore only from there (the published "over 142 GB") */

media_size gpt_media_size(const CHAR16 *v) {
    if (!v) return SMS_DEFAULT;
    if (wcmp_ci(v, L"min") == 0) return SMS_MIN;
    if (wcmp_ci(v, L"small") == 0) return SMS_SMALL;
    if (wcmp_ci(v, L"max") == 0) return SMS_MAX;
    return SMS_DEFAULT;
}

/* The next partition's start: a 1 MiB gap after prev_end, rounded up to a 1 MiB boundary. */
static UINT64 next_start(UINT64 prev_end) {
    UINT64 s = prev_end + 1 + MIB_SECTORS;
    return (s + MIB_SECTORS - 1) / MIB_SECTORS * MIB_SECTORS;
}

BOOLEAN gpt_esxi8_layout(UINT64 total, media_size sms, gpt_table *out) {
    ZeroMem(out, sizeof *out);
    out->total = total;
    new_guid(&out->disk_guid);
    UINT64 last = total - 34;
    UINT64 bb = total < 20971520ULL ? E8_BB_SMALL : total < 58720256ULL ? E8_BB_MID : E8_BB_LARGE;
    UINT64 p6 = next_start(E8_P5_START + bb - 1), p7 = next_start(p6 + bb - 1);
    if (total < 68 || p7 + MIB_SECTORS > last) return FALSE;
    add(out, 1, E8_P1_START, E8_P1_END, &GPT_TYPE_ESP, GPT_ATTR_BOOTABLE);
    add(out, 5, E8_P5_START, E8_P5_START + bb - 1, &GPT_TYPE_LINUXNATIVE, 0);
    add(out, 6, p6, p6 + bb - 1, &GPT_TYPE_LINUXNATIVE, 0);
    UINT64 cap = sms == SMS_MIN ? E8_CAP_MIN : sms == SMS_SMALL ? E8_CAP_SMALL : sms == SMS_MAX ? last : E8_CAP_DEFAULT;
    UINT64 p7_end = last < cap ? last : cap;
    add(out, 7, p7, p7_end, &GPT_TYPE_VMFSL, 0);
    if (p7_end < last) {
        UINT64 p8 = next_start(p7_end);
        if (p8 <= last && last - p8 + 1 >= E8_DATASTORE_MIN) add(out, 8, p8, last, &GPT_TYPE_VMFS, 0);
    }
    return TRUE;
}

#pragma pack(1)
typedef struct {
    UINT64 sig;
    UINT32 rev, hsize, hcrc, reserved;
    UINT64 my_lba, alt_lba, first, last;
    EFI_GUID disk_guid;
    UINT64 entries_lba;
    UINT32 n_entries, entry_size, entries_crc;
} raw_hdr;
typedef struct {
    EFI_GUID type, unique;
    UINT64 start, end, attrs;
    CHAR16 name[36];
} raw_entry;
#pragma pack()

#define GPT_SIG 0x5452415020494645ULL /* "EFI PART" */

static void fill_hdr(raw_hdr *h, const gpt_table *t, UINT64 my, UINT64 alt, UINT64 entries, UINT32 ecrc) {
    ZeroMem(h, sizeof *h);
    h->sig = GPT_SIG;
    h->rev = 0x00010000;
    h->hsize = 92;
    h->my_lba = my;
    h->alt_lba = alt;
    h->first = 34;
    h->last = t->total - 34;
    h->disk_guid = t->disk_guid;
    h->entries_lba = entries;
    h->n_entries = GPT_ENTRIES;
    h->entry_size = 128;
    h->entries_crc = ecrc;
    h->hcrc = crc32(h, 92);
}

EFI_STATUS gpt_write(const disk_t *d, const gpt_table *t) {
    const UINTN ebytes = GPT_ENTRIES * 128; /* 32 sectors */
    UINT8 *sec = xalloc_pages(512);
    raw_entry *ents = xalloc_pages(ebytes);
    EFI_STATUS st;
    for (UINTN i = 0; i < t->count; i++) {
        const gpt_part *p = &t->parts[i];
        raw_entry *e = &ents[p->num - 1];
        e->type = p->type;
        e->unique = p->unique;
        e->start = p->start;
        e->end = p->end;
        e->attrs = p->attrs;
        for (UINTN c = 0; c < 36 && p->name[c]; c++) e->name[c] = p->name[c];
    }
    UINT32 ecrc = crc32(ents, ebytes);
    /* protective MBR */
    UINT64 mbr_size = t->total - 1 > 0xFFFFFFFFULL ? 0xFFFFFFFFULL : t->total - 1;
    UINT8 *pe = sec + 446;
    pe[1] = 0x00; pe[2] = 0x02; pe[3] = 0x00;      /* CHS 0/0/2 */
    pe[4] = 0xEE;
    pe[5] = 0xFF; pe[6] = 0xFF; pe[7] = 0xFF;      /* CHS end */
    pe[8] = 1;                                     /* start LBA 1 */
    pe[12] = (UINT8)mbr_size; pe[13] = (UINT8)(mbr_size >> 8);
    pe[14] = (UINT8)(mbr_size >> 16); pe[15] = (UINT8)(mbr_size >> 24);
    sec[510] = 0x55; sec[511] = 0xAA;
    st = disk_write(d, 0, 1, sec);
    if (!EFI_ERROR(st)) st = disk_write(d, 2, ebytes / 512, ents);
    if (!EFI_ERROR(st)) st = disk_write(d, t->total - 33, ebytes / 512, ents);
    if (!EFI_ERROR(st)) {
        ZeroMem(sec, 512);
        fill_hdr((raw_hdr *)sec, t, 1, t->total - 1, 2, ecrc);
        st = disk_write(d, 1, 1, sec);
    }
    if (!EFI_ERROR(st)) {
        ZeroMem(sec, 512);
        fill_hdr((raw_hdr *)sec, t, t->total - 1, 1, t->total - 33, ecrc);
        st = disk_write(d, t->total - 1, 1, sec);
    }
    if (!EFI_ERROR(st)) st = disk_flush(d);
    xfree_pages(sec, 512);
    xfree_pages(ents, ebytes);
    return st;
}

static BOOLEAN read_at(const disk_t *d, UINT64 lba, gpt_table *t) {
    UINT8 *sec = xalloc_pages(512);
    BOOLEAN ok = FALSE;
    raw_hdr *h = (raw_hdr *)sec;
    if (d->block_size == 512 && !EFI_ERROR(disk_read(d, lba, 1, sec)) && h->sig == GPT_SIG && h->hsize >= 92 &&
        h->hsize <= 512 && h->entry_size == 128 && h->n_entries <= 256 && h->n_entries > 0) {
        UINT32 want = h->hcrc;
        h->hcrc = 0;
        if (crc32(h, h->hsize) == want) {
            UINTN ebytes = h->n_entries * 128;
            raw_entry *ents = xalloc_pages(ebytes);
            if (!EFI_ERROR(disk_read(d, h->entries_lba, (ebytes + 511) / 512, ents)) && crc32(ents, ebytes) == h->entries_crc) {
                ZeroMem(t, sizeof *t);
                t->total = d->sectors;
                t->disk_guid = h->disk_guid;
                for (UINT32 i = 0; i < h->n_entries && t->count < GPT_MAX_PARTS; i++) {
                    EFI_GUID zero;
                    ZeroMem(&zero, sizeof zero);
                    if (CompareGuid(&ents[i].type, &zero) == 0) continue;
                    gpt_part *p = &t->parts[t->count++];
                    p->num = i + 1;
                    p->type = ents[i].type;
                    p->unique = ents[i].unique;
                    p->start = ents[i].start;
                    p->end = ents[i].end;
                    p->attrs = ents[i].attrs;
                    for (UINTN c = 0; c < 36; c++) p->name[c] = ents[i].name[c];
                    p->name[36] = 0;
                }
                /* partedUtil order: by start sector */
                for (UINTN i = 1; i < t->count; i++)
                    for (UINTN j = i; j > 0 && t->parts[j - 1].start > t->parts[j].start; j--) {
                        gpt_part x = t->parts[j];
                        t->parts[j] = t->parts[j - 1];
                        t->parts[j - 1] = x;
                    }
                ok = TRUE;
            }
            xfree_pages(ents, ebytes);
        }
    }
    xfree_pages(sec, 512);
    return ok;
}

BOOLEAN gpt_read(const disk_t *d, gpt_table *t) {
    if (d->sectors < 68) return FALSE;
    return read_at(d, 1, t) || read_at(d, d->sectors - 1, t);
}

BOOLEAN disk_has_partitions(const disk_t *d) {
    gpt_table *t = xalloc(sizeof *t);
    BOOLEAN any = gpt_read(d, t) && t->count > 0;
    xfree(t);
    if (any || d->block_size != 512) return any;
    UINT8 *sec = xalloc_pages(512);
    if (!EFI_ERROR(disk_read(d, 0, 1, sec)) && sec[510] == 0x55 && sec[511] == 0xAA) {
        for (UINTN i = 0; i < 4; i++)
            if (sec[446 + 16 * i + 4] != 0 && sec[446 + 16 * i + 4] != 0xEE) any = TRUE;
    }
    xfree_pages(sec, 512);
    return any;
}

const gpt_part *gpt_find(const gpt_table *t, UINT32 num) {
    for (UINTN i = 0; i < t->count; i++)
        if (t->parts[i].num == num) return &t->parts[i];
    return NULL;
}

const CHAR16 *gpt_type_name(const EFI_GUID *g) {
    if (CompareGuid((EFI_GUID *)g, &GPT_TYPE_ESP) == 0) return L"systemPartition";
    if (CompareGuid((EFI_GUID *)g, &GPT_TYPE_LINUXNATIVE) == 0) return L"linuxNative";
    if (CompareGuid((EFI_GUID *)g, &GPT_TYPE_VMKDIAG) == 0) return L"vmkDiagnostic";
    if (CompareGuid((EFI_GUID *)g, &GPT_TYPE_VMFS) == 0) return L"vmfs";
    if (CompareGuid((EFI_GUID *)g, &GPT_TYPE_VMFSL) == 0) return L"vmfsl";
    return NULL;
}

UINT32 gpt_parted_attr(const gpt_part *p) {
    return (p->attrs & GPT_ATTR_BOOTABLE) ? 128 : 0;
}
