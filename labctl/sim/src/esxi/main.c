/* esxi/main.c - the installed system (BOOTX64.EFI on the stick's partition 1).
 * Placeholder until issue #4: says that ESXi is installed and shows the kernel options it would boot with. */
#include "../lib/tui.h"

EFI_STATUS efi_main(EFI_HANDLE image, EFI_SYSTEM_TABLE *systab) {
    InitializeLib(image, systab);
    tui_init();
    tui_fill(0, 0, TUI_COLS, 1, A_DCUI_TOP);
    tui_center(0, 0, TUI_COLS, A_DCUI_TOP, L"VMware ESXi 6.7.0 (VMKernel Release Build 8169922)");
    tui_center(10, 0, TUI_COLS, A_ACCENT, L"ESXi 6.7.0 is installed on this disk.");
    tui_center(12, 0, TUI_COLS, A_SCREEN, L"(labctl simulator: the installed system is not built yet)");
    for (;;) {
        tui_key k;
        tui_read_key(&k, 0);
    }
    return EFI_SUCCESS;
}
