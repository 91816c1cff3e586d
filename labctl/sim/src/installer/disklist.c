/* disklist.c - "Select a Disk to Install or Upgrade": Local/Remote groups, F1 details, F5 refresh. */
#include "installer.h"

#define LIST_COL_W 60
#define CAP_COL_W 10

static void row_text(inst_t *s, UINTN idx, CHAR16 *out, UINTN cap) {
    const disk_t *d = &s->all[idx];
    CHAR16 label[64], name[LIST_COL_W + 1], size[16];
    disk_label(d, label, ARRAY_LEN(label));
    SPrint(name, sizeof name, L"%s%s (%s)", s->vmfs[idx] ? L" * " : L"   ", label, d->name);
    fmt_capacity(size, ARRAY_LEN(size), d->sectors * d->block_size);
    UINTN i = 0, n = wlen(name), m = wlen(size);
    for (; i < LIST_COL_W && i < n && i + 1 < cap; i++) out[i] = name[i];
    for (; i < LIST_COL_W; i++) out[i] = ' ';
    for (UINTN j = 0; j < CAP_COL_W; j++) out[i + j] = (j + m >= CAP_COL_W) ? size[j + m - CAP_COL_W] : ' ';
    out[LIST_COL_W + CAP_COL_W] = 0;
}

static void details(inst_t *s, const disk_t *d) {
    CHAR16 l[7][96], label[64], size[16];
    const CHAR16 *lines[7];
    BOOLEAN vmfs = FALSE;
    existing_kind ex = inst_probe_existing(d, &vmfs);
    disk_label(d, label, ARRAY_LEN(label));
    fmt_capacity(size, ARRAY_LEN(size), d->sectors * d->block_size);
    SPrint(l[0], sizeof l[0], L"Model/Vendor:    %s", label);
    SPrint(l[1], sizeof l[1], L"Full Disk Name:  %s", d->name);
    SPrint(l[2], sizeof l[2], L"Interface Type:  %s", d->usb ? L"usb" : L"sata");
    SPrint(l[3], sizeof l[3], L"Capacity:        %s", size);
    SPrint(l[4], sizeof l[4], L"Path:            %s", d->name + 4);
    SPrint(l[5], sizeof l[5], L"ESX(i) Found:    %s",
           (ex == EXIST_ESXI || ex == EXIST_ESXI_VMFS) ? inst_release() : L"None");
    SPrint(l[6], sizeof l[6], L"Datastores:      %s", vmfs ? L"datastore1" : L"None");
    for (UINTN i = 0; i < 7; i++) lines[i] = l[i];
    dlg_message(L"Disk Details", lines, 7);
}

static void too_small(void) {
    const CHAR16 *msg[] = {PROFILE->too_small};
    dlg_message(PROFILE->too_small_title, msg, 1);
}

BOOLEAN inst_disk_big_enough(const disk_t *d) {
    return d->block_size == 512 && d->sectors * d->block_size >= PROFILE->min_bytes &&
           d->sectors >= gpt_min_sectors();
}

screen_id scr_disks(inst_t *s) {
    for (;;) {
        dlg_t d;
        CHAR16 line[TUI_COLS + 1];
        dlg_open(&d, 76, 23, L"Select a Disk to Install or Upgrade",
                 L"(Esc) Cancel    (F1) Details    (F5) Refresh    (Enter) Continue");
        dlg_line(&d, 2, A_DIALOG, L"* Contains a VMFS partition");
        tui_text_w(d.row + 4, d.col + 3, LIST_COL_W, A_DIALOG, L"Storage Device");
        tui_text(d.row + 4, d.col + 3 + LIST_COL_W + CAP_COL_W - 8, A_DIALOG, L"Capacity");
        for (UINTN i = 0; i < LIST_COL_W + CAP_COL_W; i++) line[i] = '-';
        line[LIST_COL_W + CAP_COL_W] = 0;
        tui_text(d.row + 5, d.col + 3, A_DIALOG, line);
        for (;;) {
            UINTN r = d.row + 6;
            BOOLEAN any_local = FALSE;
            tui_fill(r, d.col + 3, LIST_COL_W + CAP_COL_W, 12, A_DIALOG);
            tui_text(r++, d.col + 3, A_DIALOG, L"Local:");
            for (UINTN v = 0; v < s->n_visible; v++) {
                row_text(s, s->visible[v], line, ARRAY_LEN(line));
                tui_text(r++, d.col + 3, v == s->sel ? A_DHILITE : A_DIALOG, line);
                any_local = TRUE;
            }
            if (!any_local) tui_text(r++, d.col + 3, A_DIALOG, L"   (none)");
            tui_text(r++, d.col + 3, A_DIALOG, L"Remote:");
            tui_text(r++, d.col + 3, A_DIALOG, L"   (none)");
            tui_key k;
            if (!tui_read_key(&k, 0)) continue;
            if (k.scan == K_UP && s->sel > 0) s->sel--;
            else if (k.scan == K_DOWN && s->sel + 1 < s->n_visible) s->sel++;
            else if (k.scan == K_ESC) { confirm_cancel(); break; }
            else if (k.scan == K_F1 && s->n_visible) { details(s, &s->all[s->visible[s->sel]]); break; }
            else if (k.scan == K_F5) {
                scan_screen();
                inst_scan_disks(s);
                sim_delay(300, 3000);
                break;
            } else if (k.ch == CH_ENTER && s->n_visible) {
                disk_t *t = &s->all[s->visible[s->sel]];
                if (!inst_disk_big_enough(t)) {
                    too_small();
                    break;
                }
                s->target = *t;
                s->osdata = *t;
                BOOLEAN vmfs = FALSE;
                s->existing = inst_probe_existing(t, &vmfs);
                s->mode = MODE_INSTALL_OVERWRITE;
                if (PROFILE->osdata_screen && t->usb) return SCR_OSDATA;
                return s->existing == EXIST_NONE ? SCR_KEYBOARD : SCR_EXISTING;
            }
        }
    }
}
