/* osdata.c - "Select a Disk to store ESX OSData" (8.0, after a USB/SD target in the disk list). The list
 * holds the install disk, highlighted; Enter keeps OSData there (partition 7, label LOCKER-<uuid>).
 * Not simulated: OSData on a second disk (the real installer lists the other local disks too). */
#include "installer.h"

#define LIST_W 70

screen_id scr_osdata(inst_t *s) {
    for (;;) {
        dlg_t d;
        CHAR16 row[LIST_W + 1], label[64], size[16], name[LIST_W + 1];
        dlg_open(&d, 76, 17, L"Select a Disk to store ESX OSData",
                 L"(Esc) Cancel    (F9) Back    (Enter) Continue");
        dlg_line(&d, 3, A_DIALOG, L"The selected boot device is a USB/SD device. OSData holds the system's");
        dlg_line(&d, 4, A_DIALOG, L"logs, core dumps, VMware Tools and scratch. Select where to store it.");
        tui_text(d.row + 6, d.col + 3, A_DIALOG, L"Storage Device");
        tui_text(d.row + 6, d.col + 3 + LIST_W - 8, A_DIALOG, L"Capacity");
        disk_label(&s->osdata, label, ARRAY_LEN(label));
        SPrint(name, sizeof name, L"   %s (%s)", label, s->osdata.name);
        fmt_capacity(size, ARRAY_LEN(size), s->osdata.sectors * s->osdata.block_size);
        UINTN n = wlen(name), m = wlen(size), i = 0;
        for (; i < LIST_W && i < n; i++) row[i] = name[i];
        for (; i < LIST_W; i++) row[i] = ' ';
        for (UINTN j = 0; j < m && j < LIST_W; j++) row[LIST_W - m + j] = size[j];
        row[LIST_W] = 0;
        tui_text(d.row + 8, d.col + 3, A_DHILITE, row);
        for (;;) {
            tui_key k;
            if (!tui_read_key(&k, 0)) continue;
            if (k.ch == CH_ENTER) return s->existing == EXIST_NONE ? SCR_KEYBOARD : SCR_EXISTING;
            if (k.scan == K_F9) return SCR_DISKS;
            if (k.scan == K_ESC) {
                confirm_cancel();
                break;
            }
        }
    }
}
