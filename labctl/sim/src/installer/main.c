#include "../lib/bootloader.h"
EFI_STATUS efi_main(EFI_HANDLE image, EFI_SYSTEM_TABLE *systab) {
    CHAR16 opts[BOOTOPTS_CAP] = L"runweasel cdromBoot";
    InitializeLib(image, systab);
    tui_init();
    bootloader_run(L"Loading ESXi installer", opts, BOOTOPTS_CAP);
    Print(L"booting with %s\r\n", opts);
    for (;;) { tui_key k; tui_read_key(&k, 0); Print(L"key scan=%x ch=%x shift=%x\r\n", k.scan, k.ch, k.shift); }
}
