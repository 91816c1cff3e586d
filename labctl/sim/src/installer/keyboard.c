/* keyboard.c - "Please select a keyboard layout", US Default highlighted. */
#include "installer.h"

const CHAR16 *const keyboard_names[] = {
    L"Belgian", L"Brazilian", L"Croatian", L"Czechoslovakian", L"Danish", L"Estonian", L"Finnish", L"French",
    L"German", L"Greek", L"Icelandic", L"Italian", L"Japanese", L"Latin American", L"Norwegian", L"Polish",
    L"Portuguese", L"Russian", L"Slovenian", L"Spanish", L"Swedish", L"Swiss French", L"Swiss German",
    L"Turkish", L"US Default", L"US Dvorak", L"Ukrainian", L"United Kingdom",
};
const UINTN keyboard_count = ARRAY_LEN(keyboard_names);

UINTN keyboard_default(void) {
    for (UINTN i = 0; i < keyboard_count; i++)
        if (StrCmp((CHAR16 *)keyboard_names[i], L"US Default") == 0) return i;
    return 0;
}

#define KB_ROWS 10

screen_id scr_keyboard(inst_t *s) {
    UINTN top = 0;
    for (;;) {
        dlg_t d;
        dlg_open(&d, 50, 19, L"Please select a keyboard layout", L"(Esc) Cancel    (F9) Back    (Enter) Continue");
        dlg_center(&d, 14, A_DIALOG, L"Use the arrow keys to scroll.");
        for (;;) {
            tui_list_scroll(s->keyboard, &top, KB_ROWS);
            tui_list(d.row + 3, d.col + 12, 26, KB_ROWS, keyboard_names, keyboard_count, s->keyboard, top, A_DIALOG,
                     A_DHILITE);
            tui_key k;
            if (!tui_read_key(&k, 0)) continue;
            if (k.scan == K_UP && s->keyboard > 0) s->keyboard--;
            else if (k.scan == K_DOWN && s->keyboard + 1 < keyboard_count) s->keyboard++;
            else if (k.scan == K_F9) return SCR_DISKS;
            else if (k.scan == K_ESC) { confirm_cancel(); break; }
            else if (k.ch == CH_ENTER) return SCR_PASSWORD;
        }
    }
}
