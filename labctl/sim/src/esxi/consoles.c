/* consoles.c - the two consoles of the host: Alt+F2 the DCUI (main), Alt+F1 the ESXi Shell console.
 * Each keeps its own screen: the shell console's grid lives in vt.c, the DCUI redraws itself from the
 * state when it gets a K_REDRAW key.
 *
 * Alt arrives from OVMF as scan F1/F2 with EFI_LEFT_ALT_PRESSED (0x20; right Alt 0x10) in the
 * KeyShiftState of ReadKeyStrokeEx, with QMP input-send-event and with VNC (Alt_L held + F1) alike.
 * When a keyboard driver reports no shift state at all (KeyShiftState without EFI_SHIFT_STATE_VALID),
 * Alt cannot be seen: then a bare F1 on the DCUI (which has no F1 binding on its screens) switches to the
 * shell console and a bare F2 on the shell console (no F-key bindings there) switches back. */
#include "esxi.h"

BOOLEAN con_read_key(con_id who, tui_key *k, UINTN timeout_ms) {
    for (;;) {
        if (!tui_read_key(k, timeout_ms)) return FALSE;
        BOOLEAN alt = (k->shift & TUI_ALT) != 0;
        BOOLEAN unknown = (k->shift & EFI_SHIFT_STATE_VALID) == 0;
        BOOLEAN to_shell = k->scan == K_F1 && (alt || unknown);
        BOOLEAN to_dcui = k->scan == K_F2 && (alt || (unknown && who == CON_SHELL));
        if (who == CON_DCUI && to_shell) {
            CALL(ST->ConOut->EnableCursor, 2, ST->ConOut, FALSE);
            shell_console_run();
            CALL(ST->ConOut->EnableCursor, 2, ST->ConOut, FALSE);
            ZeroMem(k, sizeof *k);
            k->scan = K_REDRAW;
            return TRUE;
        }
        if (who == CON_SHELL && to_dcui) {
            ZeroMem(k, sizeof *k);
            k->scan = K_TO_DCUI;
            return TRUE;
        }
        if ((to_shell || to_dcui) && alt) continue; /* Alt+F1 on the shell / Alt+F2 on the DCUI: already there */
        return TRUE;
    }
}
