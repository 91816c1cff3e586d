/* eula.c - "End User License Agreement (EULA)": scrolls with the arrow keys, F11 accepts. */
#include "installer.h"

/* Placeholder text written for the simulator (not VMware's licence). */
/* "@V" stands for the profile's release ("ESXi 6.7.0"). */
static const CHAR16 *const eula_text[] = {
    L"END USER LICENSE AGREEMENT (SIMULATOR)",
    L"",
    L"This is the labctl @V installer simulator. It reproduces the",
    L"screens, keys and disk layouts of the VMware @V installer for",
    L"training and testing. It is not VMware software and installs no",
    L"hypervisor: it writes the partition layout of an ESXi installation and",
    L"a small program that behaves like the installed system.",
    L"",
    L"1. USE. You may use the simulator to rehearse an installation of ESXi",
    L"onto a USB stick or a local disk inside a virtual machine, to develop",
    L"and test automation for that installation, and to teach it.",
    L"",
    L"2. DATA. The disk you select will be repartitioned. All data on it",
    L"will be lost. Make sure you selected the right disk before you press",
    L"(F11) on the Confirm Install screen.",
    L"",
    L"3. NO WARRANTY. The simulator is provided as is, without warranty of",
    L"any kind. It only imitates the behaviour documented for @V",
    L"and may differ from it in details that no exercise depends on.",
    L"",
    L"4. TRADEMARKS. VMware and ESXi are trademarks of their owners. Their",
    L"names appear only to describe what the simulator imitates.",
    L"",
    L"5. THE REAL INSTALLER. When you install the real product, read and",
    L"accept the licence agreement it shows you. That agreement, not this",
    L"text, governs the use of the real software.",
    L"",
    L"6. ACCEPTANCE. Press (F11) to accept this agreement and continue, or",
    L"(ESC) if you do not accept it.",
    L"",
    L"End of agreement.",
};

#define EULA_ROWS 12

/* A line of the text with @V replaced by the release. */
static const CHAR16 *eula_line(UINTN i, CHAR16 *buf, UINTN cap) {
    const CHAR16 *src = eula_text[i];
    UINTN o = 0;
    for (UINTN k = 0; src[k] && o + 1 < cap; k++) {
        if (src[k] == '@' && src[k + 1] == 'V') {
            for (const CHAR16 *r = inst_release(); *r && o + 1 < cap; r++) buf[o++] = *r;
            k++;
        } else {
            buf[o++] = src[k];
        }
    }
    buf[o] = 0;
    return buf;
}

screen_id scr_eula(inst_t *s) {
    UINTN top = 0, n = ARRAY_LEN(eula_text);
    for (;;) {
        dlg_t d;
        dlg_open(&d, 76, 20, L"End User License Agreement (EULA)",
                 L"(ESC) Do not Accept      (F11) Accept and Continue");
        for (;;) {
            for (UINTN r = 0; r < EULA_ROWS; r++) {
                CHAR16 buf[96];
                tui_text_w(d.row + 3 + r, d.col + 2, d.w - 4, A_DIALOG,
                           top + r < n ? eula_line(top + r, buf, ARRAY_LEN(buf)) : L"");
            }
            dlg_center(&d, 3 + EULA_ROWS + 1, A_DIALOG, L"Use the arrow keys to scroll the EULA text");
            tui_key k;
            if (!tui_read_key(&k, 0)) continue;
            if (k.scan == K_F11 || k.ch == '|') return SCR_SCAN;
            if (k.scan == K_ESC) {
                confirm_cancel();
                break;
            }
            if (k.scan == K_DOWN && top + EULA_ROWS < n) top++;
            else if (k.scan == K_UP && top > 0) top--;
            else if (k.scan == K_PGDN) top = top + 2 * EULA_ROWS < n ? top + EULA_ROWS : n - EULA_ROWS;
            else if (k.scan == K_PGUP) top = top > EULA_ROWS ? top - EULA_ROWS : 0;
        }
    }
}
