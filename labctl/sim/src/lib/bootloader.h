/* bootloader.h - the esx-boot countdown and Shift+O option editor (reference §1), and option parsing. */
#ifndef SIM_BOOTLOADER_H
#define SIM_BOOTLOADER_H

#include "tui.h"

#define BOOTOPTS_CAP 512

/* Runs the countdown screen ("Automatic boot in N seconds...", N = timeout, boot.cfg's timeout=) with the
 * <ENTER: Boot> and <SHIFT+O: Edit boot options> hints. Enter boots, 'O' opens the editor on options
 * (edited in place), any other key restarts the countdown at N. Returns when booting. loading: e.g.
 * L"Loading ESXi installer". timeout 0 boots at once (esx-boot: no countdown). */
void bootloader_run(const CHAR16 *loading, CHAR16 *options, UINTN cap, UINTN timeout);

/* Value of word KEY=VALUE in options (key case-insensitive). FALSE if absent. */
BOOLEAN bootopts_get(const CHAR16 *options, const CHAR16 *key, CHAR16 *value, UINTN cap);
/* KEY=VALUE present with value equal to want, both case-insensitive. */
BOOLEAN bootopts_is(const CHAR16 *options, const CHAR16 *key, const CHAR16 *want);

#endif
