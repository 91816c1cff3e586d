/* dialog.c - the grey dialog frame: title inside the top, footer line at the bottom. */
#include "installer.h"

void dlg_open(dlg_t *d, UINTN w, UINTN h, const CHAR16 *title, const CHAR16 *footer) {
    d->w = w;
    d->h = h;
    d->col = (TUI_COLS - w) / 2;
    d->row = (TUI_ROWS - h) / 2;
    tui_clear(A_SCREEN);
    tui_box(d->row, d->col, w, h, A_DIALOG, NULL);
    if (title) tui_center(d->row + 1, d->col, w, A_DTITLE, title);
    if (footer) dlg_footer(d, footer);
}

void dlg_footer(const dlg_t *d, const CHAR16 *footer) {
    CHAR16 sep[TUI_COLS + 1];
    UINTN i;
    for (i = 0; i + 2 < d->w; i++) sep[i] = BOXDRAW_HORIZONTAL;
    sep[i] = 0;
    tui_text(d->row + d->h - 3, d->col + 1, A_DIALOG, sep);
    tui_text_w(d->row + d->h - 2, d->col + 1, d->w - 2, A_DIALOG, L"");
    tui_center(d->row + d->h - 2, d->col, d->w, A_DIALOG, footer);
}

void dlg_line(const dlg_t *d, UINTN r, UINTN attr, const CHAR16 *s) {
    tui_text(d->row + r, d->col + 2, attr, s);
}

void dlg_center(const dlg_t *d, UINTN r, UINTN attr, const CHAR16 *s) {
    tui_center(d->row + r, d->col, d->w, attr, s);
}

void dlg_message(const CHAR16 *title, const CHAR16 *const *lines, UINTN n) {
    dlg_t d;
    UINTN w = 40;
    for (UINTN i = 0; i < n; i++)
        if (wlen(lines[i]) + 4 > w) w = wlen(lines[i]) + 4;
    if (w > TUI_COLS) w = TUI_COLS;
    dlg_open(&d, w, n + 7, title, L"(Enter) OK");
    for (UINTN i = 0; i < n; i++) /* a line as wide as the screen starts right after the border */
        tui_text(d.row + 3 + i, d.col + (wlen(lines[i]) + 4 > w ? 1 : 2), A_DIALOG, lines[i]);
    for (;;) {
        tui_key k;
        if (tui_read_key(&k, 0) && k.ch == CH_ENTER) return;
    }
}

const CHAR16 *inst_release(void) {
    static CHAR16 text[24];
    if (!text[0]) SPrint(text, sizeof text, L"ESXi %s", PROFILE->version);
    return text;
}
