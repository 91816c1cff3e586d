/* bootloader.c - see bootloader.h */
#include "bootloader.h"

#ifndef SIM_SERIAL_BOOTLOADER
#define SIM_SERIAL_BOOTLOADER 0
#endif

#define ROW_TITLE 9
#define ROW_HINT 21
#define ROW_LINE 23

static void draw_countdown_frame(const CHAR16 *loading) {
    tui_clear(A_SCREEN);
    tui_center(ROW_TITLE, 0, TUI_COLS, A_BRIGHT, loading);
    tui_text(ROW_HINT, 2, A_ACCENT, L"<ENTER: Boot>");
    tui_text(ROW_HINT, 48, A_ACCENT, L"<SHIFT+O: Edit boot options>");
}

static void draw_count(UINTN n) {
    CHAR16 line[64];
    SPrint(line, sizeof line, L"Automatic boot in %d second%s...", n, n == 1 ? L"" : L"s");
    tui_text_w(ROW_LINE, 0, TUI_COLS - 1, A_SCREEN, L"");
    tui_center(ROW_LINE, 0, TUI_COLS, A_SCREEN, line);
}

static void draw_editor_line(const CHAR16 *options) {
    CHAR16 line[TUI_COLS + 1];
    UINTN n = wlen(options), room = TUI_COLS - 4;
    const CHAR16 *tail = n > room ? options + (n - room) : options;
    SPrint(line, sizeof line, L"> %s", tail);
    tui_text_w(ROW_LINE, 0, TUI_COLS - 1, A_BRIGHT, line);
    tui_cursor(ROW_LINE, wlen(line), TRUE);
}

/* The editor: TRUE when Enter applied the options (boot), FALSE on Esc (back to the countdown). */
static BOOLEAN edit(const CHAR16 *loading, CHAR16 *options, UINTN cap) {
    CHAR16 *work = xalloc(cap * sizeof(CHAR16));
    BOOLEAN boot = FALSE;
    wcopy(work, cap, options);
    tui_clear(A_SCREEN);
    tui_center(ROW_TITLE, 0, TUI_COLS, A_BRIGHT, loading);
    tui_text(ROW_HINT, 2, A_ACCENT, L"<ENTER: Apply options and boot>");
    tui_text(ROW_HINT, 58, A_ACCENT, L"<ESC: Cancel>");
    draw_editor_line(work);
    for (;;) {
        tui_key k;
        if (!tui_read_key(&k, 0)) continue;
        if (k.ch == CH_ENTER) {
            wcopy(options, cap, work);
            boot = TRUE;
            break;
        }
        if (k.scan == K_ESC) break;
        if (tui_edit(work, cap, &k)) draw_editor_line(work);
    }
    tui_cursor_off();
    xfree(work);
    return boot;
}

static void countdown(const CHAR16 *loading, CHAR16 *options, UINTN cap, UINTN timeout);

void bootloader_run(const CHAR16 *loading, CHAR16 *options, UINTN cap, UINTN timeout) {
    /* esx-boot draws on the graphics console only: nothing of it reaches a serial console (reference §1).
     * A build with -DSIM_SERIAL_BOOTLOADER=1 (tests) keeps it on ConOut. */
#if !SIM_SERIAL_BOOTLOADER
    tui_graphics_only(TRUE);
#endif
    if (timeout > 0) countdown(loading, options, cap, timeout);
    tui_clear(A_SCREEN);
    tui_graphics_only(FALSE);
    tui_clear(A_SCREEN);
}

static void countdown(const CHAR16 *loading, CHAR16 *options, UINTN cap, UINTN timeout) {
    tui_flush_keys();
    for (;;) {
        draw_countdown_frame(loading);
        UINTN n = timeout;
        BOOLEAN restart = FALSE;
        draw_count(n);
        while (!restart) {
            tui_key k;
            if (!tui_read_key(&k, 1000)) {
                if (--n == 0) {
                    sim_mark_waited(timeout * 1000, (const CHAR8 *)"boot loader countdown"); /* the whole countdown ran out: the machine's own wait */
                    return;
                }
                draw_count(n);
                continue;
            }
            if (k.ch == CH_ENTER) return;
            if (k.ch == 'O') {
                if (edit(loading, options, cap)) return;
                restart = TRUE; /* Esc: back to a fresh countdown */
                break;
            }
            n = timeout; /* any other key restarts the countdown */
            draw_count(n);
        }
    }
}

/* Find word "key=..." ; returns pointer to the value start and its length. */
static const CHAR16 *find_opt(const CHAR16 *s, const CHAR16 *key, UINTN *vlen) {
    UINTN klen = wlen(key);
    while (*s) {
        while (*s == ' ' || *s == '\t') s++;
        UINTN wl = 0;
        while (s[wl] && s[wl] != ' ' && s[wl] != '\t') wl++;
        if (wl > klen && s[klen] == '=' && wncmp_ci(s, key, klen) == 0) {
            *vlen = wl - klen - 1;
            return s + klen + 1;
        }
        s += wl;
    }
    return NULL;
}

BOOLEAN bootopts_get(const CHAR16 *options, const CHAR16 *key, CHAR16 *value, UINTN cap) {
    UINTN vlen = 0;
    const CHAR16 *v = find_opt(options, key, &vlen);
    if (!v) return FALSE;
    UINTN i = 0;
    for (; i < vlen && i + 1 < cap; i++) value[i] = v[i];
    value[i] = 0;
    return TRUE;
}

BOOLEAN bootopts_is(const CHAR16 *options, const CHAR16 *key, const CHAR16 *want) {
    CHAR16 v[64];
    return bootopts_get(options, key, v, ARRAY_LEN(v)) && wcmp_ci(v, want) == 0;
}
