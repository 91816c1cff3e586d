/* confirm.c - "Confirm Install". */
#include "installer.h"

screen_id scr_confirm(inst_t *s) {
    for (;;) {
        dlg_t d;
        CHAR16 line[96];
        dlg_open(&d, 70, 14, L"Confirm Install", L"(Esc) Cancel      (F9) Back      (F11) Install");
        SPrint(line, sizeof line, L"The installer is configured to install %s on:", inst_release());
        dlg_line(&d, 3, A_DIALOG, line);
        SPrint(line, sizeof line, L"%s.", s->target.name);
        dlg_center(&d, 5, A_ACCENT, line);
        dlg_line(&d, 7, A_DIALOG, L"Warning: This disk will be repartitioned.");
        for (;;) {
            tui_key k;
            if (!tui_read_key(&k, 0)) continue;
            if (k.scan == K_F11) return SCR_PROGRESS;
            if (k.scan == K_F9) return SCR_PASSWORD;
            if (k.scan == K_ESC) { confirm_cancel(); break; }
        }
    }
}
