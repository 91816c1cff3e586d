/* scan.c - "Scanning..." for available devices. */
#include "installer.h"

void inst_scan_disks(inst_t *s) {
    s->n_all = disks_scan(s->all, DISKS_MAX);
    for (UINTN i = 0; i < s->n_all; i++) s->vmfs[i] = inst_has_vmfs(&s->all[i]);
    s->n_visible = 0;
    /* Local disks first, then USB: the native vmkusb driver of 6.7 does not show the stick unless
     * preferVMklinux=TRUE selects the legacy drivers. No message: the disk is simply absent. From 7.0
     * vmkusb lists it (PROFILE->usb_needs_vmklinux is FALSE). */
    for (int pass = 0; pass < 2; pass++)
        for (UINTN i = 0; i < s->n_all; i++) {
            BOOLEAN usb = s->all[i].usb;
            if ((pass == 0 && !usb) || (pass == 1 && usb && (s->prefer_vmklinux || !PROFILE->usb_needs_vmklinux))) s->visible[s->n_visible++] = i;
        }
    if (s->sel >= s->n_visible) s->sel = 0;
}

void scan_screen(void) {
    dlg_t d;
    dlg_open(&d, 66, 9, L"Scanning...", NULL);
    dlg_center(&d, 4, A_DIALOG, L"Scanning for available devices. This may take a few seconds.");
}

screen_id scr_scan(inst_t *s) {
    scan_screen();
    inst_scan_disks(s);
    sim_delay(300, 4000);
    return SCR_DISKS;
}
