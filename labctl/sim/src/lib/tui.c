/* tui.c - see tui.h */
#include "tui.h"
#include "acpi.h"

/* Where text goes: ConOut (screen + serial) or, while tui_graphics_only(TRUE), the graphics console alone. */
static SIMPLE_TEXT_OUTPUT_INTERFACE *tui_out_override;
#define TUI_OUT (tui_out_override ? tui_out_override : ST->ConOut)

BOOLEAN tui_graphics_only(BOOLEAN on) {
    tui_out_override = NULL;
    if (!on) return TRUE;
    EFI_GUID gop_guid = EFI_GRAPHICS_OUTPUT_PROTOCOL_GUID;
    UINTN n = 0;
    EFI_HANDLE *handles = NULL;
    if (EFI_ERROR(CALL(BS->LocateHandleBuffer, 5, ByProtocol, &TextOutProtocol, NULL, &n, &handles))) return FALSE;
    for (UINTN i = 0; i < n && !tui_out_override; i++) {
        void *gop = NULL;
        SIMPLE_TEXT_OUTPUT_INTERFACE *to = NULL;
        if (handles[i] == ST->ConsoleOutHandle) continue;
        if (EFI_ERROR(CALL(BS->HandleProtocol, 3, handles[i], &gop_guid, &gop)) || !gop) continue;
        if (!EFI_ERROR(CALL(BS->HandleProtocol, 3, handles[i], &TextOutProtocol, (void **)&to)) && to)
            tui_out_override = to;
    }
    FreePool(handles);
    if (tui_out_override) {
        CALL(tui_out_override->SetMode, 2, tui_out_override, 0);
        CALL(tui_out_override->EnableCursor, 2, tui_out_override, FALSE);
    }
    return tui_out_override != NULL;
}

static EFI_SIMPLE_TEXT_INPUT_EX_PROTOCOL *tui_inex(void) {
    static EFI_SIMPLE_TEXT_INPUT_EX_PROTOCOL *inex; /* cached protocol pointer */
    static BOOLEAN looked;
    if (!looked) {
        EFI_GUID g = EFI_SIMPLE_TEXT_INPUT_EX_PROTOCOL_GUID;
        looked = TRUE;
        if (EFI_ERROR(CALL(BS->HandleProtocol, 3, ST->ConsoleInHandle, &g, (void **)&inex))) inex = NULL;
    }
    return inex;
}

void tui_init(void) {
    CALL(TUI_OUT->SetMode, 2, TUI_OUT, 0);
    CALL(TUI_OUT->EnableCursor, 2, TUI_OUT, FALSE);
    tui_clear(A_SCREEN);
}

void tui_clear(UINTN attr) {
    CALL(TUI_OUT->SetAttribute, 2, TUI_OUT, attr);
    CALL(TUI_OUT->ClearScreen, 1, TUI_OUT);
}

void tui_text(UINTN row, UINTN col, UINTN attr, const CHAR16 *s) {
    CHAR16 buf[TUI_COLS + 1];
    UINTN n = 0;
    if (row >= TUI_ROWS || col >= TUI_COLS) return;
    UINTN max = TUI_COLS - col;
    if (row == TUI_ROWS - 1 && max > 0) max--; /* bottom-right cell would scroll */
    while (s[n] && n < max) {
        buf[n] = s[n];
        n++;
    }
    buf[n] = 0;
    if (n == 0) return;
    CALL(TUI_OUT->SetAttribute, 2, TUI_OUT, attr);
    CALL(TUI_OUT->SetCursorPosition, 3, TUI_OUT, col, row);
    CALL(TUI_OUT->OutputString, 2, TUI_OUT, buf);
}

void tui_textf(UINTN row, UINTN col, UINTN attr, const CHAR16 *fmt, ...) {
    CHAR16 buf[256];
    va_list ap;
    va_start(ap, fmt);
    VSPrint(buf, sizeof buf, fmt, ap);
    va_end(ap);
    tui_text(row, col, attr, buf);
}

void tui_text_w(UINTN row, UINTN col, UINTN width, UINTN attr, const CHAR16 *s) {
    CHAR16 buf[TUI_COLS + 1];
    UINTN i = 0;
    if (width > TUI_COLS) width = TUI_COLS;
    for (; i < width && s && s[i]; i++) buf[i] = s[i];
    for (; i < width; i++) buf[i] = ' ';
    buf[width] = 0;
    tui_text(row, col, attr, buf);
}

void tui_center(UINTN row, UINTN col, UINTN width, UINTN attr, const CHAR16 *s) {
    UINTN n = wlen(s);
    UINTN off = n < width ? (width - n) / 2 : 0;
    tui_text(row, col + off, attr, s);
}

void tui_fill(UINTN row, UINTN col, UINTN width, UINTN height, UINTN attr) {
    for (UINTN r = 0; r < height; r++) tui_text_w(row + r, col, width, attr, L"");
}

void tui_box(UINTN row, UINTN col, UINTN width, UINTN height, UINTN attr, const CHAR16 *title) {
    CHAR16 line[TUI_COLS + 1];
    if (width < 2 || height < 2 || width > TUI_COLS) return;
    line[0] = BOXDRAW_DOWN_RIGHT;
    for (UINTN i = 1; i + 1 < width; i++) line[i] = BOXDRAW_HORIZONTAL;
    line[width - 1] = BOXDRAW_DOWN_LEFT;
    line[width] = 0;
    tui_text(row, col, attr, line);
    for (UINTN r = 1; r + 1 < height; r++) {
        line[0] = BOXDRAW_VERTICAL;
        for (UINTN i = 1; i + 1 < width; i++) line[i] = ' ';
        line[width - 1] = BOXDRAW_VERTICAL;
        tui_text(row + r, col, attr, line);
    }
    line[0] = BOXDRAW_UP_RIGHT;
    for (UINTN i = 1; i + 1 < width; i++) line[i] = BOXDRAW_HORIZONTAL;
    line[width - 1] = BOXDRAW_UP_LEFT;
    tui_text(row + height - 1, col, attr, line);
    if (title && title[0]) {
        CHAR16 t[TUI_COLS + 1];
        SPrint(t, sizeof t, L" %s ", title);
        tui_center(row, col, width, attr, t);
    }
}

void tui_cursor(UINTN row, UINTN col, BOOLEAN visible) {
    CALL(TUI_OUT->SetCursorPosition, 3, TUI_OUT, col, row);
    CALL(TUI_OUT->EnableCursor, 2, TUI_OUT, visible);
}

void tui_cursor_off(void) {
    CALL(TUI_OUT->EnableCursor, 2, TUI_OUT, FALSE);
}

void tui_list_scroll(UINTN sel, UINTN *top, UINTN height) {
    if (sel < *top) *top = sel;
    if (height && sel >= *top + height) *top = sel - height + 1;
}

void tui_list(UINTN row, UINTN col, UINTN width, UINTN height, const CHAR16 *const *items, UINTN n,
              UINTN sel, UINTN top, UINTN attr, UINTN hl_attr) {
    for (UINTN r = 0; r < height; r++) {
        UINTN i = top + r;
        tui_text_w(row + r, col, width, i == sel ? hl_attr : attr, i < n ? items[i] : L"");
    }
}

void tui_field(UINTN row, UINTN col, UINTN width, const CHAR16 *value, BOOLEAN masked, UINTN attr) {
    CHAR16 buf[TUI_COLS + 1];
    UINTN n = wlen(value), i;
    for (i = 0; i < width && i < n; i++) buf[i] = masked ? '*' : value[i];
    for (; i < width; i++) buf[i] = ' ';
    buf[width] = 0;
    tui_text(row, col, attr, buf);
}

static BOOLEAN tui_try_read(tui_key *k) {
    EFI_SIMPLE_TEXT_INPUT_EX_PROTOCOL *inex = tui_inex();
    if (inex) {
        EFI_KEY_DATA kd;
        ZeroMem(&kd, sizeof kd);
        if (EFI_ERROR(CALL(inex->ReadKeyStrokeEx, 2, inex, &kd))) return FALSE;
        k->scan = kd.Key.ScanCode;
        k->ch = kd.Key.UnicodeChar;
        k->shift = (kd.KeyState.KeyShiftState & EFI_SHIFT_STATE_VALID) ? kd.KeyState.KeyShiftState : 0;
        /* A bare modifier press reports no key at all: ignore it. */
        return k->scan != 0 || k->ch != 0;
    }
    EFI_INPUT_KEY key;
    if (EFI_ERROR(CALL(ST->ConIn->ReadKeyStroke, 2, ST->ConIn, &key))) return FALSE;
    k->scan = key.ScanCode;
    k->ch = key.UnicodeChar;
    k->shift = 0;
    return TRUE;
}

BOOLEAN tui_read_key(tui_key *k, UINTN timeout_ms) {
    EFI_SIMPLE_TEXT_INPUT_EX_PROTOCOL *inex = tui_inex();
    EFI_EVENT events[3];
    EFI_EVENT timer = NULL, poll = NULL;
    UINTN n = 1, idx = 0;
    ZeroMem(k, sizeof *k);
    events[0] = inex ? inex->WaitForKeyEx : ST->ConIn->WaitForKey;
    if (timeout_ms) {
        if (EFI_ERROR(CALL(BS->CreateEvent, 5, EVT_TIMER, 0, NULL, NULL, &timer))) return FALSE;
        CALL(BS->SetTimer, 3, timer, TimerRelative, (UINT64)timeout_ms * 10000);
        events[n++] = timer;
    }
    /* While waiting for a key, look at the ACPI power button every 100 ms (see acpi.c). */
    if (acpi_watching() && !EFI_ERROR(CALL(BS->CreateEvent, 5, EVT_TIMER, 0, NULL, NULL, &poll))) {
        CALL(BS->SetTimer, 3, poll, TimerPeriodic, (UINT64)100 * 10000);
        events[n++] = poll;
    }
    BOOLEAN got = FALSE;
    for (;;) {
        if (tui_try_read(k)) {
            got = TRUE;
            break;
        }
        acpi_poll();
        if (EFI_ERROR(CALL(BS->WaitForEvent, 3, n, events, &idx))) break;
        if (timer && idx == 1) break;
    }
    if (timer) CALL(BS->CloseEvent, 1, timer);
    if (poll) CALL(BS->CloseEvent, 1, poll);
    return got;
}

void tui_flush_keys(void) {
    tui_key k;
    while (tui_try_read(&k)) {
    }
}

BOOLEAN tui_edit(CHAR16 *buf, UINTN cap, const tui_key *k) {
    UINTN n = wlen(buf);
    if (k->ch == CH_BACKSPACE) {
        if (n > 0) buf[n - 1] = 0;
        return TRUE;
    }
    if (k->ch >= 0x20 && k->ch != 0x7f) {
        if (n + 1 < cap) {
            buf[n] = k->ch;
            buf[n + 1] = 0;
        }
        return TRUE;
    }
    return FALSE;
}
