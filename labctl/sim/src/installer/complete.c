/* complete.c - "Installation Complete"; Enter reboots (a kickstart `reboot` does it by itself). */
#include "installer.h"

screen_id scr_complete(inst_t *s) {
    dlg_t d;
    dlg_open(&d, 70, 14, L"Installation Complete", L"(Enter) Reboot");
    dlg_line(&d, 3, A_DIALOG, L"ESXi 6.7.0 has been installed successfully.");
    dlg_line(&d, 5, A_DIALOG, L"ESXi 6.7.0 will operate in evaluation mode for 60 days.");
    dlg_line(&d, 6, A_DIALOG, L"To use ESXi 6.7.0 after the evaluation period, you must");
    dlg_line(&d, 7, A_DIALOG, L"register for a VMware product license.");
    dlg_line(&d, 9, A_DIALOG, L"Remove the installation media before rebooting.");
    if (s->ks_reboot) {
        sim_delay(2000, 5000);
        return SCR_REBOOT;
    }
    for (;;) {
        tui_key k;
        if (tui_read_key(&k, 0) && k.ch == CH_ENTER) return SCR_REBOOT;
    }
}
