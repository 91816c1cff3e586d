/* existing.c - what is on a disk already, and the "ESXi Found" / "ESXi and VMFS Found" / "VMFS Found" /
 * "Confirm Disk Selection" dialogs. */
#include "installer.h"

#define VMFS_LVM_MAGIC 0xC001D00DU /* at partition offset 1 MiB */

BOOLEAN inst_has_vmfs(const disk_t *d) {
    gpt_table *t = xalloc(sizeof *t);
    BOOLEAN found = FALSE;
    if (d->block_size == 512 && gpt_read(d, t)) {
        for (UINTN i = 0; i < t->count && !found; i++) {
            if (CompareGuid(&t->parts[i].type, &GPT_TYPE_VMFS) != 0) continue;
            UINT32 *sec = xalloc_pages(512);
            if (t->parts[i].start + 2048 <= t->parts[i].end && !EFI_ERROR(disk_read(d, t->parts[i].start + 2048, 1, sec)))
                found = sec[0] == VMFS_LVM_MAGIC;
            xfree_pages(sec, 512);
        }
    }
    xfree(t);
    return found;
}

existing_kind inst_probe_existing(const disk_t *d, BOOLEAN *vmfs) {
    gpt_table *t = xalloc(sizeof *t);
    existing_kind k = EXIST_NONE;
    *vmfs = inst_has_vmfs(d);
    if (d->block_size == 512 && gpt_read(d, t)) {
        const gpt_part *p1 = gpt_find(t, 1), *p5 = gpt_find(t, 5);
        /* the bootbank where 6.x (8224) or 7.0/8.0 (208896) put it */
        BOOLEAN esxi = p1 && p5 && p1->start == 64 && (p5->start == 8224 || p5->start == 208896) &&
                       CompareGuid((EFI_GUID *)&p1->type, &GPT_TYPE_ESP) == 0;
        if (esxi) k = *vmfs ? EXIST_ESXI_VMFS : EXIST_ESXI;
        else if (*vmfs) k = EXIST_VMFS;
        else if (t->count) k = EXIST_PARTITIONS;
    }
    xfree(t);
    if (k == EXIST_NONE && disk_has_partitions(d)) k = EXIST_PARTITIONS;
    return k;
}

static const CHAR16 *const found_options[] = {
    L"Upgrade ESXi, preserve VMFS datastore",
    L"Install ESXi, preserve VMFS datastore",
    L"Install ESXi, overwrite VMFS datastore",
};

screen_id scr_existing(inst_t *s) {
    dlg_t d;
    const CHAR16 *title;
    BOOLEAN choice = s->existing != EXIST_PARTITIONS;
    UINTN sel = 0;
    switch (s->existing) {
    case EXIST_ESXI_VMFS: title = L"ESXi and VMFS Found"; break;
    case EXIST_ESXI: title = L"ESXi Found"; break;
    case EXIST_VMFS: title = L"VMFS Found"; break;
    default: title = L"Confirm Disk Selection"; break;
    }
    for (;;) {
        dlg_open(&d, 70, 16, title, L"(Esc) Cancel      (Enter) OK");
        if (!choice) {
            dlg_line(&d, 3, A_DIALOG, L"The selected storage device");
            dlg_line(&d, 4, A_DIALOG, L"contains at least one partition with existing data.");
            dlg_line(&d, 6, A_DIALOG, L"If you continue the selected disk will be overwritten.");
        } else {
            if (s->existing == EXIST_VMFS) {
                dlg_line(&d, 3, A_DIALOG, L"The selected storage device contains a VMFS datastore.");
            } else {
                dlg_line(&d, 3, A_DIALOG, s->existing == EXIST_ESXI_VMFS
                                              ? L"The selected storage device contains an installation of ESXi"
                                              : L"The selected storage device contains an installation of ESXi.");
                if (s->existing == EXIST_ESXI_VMFS) dlg_line(&d, 4, A_DIALOG, L"and a VMFS datastore.");
            }
            dlg_line(&d, 5, A_DIALOG, L"Choose whether to upgrade or install and overwrite the existing");
            dlg_line(&d, 6, A_DIALOG, L"ESXi installation.");
        }
        for (;;) {
            if (choice) {
                for (UINTN i = 0; i < ARRAY_LEN(found_options); i++) {
                    CHAR16 line[64];
                    SPrint(line, sizeof line, L"(%s) %s", i == sel ? L"X" : L" ", found_options[i]);
                    tui_text_w(d.row + 8 + i, d.col + 4, 50, i == sel ? A_DHILITE : A_DIALOG, line);
                }
            }
            tui_key k;
            if (!tui_read_key(&k, 0)) continue;
            if (k.scan == K_ESC) { confirm_cancel(); break; }
            if (choice && k.scan == K_UP && sel > 0) sel--;
            else if (choice && k.scan == K_DOWN && sel + 1 < ARRAY_LEN(found_options)) sel++;
            else if (k.ch == CH_ENTER) {
                s->mode = !choice ? MODE_INSTALL_OVERWRITE
                          : sel == 0 ? MODE_UPGRADE : sel == 1 ? MODE_INSTALL_PRESERVE : MODE_INSTALL_OVERWRITE;
                return SCR_KEYBOARD;
            }
        }
    }
}
