/* cancel.c - Esc anywhere: "Confirm Cancel" (F9 No returns, F11 Yes reboots). */
#include "installer.h"

void confirm_cancel(void) {
    dlg_t d;
    dlg_open(&d, 60, 9, L"Confirm Cancel", L"(F9) No      (F11) Yes");
    dlg_center(&d, 3, A_DIALOG, L"Are you sure you want to cancel the installation?");
    for (;;) {
        tui_key k;
        if (!tui_read_key(&k, 0)) continue;
        if (k.scan == K_F9) return;
        if (k.scan == K_F11) {
            tui_clear(A_SCREEN);
            tui_center(12, 0, TUI_COLS, A_SCREEN, L"Rebooting...");
            sim_delay(300, 3000);
            sys_reset();
        }
    }
}
