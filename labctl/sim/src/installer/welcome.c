/* welcome.c - "Welcome to the VMware ESXi 6.7.0 Installation" (the profile's release) */
#include "installer.h"

screen_id scr_welcome(inst_t *s) {
    for (;;) {
        dlg_t d;
        CHAR16 title[64], l1[64];
        SPrint(title, sizeof title, L"Welcome to the VMware %s Installation", inst_release());
        SPrint(l1, sizeof l1, L"VMware %s installs on most systems but only", inst_release());
        dlg_open(&d, 64, 16, title, L"(Esc) Cancel      (Enter) Continue");
        dlg_line(&d, 3, A_DIALOG, l1);
        dlg_line(&d, 4, A_DIALOG, L"systems on VMware's Compatibility Guide are supported.");
        dlg_line(&d, 6, A_DIALOG, L"Consult the VMware Compatibility Guide at:");
        dlg_line(&d, 7, A_DIALOG, L"http://www.vmware.com/resources/compatibility");
        dlg_line(&d, 9, A_DIALOG, L"Select the operation to perform.");
        for (;;) {
            tui_key k;
            if (!tui_read_key(&k, 0)) continue;
            if (k.ch == CH_ENTER) return SCR_EULA;
            if (k.scan == K_ESC) {
                confirm_cancel();
                break;
            }
        }
    }
}
