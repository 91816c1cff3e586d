/* main.c - the installed system's entry (\EFI\BOOT\BOOTX64.EFI on the stick's partition 1): load the state
 * from the bootbank, boot (boot.c), then the DCUI on the main console (dcui.c) with the shell console a
 * key away (consoles.c). */
#include "esxi.h"
#include "../lib/acpi.h"

static esxi_t g_esxi;
esxi_t *G = &g_esxi;

/* The ACPI power button (labctl down, "Shut Down Guest"): a clean shutdown that saves the state, as
 * ESXi's shutdown scripts run the auto-backup. */
static void power_button(void) {
    esxi_shutdown(FALSE);
}

EFI_STATUS efi_main(EFI_HANDLE image, EFI_SYSTEM_TABLE *systab) {
    EFI_LOADED_IMAGE *li = NULL;
    InitializeLib(image, systab);
    CALL(BS->SetWatchdogTimer, 4, 0, 0, 0, NULL);
    G->image = image;
    if (!EFI_ERROR(CALL(BS->HandleProtocol, 3, image, &LoadedImageProtocol, (void **)&li)) && li)
        G->boot_part = li->DeviceHandle;
    tui_init();
    disks_connect_all();
    if (!state_load()) {
        /* no bootbank state: a stick written by something else; run with defaults (saving creates it) */
        state_parse((const CHAR8 *)"# labctl ESXi simulator state\nversion=1\n", 40);
    }
    boot_run();
    acpi_on_power_button(power_button);
    esxcli_boot_snapshot();
    vt_reset();
    dcui_run();
    return EFI_SUCCESS;
}
