/* complete.c - "Installation Complete"; Enter reboots (a kickstart `reboot` does it by itself). */
#include "installer.h"

screen_id scr_complete(inst_t *s) {
    dlg_t d;
    CHAR16 l[3][80];
    SPrint(l[0], sizeof l[0], L"%s has been installed successfully.", inst_release());
    SPrint(l[1], sizeof l[1], L"%s will operate in evaluation mode for 60 days.", inst_release());
    SPrint(l[2], sizeof l[2], L"To use %s after the evaluation period, you must", inst_release());
    dlg_open(&d, 70, 14, L"Installation Complete", L"(Enter) Reboot");
    dlg_line(&d, 3, A_DIALOG, l[0]);
    dlg_line(&d, 5, A_DIALOG, l[1]);
    dlg_line(&d, 6, A_DIALOG, l[2]);
    dlg_line(&d, 7, A_DIALOG, L"register for a VMware product license.");
    dlg_line(&d, 9, A_DIALOG, L"Remove the installation media before rebooting.");
    if (s->ks_reboot) {
        /* a few seconds to read the screen (and for automation to take the CD out) before the reset */
        sim_delay(5000, 5000);
        return SCR_REBOOT;
    }
    for (;;) {
        tui_key k;
        if (tui_read_key(&k, 0) && k.ch == CH_ENTER) return SCR_REBOOT;
    }
}
