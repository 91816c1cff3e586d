/* vt.c - the shell console's own screen: an 80x25 text grid that follows ConOut's rules (wrap after the
 * last column, scroll at the bottom), mirrored to ConOut while the console is shown, redrawn from the
 * grid when the console comes back (Alt+F1). */
#include "esxi.h"

static CHAR16 grid[TUI_ROWS][TUI_COLS + 1];
static UINTN row, col;
static BOOLEAN shown;

static void scroll(void) {
    for (UINTN r = 0; r + 1 < TUI_ROWS; r++) CopyMem(grid[r], grid[r + 1], sizeof grid[r]);
    for (UINTN c = 0; c < TUI_COLS; c++) grid[TUI_ROWS - 1][c] = ' ';
}

static void newline(void) {
    col = 0;
    if (row + 1 < TUI_ROWS)
        row++;
    else
        scroll();
}

void vt_clear(void) {
    for (UINTN r = 0; r < TUI_ROWS; r++) {
        for (UINTN c = 0; c < TUI_COLS; c++) grid[r][c] = ' ';
        grid[r][TUI_COLS] = 0;
    }
    row = col = 0;
    if (shown) {
        tui_clear(A_SCREEN);
        tui_cursor(0, 0, TRUE);
    }
}

void vt_reset(void) {
    vt_clear();
}

void vt_show(BOOLEAN on) {
    shown = on;
    if (!on) {
        CALL(ST->ConOut->EnableCursor, 2, ST->ConOut, FALSE);
        return;
    }
    tui_clear(A_SCREEN);
    for (UINTN r = 0; r < TUI_ROWS; r++) {
        CHAR16 line[TUI_COLS + 1];
        UINTN n = TUI_COLS;
        CopyMem(line, grid[r], sizeof line);
        while (n > 0 && line[n - 1] == ' ') n--;
        line[n] = 0;
        if (n) tui_text(r, 0, A_SCREEN, line);
    }
    CALL(ST->ConOut->SetAttribute, 2, ST->ConOut, A_SCREEN);
    tui_cursor(row, col, TRUE);
}

void vt_puts(const CHAR16 *s) {
    for (const CHAR16 *p = s; *p; p++) {
        if (*p == '\r')
            col = 0;
        else if (*p == '\n')
            newline();
        else if (*p == '\b') {
            if (col > 0) col--;
        } else {
            grid[row][col++] = *p;
            if (col >= TUI_COLS) newline();
        }
    }
    if (shown) {
        CALL(ST->ConOut->SetAttribute, 2, ST->ConOut, A_SCREEN);
        CALL(ST->ConOut->OutputString, 2, ST->ConOut, (CHAR16 *)s);
    }
}

void vt_printf(const CHAR16 *fmt, ...) {
    CHAR16 buf[1024];
    va_list ap;
    va_start(ap, fmt);
    VSPrint(buf, sizeof buf, fmt, ap);
    va_end(ap);
    vt_puts(buf);
}

void vt_backspace(void) {
    if (col > 0) {
        vt_puts(L"\b \b");
        return;
    }
    if (row == 0) return;
    /* back over a wrapped line end: clear the last cell of the row above without wrapping again */
    row--;
    col = TUI_COLS - 1;
    grid[row][col] = ' ';
    if (shown) {
        tui_cursor(row, col, TRUE);
        CALL(ST->ConOut->OutputString, 2, ST->ConOut, L" ");
        tui_cursor(row, col, TRUE);
    }
}
