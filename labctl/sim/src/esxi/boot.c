/* boot.c - from the stick's boot loader to the DCUI: boot.cfg (title, kernelopt) from the bootbank, the
 * esx-boot countdown, the loading screens, and what this boot runs with (the "Runtime" values). Also the
 * way down: save the state (auto-backup), then restart or power off. */
#include "esxi.h"
#include "../lib/bootcfg.h"

static CHAR16 bootcfg_title[80];
static CHAR16 bootcfg_kernelopt[BOOTOPTS_CAP];
static UINTN bootcfg_timeout = 5;

static void read_bootcfg(void) {
    wcopy(bootcfg_title, ARRAY_LEN(bootcfg_title), L"Loading VMware ESXi");
    bootcfg_kernelopt[0] = 0;
    EFI_FILE_HANDLE root = fs_open_sibling(G->boot_part, 5);
    UINTN len = 0;
    CHAR8 *t = fs_read_all(root, BOOTCFG_FILE, &len);
    fs_close(root);
    if (!t) return;
    bootcfg_t *cfg = xalloc(sizeof *cfg);
    wcopy(cfg->title, ARRAY_LEN(cfg->title), bootcfg_title);
    cfg->timeout = bootcfg_timeout;
    bootcfg_parse(t, len, cfg);
    wcopy(bootcfg_title, ARRAY_LEN(bootcfg_title), cfg->title);
    wcopy(bootcfg_kernelopt, ARRAY_LEN(bootcfg_kernelopt), cfg->kernelopt);
    bootcfg_timeout = cfg->timeout;
    xfree(cfg);
    FreePool(t);
}

static void find_disks(void) {
    G->n_disks = disks_scan(G->disks, DISKS_MAX);
    G->boot_disk = -1;
    CHAR16 *bp = fs_disk_path_text(G->boot_part);
    if (bp) {
        wcopy(G->boot_disk_path, ARRAY_LEN(G->boot_disk_path), bp);
        FreePool(bp);
    }
    gpt_table *t = xalloc(sizeof *t);
    for (UINTN i = 0; i < G->n_disks; i++) {
        if (G->boot_disk_path[0] && StrCmp(G->disks[i].path, G->boot_disk_path) == 0) G->boot_disk = (INTN)i;
        if (G->disks[i].usb || G->have_vmfs || !gpt_read(&G->disks[i], t)) continue;
        for (UINTN p = 0; p < t->count; p++) {
            if (CompareGuid(&t->parts[p].type, &GPT_TYPE_VMFS) == 0) {
                G->have_vmfs = TRUE;
                esxi_volume_uuid(&t->parts[p].unique, G->vmfs_uuid, ARRAY_LEN(G->vmfs_uuid));
                wcopy(G->vmfs_name, ARRAY_LEN(G->vmfs_name), L"datastore1");
                break;
            }
        }
    }
    xfree(t);
}

/* The scratch location this boot uses: the configured one, else a local datastore's .locker, else the
 * RAM disk. "/vmfs/volumes/datastore1/..." is resolved to the datastore's UUID like ESXi does. */
static void pick_scratch(void) {
    const CHAR16 *cfg = st_get(L"scratch.configured");
    CHAR16 *out = G->rt.scratch;
    UINTN cap = ARRAY_LEN(G->rt.scratch);
    if (cfg && cfg[0]) {
        CHAR16 by_name[64], by_uuid[64];
        SPrint(by_name, sizeof by_name, L"/vmfs/volumes/%s", G->vmfs_name);
        SPrint(by_uuid, sizeof by_uuid, L"/vmfs/volumes/%s", G->vmfs_uuid);
        UINTN nl = wlen(by_name), ul = wlen(by_uuid);
        if (G->have_vmfs && StrnCmp((CHAR16 *)cfg, by_name, nl) == 0 && (cfg[nl] == '/' || cfg[nl] == 0)) {
            SPrint(out, cap * sizeof(CHAR16), L"%s%s", by_uuid, cfg + nl);
            return;
        }
        if (G->have_vmfs && StrnCmp((CHAR16 *)cfg, by_uuid, ul) == 0 && (cfg[ul] == '/' || cfg[ul] == 0)) {
            wcopy(out, cap, cfg);
            return;
        }
        /* a location on a volume this host does not have cannot be used: ESXi falls back to the RAM disk */
        if (!wstarts_ci(cfg, L"/vmfs/volumes/")) {
            wcopy(out, cap, cfg);
            return;
        }
    }
    if (G->have_vmfs)
        SPrint(out, cap * sizeof(CHAR16), L"/vmfs/volumes/%s/.locker", G->vmfs_uuid);
    else
        wcopy(out, cap, L"/tmp/scratch");
}

static void loading_screens(void) {
    static const CHAR16 *mods[] = {L"/b.b00", L"/jumpstrt.gz", L"/useropts.gz", L"/features.gz", L"/k.b00",
                                   L"/chardevs.b00", L"/s.v00", L"/esx_dvfi.v00", L"/state.tgz"};
    tui_clear(A_SCREEN);
    tui_center(2, 0, TUI_COLS, A_BRIGHT, bootcfg_title);
    for (UINTN i = 0; i < ARRAY_LEN(mods); i++) {
        tui_text_w(4, 2, 60, A_SCREEN, L"");
        tui_textf(4, 2, A_SCREEN, L"Loading %s", mods[i]);
        sim_delay(20, 800);
    }
    static const CHAR16 *steps[] = {L"vmkernel", L"vmkusb", L"vmklinux_9", L"nmp", L"vmw_satp_local",
                                    L"vmw_psp_fixed", L"hostd", L"vpxa", L"dcui"};
    tui_clear(A_SCREEN);
    tui_fill(0, 0, TUI_COLS, 12, A_DCUI_TOP);
    tui_center(4, 0, TUI_COLS, A_DCUI_TOP, ESXI_TITLE);
    tui_center(7, 0, TUI_COLS, A_DCUI_TOP, L"Loading VMware ESXi");
    for (UINTN i = 0; i < ARRAY_LEN(steps); i++) {
        CHAR16 line[80];
        if (i == 1 && !G->rt.vmkusb_loaded) continue; /* a disabled module is not loaded */
        if (i == 2 && !PROFILE->has_vmklinux) continue; /* 7.0 and later have no vmklinux */
        SPrint(line, sizeof line, i < 6 ? L"Loading module %s ..." : L"Starting service %s ...", steps[i]);
        tui_text_w(14, 0, TUI_COLS, A_SCREEN, L"");
        tui_center(14, 0, TUI_COLS, A_SCREEN, line);
        sim_delay(40, 2000);
    }
}

void boot_run(void) {
    read_bootcfg();
    wcopy(G->options, BOOTOPTS_CAP, bootcfg_kernelopt);
    bootloader_run(bootcfg_title, G->options, BOOTOPTS_CAP, bootcfg_timeout);
    find_disks();
    /* Runtime values: the configured state, unless this boot's options say otherwise. */
    G->rt.prefer_vmklinux = st_bool(L"kernel.preferVmklinux", FALSE);
    CHAR16 v[16];
    if (bootopts_get(G->options, L"preferVmklinux", v, ARRAY_LEN(v)))
        G->rt.prefer_vmklinux = wcmp_ci(v, L"TRUE") == 0 || wcmp_ci(v, L"1") == 0;
    if (!PROFILE->has_vmklinux) G->rt.prefer_vmklinux = FALSE; /* an unknown option, ignored */
    G->rt.vmkusb_loaded = st_bool(L"module.vmkusb.enabled", TRUE);
    pick_scratch();
    G->rt.persistent = wstarts_ci(G->rt.scratch, L"/vmfs/volumes/");
    loading_screens();
}

/* boot.cfg's kernelopt follows the configured kernel settings, so that esxcli's value is what the next
 * boot runs with (a preferVMklinux=TRUE from the install is replaced). */
static void sync_kernelopt(void) {
    EFI_FILE_HANDLE root = fs_open_sibling(G->boot_part, 5);
    UINTN len = 0;
    CHAR8 *t = fs_read_all(root, BOOTCFG_FILE, &len);
    if (!t) {
        fs_close(root);
        return;
    }
    CHAR8 *out = xalloc(len + 64);
    UINTN n = 0, i = 0;
    BOOLEAN changed = FALSE;
    while (i < len) {
        UINTN e = i;
        while (e < len && t[e] != '\n') e++;
        if (e - i > 10 && CompareMem(t + i, "kernelopt=", 10) == 0) {
            /* copy the words, replacing preferVmklinux=... by the configured value */
            CopyMem(out + n, t + i, 10);
            n += 10;
            UINTN j = i + 10;
            BOOLEAN first = TRUE;
            while (j < e) {
                while (j < e && t[j] == ' ') j++;
                UINTN w = j;
                while (w < e && t[w] != ' ' && t[w] != '\r') w++;
                if (w == j) break;
                CHAR16 word[64];
                a2w(word, ARRAY_LEN(word), t + j, w - j);
                if (!first) out[n++] = ' ';
                first = FALSE;
                if (wstarts_ci(word, L"preferVmklinux=")) {
                    const CHAR8 *val = st_bool(L"kernel.preferVmklinux", FALSE) ? (const CHAR8 *)"TRUE"
                                                                                  : (const CHAR8 *)"FALSE";
                    CopyMem(out + n, t + j, 15);
                    n += 15;
                    CopyMem(out + n, val, alen(val));
                    n += alen(val);
                    changed = TRUE;
                } else {
                    CopyMem(out + n, t + j, w - j);
                    n += w - j;
                }
                j = w;
            }
        } else {
            CopyMem(out + n, t + i, e - i);
            n += e - i;
        }
        if (e < len) out[n++] = '\n';
        i = e + 1;
    }
    if (changed) fs_write_all(root, BOOTCFG_FILE, out, n);
    xfree(out);
    FreePool(t);
    fs_close(root);
}

void esxi_shutdown(BOOLEAN restart) {
    CALL(ST->ConOut->EnableCursor, 2, ST->ConOut, FALSE);
    tui_clear(A_SCREEN);
    tui_fill(0, 0, TUI_COLS, 12, A_DCUI_TOP);
    tui_center(4, 0, TUI_COLS, A_DCUI_TOP, ESXI_TITLE);
    tui_center(14, 0, TUI_COLS, A_SCREEN, L"Saving the configuration to the bootbank ...");
    BOOLEAN ok = state_save();
    sync_kernelopt();
    tui_text_w(14, 0, TUI_COLS, A_SCREEN, L"");
    tui_center(14, 0, TUI_COLS, A_SCREEN, ok ? L"Configuration saved." : L"Could not save the configuration.");
    tui_center(16, 0, TUI_COLS, A_SCREEN, restart ? L"Restarting system..." : L"Shutting down system...");
    sim_delay(200, 5000);
    if (restart) sys_reset();
    sys_poweroff();
}
