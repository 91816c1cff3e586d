/* table.c - esxcli's output formatters: a table (header, a line of dashes per column, two blanks between
 * columns, booleans and numbers right-aligned) and key/value blocks ("   Key: value"). */
#include "esxi.h"
#include "table.h"

void table_print(const CHAR16 *const *hdr, const BOOLEAN *right, UINTN ncol, const CHAR16 *const *cells,
                 UINTN nrow) {
    UINTN w[TABLE_MAX_COLS];
    CHAR16 line[1024];
    if (ncol > TABLE_MAX_COLS) ncol = TABLE_MAX_COLS;
    for (UINTN c = 0; c < ncol; c++) {
        w[c] = wlen(hdr[c]);
        for (UINTN r = 0; r < nrow; r++)
            if (wlen(cells[r * ncol + c]) > w[c]) w[c] = wlen(cells[r * ncol + c]);
    }
    for (UINTN r = 0; r < nrow + 2; r++) {
        UINTN n = 0;
        for (UINTN c = 0; c < ncol; c++) {
            const CHAR16 *s = r == 0 ? hdr[c] : r == 1 ? NULL : cells[(r - 2) * ncol + c];
            UINTN len = s ? wlen(s) : w[c], pad = w[c] - len;
            BOOLEAN last = c + 1 == ncol;
            if (c) {
                line[n++] = ' ';
                line[n++] = ' ';
            }
            if (r >= 2 && right && right[c])
                for (UINTN i = 0; i < pad && n < 1000; i++) line[n++] = ' ';
            for (UINTN i = 0; i < len && n < 1000; i++) line[n++] = s ? s[i] : '-';
            if (!(r >= 2 && right && right[c]) && !last)
                for (UINTN i = 0; i < pad && n < 1000; i++) line[n++] = ' ';
        }
        while (n > 0 && line[n - 1] == ' ') n--;
        line[n] = 0;
        shell_out(L"%s\r\n", line);
    }
}

void kv_print(const CHAR16 *key, const CHAR16 *val) {
    shell_out(L"   %s: %s\r\n", key, val);
}
