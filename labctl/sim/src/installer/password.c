/* password.c - "Enter a root password": two masked fields, status line, the rules of reference §2. */
#include "installer.h"

const CHAR16 *password_problem(const CHAR16 *pw) {
    UINTN n = wlen(pw), lower = 0, upper = 0, digit = 0, other = 0;
    for (UINTN i = 0; i < n; i++)
        if (pw[i] > 0x7e || pw[i] < 0x20) return L"Password may only contain ASCII characters.";
    if (n < 7) return L"Password must be at least 7 characters long.";
    if (n > 40) return L"Password must be less than 41 characters long.";
    for (UINTN i = 0; i < n; i++) {
        CHAR16 c = pw[i];
        if (c >= 'a' && c <= 'z') lower = 1;
        else if (c >= 'A' && c <= 'Z') upper = 1;
        else if (c >= '0' && c <= '9') digit = 1;
        else other = 1;
    }
    if (lower + upper + digit + other < 3) return L"Password does not have enough character types.";
    return NULL;
}

static const CHAR16 *status_of(const inst_t *s) {
    if (!s->pw[0] && !s->pw2[0]) return L"Please enter a password.";
    return StrCmp((CHAR16 *)s->pw, (CHAR16 *)s->pw2) == 0 ? L"Passwords match." : L"Passwords do not match.";
}

screen_id scr_password(inst_t *s) {
    UINTN focus = 0;
    dlg_t d;
    const CHAR16 *problem = NULL;
    dlg_open(&d, 64, 14, L"Enter a root password", L"(Esc) Cancel    (F9) Back    (Enter) Continue");
    for (;;) {
        tui_text(d.row + 4, d.col + 4, A_DIALOG, L"Root password:");
        tui_text(d.row + 5, d.col + 4, A_DIALOG, L"Confirm password:");
        tui_field(d.row + 4, d.col + 24, 34, s->pw, TRUE, focus == 0 ? A_FIELD : A_DIALOG);
        tui_field(d.row + 5, d.col + 24, 34, s->pw2, TRUE, focus == 1 ? A_FIELD : A_DIALOG);
        tui_text_w(d.row + 8, d.col + 2, d.w - 4, A_DIALOG, L"");
        if (problem) tui_center(d.row + 8, d.col, d.w, A_DERROR, problem);
        else tui_center(d.row + 8, d.col, d.w, A_DIALOG, status_of(s));
        tui_cursor(d.row + 4 + focus, d.col + 24 + wlen(focus ? s->pw2 : s->pw), TRUE);
        tui_key k;
        if (!tui_read_key(&k, 0)) continue;
        tui_cursor_off();
        problem = NULL;
        if (k.ch == CH_TAB || k.scan == K_DOWN) focus = (focus + 1) % 2;
        else if (k.scan == K_UP) focus = focus ? 0 : 1;
        else if (k.scan == K_F9) return SCR_KEYBOARD;
        else if (k.scan == K_ESC) {
            confirm_cancel();
            dlg_open(&d, 64, 14, L"Enter a root password", L"(Esc) Cancel    (F9) Back    (Enter) Continue");
        } else if (k.ch == CH_ENTER) {
            if (StrCmp(s->pw, s->pw2) != 0) continue; /* the status line already says so */
            problem = password_problem(s->pw);
            if (!problem) return SCR_SYSSCAN;
        } else {
            tui_edit(focus ? s->pw2 : s->pw, 64, &k);
        }
    }
}
