/* sysscan.c - "Scanning system..." and "Error(s)/Warning(s) Found During System Scan". */
#include "installer.h"

#define MIN_RAM_BYTES (4ULL << 30)

UINTN sysscan_check(const disk_t *target, CHAR16 msgs[][200], UINTN cap, UINTN *n_msgs, UINTN *warnings) {
    UINTN errors = 0;
    UINT64 ram = sys_ram_bytes();
    UINTN cpus = sys_cpu_count();
    *n_msgs = 0;
    *warnings = 0;
    /* 3.125 % tolerance below 4 GiB (firmware-reserved memory is not reported) */
    if (ram < MIN_RAM_BYTES - MIN_RAM_BYTES / 32 && *n_msgs < cap) {
        CHAR16 have[16];
        fmt_capacity(have, ARRAY_LEN(have), ram);
        SPrint(msgs[(*n_msgs)++], 200 * sizeof(CHAR16),
               L"<MEMORY_SIZE ERROR: This host has %s of RAM. 3.87 GiB are needed.>", have);
        errors++;
    }
    if (cpus < 2 && *n_msgs < cap) {
        SPrint(msgs[(*n_msgs)++], 200 * sizeof(CHAR16),
               L"<CPU_CORES ERROR: This host has %d cpu core(s) which is less than recommended 2 cpu cores>", cpus);
        errors++;
    }
    if (!sys_has_hw_virt() && *n_msgs < cap) {
        wcopy(msgs[(*n_msgs)++], 200,
              L"<HARDWARE_VIRTUALIZATION WARNING: Hardware Virtualization is not a feature of the CPU, or is not enabled in the BIOS>");
        (*warnings)++;
    }
    /* 8.0: below 32 GB the installer warns and goes on (reference: "Minimum disk") */
    if (target && PROFILE->warn_below_bytes && target->sectors * target->block_size < PROFILE->warn_below_bytes &&
        *n_msgs < cap) {
        wcopy(msgs[(*n_msgs)++], 200, PROFILE->small_warning);
        (*warnings)++;
    }
    return errors;
}

/* Print a long message wrapped at width, returns rows used. */
static UINTN wrap(UINTN row, UINTN col, UINTN width, UINTN attr, const CHAR16 *msg) {
    CHAR16 line[TUI_COLS + 1];
    UINTN rows = 0, n = wlen(msg), pos = 0;
    while (pos < n) {
        UINTN take = n - pos <= width ? n - pos : width;
        if (pos + take < n) {
            UINTN b = take;
            while (b > 0 && msg[pos + b] != ' ') b--;
            if (b > 0) take = b;
        }
        for (UINTN i = 0; i < take; i++) line[i] = msg[pos + i];
        line[take] = 0;
        tui_text(row + rows++, col, attr, line);
        pos += take;
        while (pos < n && msg[pos] == ' ') pos++;
    }
    return rows;
}

screen_id scr_sysscan(inst_t *s) {
    CHAR16 msgs[4][200];
    UINTN n = 0, warnings = 0, errors;
    dlg_t d;
    dlg_open(&d, 50, 9, L"Scanning system...", NULL);
    dlg_center(&d, 4, A_DIALOG, L"Scanning system...");
    sim_delay(300, 5000);
    errors = sysscan_check(&s->target, msgs, ARRAY_LEN(msgs), &n, &warnings);
    if (n == 0) return SCR_CONFIRM;
    for (;;) {
        dlg_open(&d, 76, 18, L"Error(s)/Warning(s) Found During System Scan",
                 errors ? L"(F9) Back     (F11) Reboot" : L"(Esc) Cancel    (F9) Back    (Enter) Continue");
        dlg_line(&d, 3, A_DIALOG, errors ? L"The system encountered the following error(s)."
                                         : L"The system encountered the following warning(s).");
        UINTN r = d.row + 5;
        for (UINTN i = 0; i < n; i++) r += wrap(r, d.col + 2, d.w - 4, A_DIALOG, msgs[i]) + 1;
        if (!errors) dlg_line(&d, d.h - 5, A_DIALOG, L"Use the arrow keys to scroll.");
        for (;;) {
            tui_key k;
            if (!tui_read_key(&k, 0)) continue;
            if (k.scan == K_F9) return SCR_PASSWORD;
            if (errors && k.scan == K_F11) return SCR_REBOOT;
            if (!errors && k.ch == CH_ENTER) return SCR_CONFIRM;
            if (!errors && k.scan == K_ESC) { confirm_cancel(); break; }
        }
    }
}
