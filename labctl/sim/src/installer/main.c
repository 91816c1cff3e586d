/* main.c - installer entry: boot loader stage (title, kernelopt and timeout from the CD's EFI/BOOT/BOOT.CFG,
 * as esx-boot reads them), then kickstart (ks= in the options) or the interactive screens. */
#include "installer.h"
#include "../lib/acpi.h"
#include "../lib/bootcfg.h"

static void kernel_boot_screen(void) {
    tui_clear(A_SCREEN);
    tui_center(2, 0, TUI_COLS, A_BRIGHT, L"Loading ESXi installer");
    static const CHAR16 *mods[] = {L"/b.b00", L"/jumpstrt.gz", L"/useropts.gz", L"/features.gz", L"/k.b00",
                                   L"/chardevs.b00", L"/s.v00", L"/weaselin.t00", L"/imgdb.tgz", L"/imgpayld.tgz"};
    for (UINTN i = 0; i < ARRAY_LEN(mods); i++) {
        tui_text_w(4, 2, 60, A_SCREEN, L"");
        tui_textf(4, 2, A_SCREEN, L"Loading %s", mods[i]);
        sim_delay(40, 1200);
    }
    tui_clear(A_SCREEN);
    tui_fill(0, 0, TUI_COLS, 1, A_DCUI_TOP);
    tui_center(0, 0, TUI_COLS, A_DCUI_TOP, PROFILE->title);
    tui_center(11, 0, TUI_COLS, A_ACCENT, L"Loading VMware ESXi installer");
    tui_center(13, 0, TUI_COLS, A_SCREEN, L"Starting up services...");
    sim_delay(300, 15000);
}

EFI_STATUS efi_main(EFI_HANDLE image, EFI_SYSTEM_TABLE *systab) {
    inst_t *s;
    CHAR16 ks[128];
    InitializeLib(image, systab);
    CALL(BS->SetWatchdogTimer, 4, 0, 0, 0, NULL);
    s = xalloc(sizeof *s);
    bootcfg_t *cfg = xalloc(sizeof *cfg);
    /* what the ISO's BOOT.CFG says; these values only when the CD has none */
    wcopy(cfg->title, ARRAY_LEN(cfg->title), L"Loading ESXi installer");
    wcopy(cfg->kernelopt, ARRAY_LEN(cfg->kernelopt), L"runweasel cdromBoot");
    cfg->timeout = 5;
    tui_init();
    s->have_cd = disks_find_cdrom(&s->cd);
    if (s->have_cd) bootcfg_read_cd(&s->cd, cfg);
    wcopy(s->options, BOOTOPTS_CAP, cfg->kernelopt);
    bootloader_run(cfg->title, s->options, BOOTOPTS_CAP, cfg->timeout);
    xfree(cfg);
    acpi_on_power_button(sys_poweroff); /* the kernel is up: the power button powers the installer off */
    /* 6.7 lists the stick only with the legacy drivers; 8.0 has none and ignores the option like any
     * unknown one */
    s->prefer_vmklinux = PROFILE->has_vmklinux && bootopts_is(s->options, L"preferVMklinux", L"TRUE");
    s->keyboard = keyboard_default();
    kernel_boot_screen();
    if (bootopts_get(s->options, L"ks", ks, ARRAY_LEN(ks))) ks_run(s, ks);

    screen_id next = SCR_WELCOME;
    for (;;) {
        switch (next) {
        case SCR_WELCOME: next = scr_welcome(s); break;
        case SCR_EULA: next = scr_eula(s); break;
        case SCR_SCAN: next = scr_scan(s); break;
        case SCR_DISKS: next = scr_disks(s); break;
        case SCR_OSDATA: next = scr_osdata(s); break;
        case SCR_EXISTING: next = scr_existing(s); break;
        case SCR_KEYBOARD: next = scr_keyboard(s); break;
        case SCR_PASSWORD: next = scr_password(s); break;
        case SCR_SYSSCAN: next = scr_sysscan(s); break;
        case SCR_CONFIRM: next = scr_confirm(s); break;
        case SCR_PROGRESS: next = scr_progress(s); break;
        case SCR_COMPLETE: next = scr_complete(s); break;
        case SCR_REBOOT:
        default: sys_reset();
        }
    }
    return EFI_SUCCESS;
}
