/* welcome.c - "Welcome to the VMware ESXi 6.7.0 Installation" */
#include "installer.h"

screen_id scr_welcome(inst_t *s) {
    for (;;) {
        dlg_t d;
        dlg_open(&d, 64, 16, L"Welcome to the VMware ESXi 6.7.0 Installation", L"(Esc) Cancel      (Enter) Continue");
        dlg_line(&d, 3, A_DIALOG, L"VMware ESXi 6.7.0 installs on most systems but only");
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
