/* install.c - write the profile's ESXi layout. 6.x: GPT (§3), partition payloads copied raw from the ISO,
 * p7 zeroed, the VMFS-like header on p3. 7.0/8.0: GPT (1, 5, 6, 7, maybe 8), payloads on 1, 5, 6, a
 * VMFS-L-like header on OSData (7), the VMFS-like header on the datastore (8). Placeholders @@NAME@@ in
 * the payloads (boot.cfg, state.cfg) are filled in. */
#include "installer.h"

#define CHUNK_CD_BLOCKS 512 /* 1 MiB */
#define VMFS_LVM_MAGIC 0xC001D00DU
#define VMFS_FS_MAGIC 0x2FABF15EU

typedef struct {
    const CHAR8 *name;
    CHAR8 value[256];
} patch_t;

typedef struct {
    progress_fn progress;
    UINTN done, total; /* weights */
} prog_t;

static void step(prog_t *p, UINTN weight, const CHAR16 *what) {
    p->done += weight;
    if (p->progress) p->progress(p->total ? (p->done * 100 / p->total > 99 ? 99 : p->done * 100 / p->total) : 0, what);
}

static void apply_patches(UINT8 *buf, UINTN len, patch_t *patches, UINTN n) {
    for (UINTN i = 0; i < n; i++) {
        CHAR8 token[40];
        UINTN tl;
        SetMem(token, sizeof token, 0);
        token[0] = token[1] = '@';
        tl = 2;
        for (UINTN j = 0; patches[i].name[j] && tl < 36; j++) token[tl++] = patches[i].name[j];
        token[tl++] = '@';
        token[tl++] = '@';
        for (UINTN off = 0; off + tl <= len; off++) {
            if (buf[off] != '@' || CompareMem(buf + off, token, tl) != 0) continue;
            UINTN end = off;
            while (end < len && buf[end] != '\n') end++;
            UINTN vl = alen(patches[i].value);
            for (UINTN k = off; k < end; k++) buf[k] = (k - off < vl) ? (UINT8)patches[i].value[k - off] : ' ';
        }
    }
}

static EFI_STATUS copy_payload(inst_t *s, const CHAR16 *file, const gpt_part *part, patch_t *patches, UINTN np,
                               CHAR16 *err, UINTN errcap) {
    iso_file f;
    if (!s->have_cd || !iso_find(&s->cd, file, &f)) {
        SPrint(err, errcap * sizeof(CHAR16), L"cannot find %s on the installation media", file);
        return EFI_NOT_FOUND;
    }
    UINT64 room = (part->end - part->start + 1) * 512;
    if (f.size > room) {
        SPrint(err, errcap * sizeof(CHAR16), L"%s does not fit its partition", file);
        return EFI_BAD_BUFFER_SIZE;
    }
    UINTN bytes = CHUNK_CD_BLOCKS * 2048;
    UINT8 *buf = xalloc_pages(bytes);
    EFI_STATUS st = EFI_SUCCESS;
    for (UINT32 off = 0; off < f.size && !EFI_ERROR(st); off += bytes) {
        UINT32 len = f.size - off < bytes ? f.size - off : (UINT32)bytes;
        st = disk_read(&s->cd, f.lba + off / 2048, (len + 2047) / 2048, buf);
        if (EFI_ERROR(st)) {
            SPrint(err, errcap * sizeof(CHAR16), L"cannot read %s from the installation media (%r)", file, st);
            break;
        }
        if (np) apply_patches(buf, len, patches, np);
        st = disk_write(&s->target, part->start + off / 512, (len + 511) / 512, buf);
        if (EFI_ERROR(st)) SPrint(err, errcap * sizeof(CHAR16), L"cannot write %s (%r)", s->target.name, st);
    }
    xfree_pages(buf, bytes);
    return st;
}

/* OSData (VMFS-L): its first MiB zeroed, then a header with the volume label ESXi gives it. */
static EFI_STATUS write_osdata(inst_t *s, const gpt_part *p) {
    static const CHAR16 hex[] = L"0123456789abcdef";
    UINT8 *sec = xalloc_pages(512);
    CHAR8 label[48];
    const UINT8 *g = (const UINT8 *)&p->unique;
    UINTN o = 0;
    const CHAR8 *prefix = s->target.usb ? (const CHAR8 *)"LOCKER-" : (const CHAR8 *)"OSDATA-";
    for (UINTN i = 0; prefix[i]; i++) label[o++] = prefix[i];
    for (UINTN i = 0; i < 16; i++) {
        if (i == 4 || i == 8 || i == 10) label[o++] = '-';
        label[o++] = (CHAR8)hex[g[i] >> 4];
        label[o++] = (CHAR8)hex[g[i] & 15];
    }
    label[o] = 0;
    EFI_STATUS st = disk_zero(&s->target, p->start, 2048 + 1);
    *(UINT32 *)sec = VMFS_LVM_MAGIC;
    CopyMem(sec + 16, "labctl simulator VMFS-L (ESX-OSData)", 36);
    CopyMem(sec + 64, label, o + 1);
    if (!EFI_ERROR(st)) st = disk_write(&s->target, p->start + 2048, 1, sec);
    xfree_pages(sec, 512);
    return st;
}

static BOOLEAN install_layout(inst_t *s, gpt_table *t) {
    if (PROFILE->layout == LAYOUT_ESXI8) {
        CHAR16 v[16];
        media_size sms = bootopts_get(s->options, L"systemMediaSize", v, ARRAY_LEN(v)) ? gpt_media_size(v)
                                                                                      : SMS_DEFAULT;
        return gpt_esxi8_layout(s->target.sectors, sms, t);
    }
    return gpt_esxi_layout(s->target.sectors, s->target.usb, t);
}

static EFI_STATUS write_vmfs(inst_t *s, const gpt_part *p) {
    UINT8 *sec = xalloc_pages(512);
    EFI_STATUS st = disk_zero(&s->target, p->start, 2048 + 1);
    *(UINT32 *)sec = VMFS_LVM_MAGIC;
    CopyMem(sec + 16, "labctl simulator VMFS-5 LVM header", 34);
    if (!EFI_ERROR(st)) st = disk_write(&s->target, p->start + 2048, 1, sec);
    ZeroMem(sec, 512);
    *(UINT32 *)sec = VMFS_FS_MAGIC;
    CopyMem(sec + 16, "datastore1", 10);
    if (!EFI_ERROR(st) && p->start + 38912 <= p->end) st = disk_write(&s->target, p->start + 38912, 1, sec);
    xfree_pages(sec, 512);
    return st;
}

/* Options for the installed system: the installer's, without the installer-only words. */
static void installed_kernelopt(const CHAR16 *opts, CHAR8 *out, UINTN cap) {
    UINTN o = 0;
    const CHAR16 *p = opts;
    while (*p) {
        while (*p == ' ') p++;
        UINTN wl = 0;
        while (p[wl] && p[wl] != ' ') wl++;
        BOOLEAN skip = (wl == 9 && wncmp_ci(p, L"runweasel", 9) == 0) || (wl == 9 && wncmp_ci(p, L"cdromBoot", 9) == 0) ||
                       (wl > 3 && wncmp_ci(p, L"ks=", 3) == 0);
        if (wl && !skip) {
            if (o && o + 1 < cap) out[o++] = ' ';
            for (UINTN i = 0; i < wl && o + 1 < cap; i++) out[o++] = (CHAR8)(p[i] < 0x80 ? p[i] : '?');
        }
        p += wl;
    }
    out[o] = 0;
}

EFI_STATUS install_to_disk(inst_t *s, progress_fn progress, CHAR16 *err, UINTN errcap) {
    gpt_table *t = xalloc(sizeof *t);
    prog_t pr = {progress, 0, 0};
    EFI_STATUS st = EFI_SUCCESS;
    BOOLEAN usb = s->target.usb;
    BOOLEAN keep_vmfs = (s->mode != MODE_INSTALL_OVERWRITE) && inst_has_vmfs(&s->target);
    patch_t patches[5];
    CHAR16 hash[26];
    err[0] = 0;

    if (!install_layout(s, t)) {
        wcopy(err, errcap, PROFILE->too_small);
        xfree(t);
        return EFI_VOLUME_FULL;
    }
    UINT32 datastore = PROFILE->layout == LAYOUT_ESXI8 ? 8 : 3;
    if (s->novmfs) /* kickstart --novmfsondisk */
        for (UINTN i = 0; i < t->count; i++)
            if (t->parts[i].num == datastore) t->count = i;

    ZeroMem(patches, sizeof patches);
    patches[0].name = (const CHAR8 *)"KERNELOPT";
    installed_kernelopt(s->options, patches[0].value, sizeof patches[0].value);
    patches[1].name = (const CHAR8 *)"DISK";
    w2a(patches[1].value, sizeof patches[1].value, s->target.name);
    patches[2].name = (const CHAR8 *)"MEDIA";
    w2a(patches[2].value, sizeof patches[2].value, usb ? L"usb" : L"local");
    patches[3].name = (const CHAR8 *)"KEYBOARD";
    w2a(patches[3].value, sizeof patches[3].value, keyboard_names[s->keyboard]);
    patches[4].name = (const CHAR8 *)"ROOTPW";
    sim_pwhash(s->pw, hash);
    w2a(patches[4].value, sizeof patches[4].value, hash);
    patch_t pvm = {(const CHAR8 *)"PREFERVMKLINUX", {0}};
    w2a(pvm.value, sizeof pvm.value, s->prefer_vmklinux ? L"TRUE" : L"FALSE");
    patch_t all[6] = {patches[0], patches[1], patches[2], patches[3], patches[4], pvm};

    pr.total = 2 + 10 * t->count;
    step(&pr, 1, L"Partitioning the disk");
    sim_delay(0, 4000);
    st = gpt_write(&s->target, t);
    if (EFI_ERROR(st)) SPrint(err, errcap * sizeof(CHAR16), L"cannot write the partition table (%r)", st);
    for (UINTN i = 0; i < t->count && !EFI_ERROR(st); i++) {
        const gpt_part *p = &t->parts[i];
        CHAR16 file[24];
        SPrint(file, sizeof file, L"/PAYLOAD/P%d.IMG", p->num);
        if (PROFILE->layout == LAYOUT_ESXI8 && p->num >= 7) { /* OSData, datastore: no payloads */
            if (p->num == 7) {
                step(&pr, 5, L"Creating the OSData volume");
                st = write_osdata(s, p);
            } else {
                step(&pr, 5, L"Creating the VMFS datastore");
                if (!keep_vmfs) st = write_vmfs(s, p);
            }
            if (EFI_ERROR(st) && !err[0]) SPrint(err, errcap * sizeof(CHAR16), L"cannot write %s (%r)", s->target.name, st);
            sim_delay(0, 9000);
            step(&pr, 5, L"");
            continue;
        }
        sim_note((const CHAR8 *)"writing a partition"); /* the guest's own work under emulation, timed by the host */
        switch (p->num) {
        case 1: step(&pr, 5, L"Installing the boot loader"); st = copy_payload(s, file, p, NULL, 0, err, errcap); break;
        case 5: step(&pr, 5, L"Installing the boot bank"); st = copy_payload(s, file, p, all, ARRAY_LEN(all), err, errcap); break;
        case 6: step(&pr, 5, L"Installing the alternate boot bank"); st = copy_payload(s, file, p, NULL, 0, err, errcap); break;
        case 8: step(&pr, 5, L"Installing the store"); st = copy_payload(s, file, p, NULL, 0, err, errcap); break;
        case 2: step(&pr, 5, L"Creating the scratch partition"); st = copy_payload(s, file, p, NULL, 0, err, errcap); break;
        case 7: step(&pr, 5, L"Clearing the coredump partition"); st = disk_zero(&s->target, p->start, p->end - p->start + 1); break;
        case 9: step(&pr, 5, L"Clearing the coredump partition"); st = disk_zero(&s->target, p->start, 2048); break;
        case 3:
            step(&pr, 5, L"Creating the VMFS datastore");
            if (!keep_vmfs) st = write_vmfs(s, p);
            break;
        default: break;
        }
        sim_note((const CHAR8 *)"partition written");
        if (EFI_ERROR(st) && !err[0]) SPrint(err, errcap * sizeof(CHAR16), L"cannot write %s (%r)", s->target.name, st);
        sim_delay(0, 9000);
        step(&pr, 5, L"");
    }
    if (!EFI_ERROR(st)) st = disk_flush(&s->target);
    xfree(t);
    return st;
}
