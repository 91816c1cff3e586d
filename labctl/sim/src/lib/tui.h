/* tui.h - text UI over ConOut / SimpleTextInputEx (everything printed also reaches the serial port).
 *
 * Screen is 80x25 (mode 0). Rows/cols are 0-based. Never write the bottom-right cell (it scrolls).
 * Each tui_text() call is one SetCursorPosition + one OutputString, so a string stays contiguous on
 * the serial console (tests match it there). */
#ifndef SIM_TUI_H
#define SIM_TUI_H

#include "util.h"

#define TUI_ROWS 25
#define TUI_COLS 80

/* Colours like the ESXi screens: black background, grey dialogs, yellow accents. */
#define A_SCREEN   EFI_TEXT_ATTR(EFI_LIGHTGRAY, EFI_BLACK)
#define A_ACCENT   EFI_TEXT_ATTR(EFI_YELLOW, EFI_BLACK)
#define A_BRIGHT   EFI_TEXT_ATTR(EFI_WHITE, EFI_BLACK)
#define A_DIALOG   EFI_TEXT_ATTR(EFI_BLACK, EFI_LIGHTGRAY)
#define A_DTITLE   EFI_TEXT_ATTR(EFI_BLACK, EFI_LIGHTGRAY)
#define A_DHILITE  EFI_TEXT_ATTR(EFI_YELLOW, EFI_BLACK)     /* highlight bar inside a dialog */
#define A_DERROR   EFI_TEXT_ATTR(EFI_RED, EFI_LIGHTGRAY)
#define A_FIELD    EFI_TEXT_ATTR(EFI_WHITE, EFI_BLACK)
#define A_DCUI_TOP EFI_TEXT_ATTR(EFI_BLACK, EFI_LIGHTGRAY)
#define A_DCUI_BOT EFI_TEXT_ATTR(EFI_YELLOW, EFI_BLACK)

/* Scan codes (UEFI spec) */
#define K_UP 0x01
#define K_DOWN 0x02
#define K_RIGHT 0x03
#define K_LEFT 0x04
#define K_HOME 0x05
#define K_END 0x06
#define K_PGUP 0x09
#define K_PGDN 0x0a
#define K_F1 0x0b
#define K_F2 0x0c
#define K_F5 0x0f
#define K_F9 0x13
#define K_F10 0x14
#define K_F11 0x15
#define K_F12 0x16
#define K_ESC 0x17
#define CH_ENTER 0x0d
#define CH_BACKSPACE 0x08
#define CH_TAB 0x09

typedef struct {
    UINT16 scan;    /* K_* or 0 */
    CHAR16 ch;      /* Unicode character or 0 */
    UINT32 shift;   /* EFI_SHIFT_STATE_VALID | EFI_LEFT_ALT_PRESSED ... (0 when unknown) */
} tui_key;

#define TUI_ALT (EFI_LEFT_ALT_PRESSED | EFI_RIGHT_ALT_PRESSED)
#define TUI_CTRL (EFI_LEFT_CONTROL_PRESSED | EFI_RIGHT_CONTROL_PRESSED)

void tui_init(void);                 /* 80x25, cursor off, clear */
/* TRUE: send text only to the graphics console (not the serial terminal), as the real esx-boot loader
 * does; FALSE: back to ConOut. Returns FALSE (and keeps ConOut) when there is no graphics console. */
BOOLEAN tui_graphics_only(BOOLEAN on);
/* Cursor visibility on the current output. */
void tui_cursor_off(void);
void tui_clear(UINTN attr);
void tui_text(UINTN row, UINTN col, UINTN attr, const CHAR16 *s);
void tui_textf(UINTN row, UINTN col, UINTN attr, const CHAR16 *fmt, ...);
/* Text padded with spaces (or cut) to exactly width columns. */
void tui_text_w(UINTN row, UINTN col, UINTN width, UINTN attr, const CHAR16 *s);
void tui_center(UINTN row, UINTN col, UINTN width, UINTN attr, const CHAR16 *s);
void tui_fill(UINTN row, UINTN col, UINTN width, UINTN height, UINTN attr);
/* Filled box with a single-line border; title centred on the top border (NULL for none). */
void tui_box(UINTN row, UINTN col, UINTN width, UINTN height, UINTN attr, const CHAR16 *title);
void tui_cursor(UINTN row, UINTN col, BOOLEAN visible);

/* A vertical list; items[top..] drawn in height rows, items[sel] in hl_attr. */
void tui_list(UINTN row, UINTN col, UINTN width, UINTN height, const CHAR16 *const *items, UINTN n,
              UINTN sel, UINTN top, UINTN attr, UINTN hl_attr);
/* Keep sel visible: adjust *top for a window of height rows. */
void tui_list_scroll(UINTN sel, UINTN *top, UINTN height);
/* An input field: value (masked with '*' when masked), padded to width. */
void tui_field(UINTN row, UINTN col, UINTN width, const CHAR16 *value, BOOLEAN masked, UINTN attr);

/* Wait for a key. timeout_ms == 0 waits forever. Returns TRUE with *k filled, FALSE on timeout. */
BOOLEAN tui_read_key(tui_key *k, UINTN timeout_ms);
/* Discard pending keystrokes. */
void tui_flush_keys(void);
/* Line editing: printable characters append (up to cap-1), Backspace deletes. TRUE if handled. */
BOOLEAN tui_edit(CHAR16 *buf, UINTN cap, const tui_key *k);

#endif
