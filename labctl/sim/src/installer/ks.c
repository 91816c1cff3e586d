/* ks.c - scripted install: ks=cdrom:/PATH read from the ISO9660 tree (reference §5). */
#include "installer.h"

#define KS_MAX_LINE 256

typedef struct {
    BOOLEAN eula, have_pw, have_install, reboot, overwrite, preserve, novmfs;
    CHAR16 firstdisk[128];
    CHAR16 errors[4][160];
    UINTN n_errors;
} ks_t;

static void ks_fail(const CHAR16 *const *lines, UINTN n) {
    dlg_t d;
    dlg_open(&d, 78, (n + 8) < 20 ? n + 8 : 20, L"Error (see log for more info):", L"(Enter) Reboot");
    dlg_line(&d, 3, A_DIALOG, L"An error has occurred while parsing the installation script");
    for (UINTN i = 0; i < n && i < 10; i++) dlg_line(&d, 5 + i, A_DIALOG, lines[i]);
    for (;;) {
        tui_key k;
        if (tui_read_key(&k, 0) && k.ch == CH_ENTER) sys_reset();
    }
}

static void ks_err(ks_t *ks, const CHAR16 *path, UINTN line, const CHAR16 *msg, const CHAR16 *arg) {
    if (ks->n_errors >= ARRAY_LEN(ks->errors)) return;
    SPrint(ks->errors[ks->n_errors++], 160 * sizeof(CHAR16), L"error:%s:%d: %s%s", path, line, msg, arg ? arg : L"");
}

/* Split a line into words (quotes group words); returns count. */
static UINTN split(CHAR16 *line, CHAR16 **words, UINTN max) {
    UINTN n = 0;
    CHAR16 *p = line;
    while (*p && n < max) {
        while (*p == ' ' || *p == '\t') p++;
        if (!*p) break;
        if (*p == '"') {
            words[n++] = ++p;
            while (*p && *p != '"') p++;
        } else {
            words[n++] = p;
            while (*p && *p != ' ' && *p != '\t') p++;
        }
        if (*p) *p++ = 0;
    }
    return n;
}

static BOOLEAN disk_matches(const disk_t *d, const CHAR16 *spec) {
    CHAR16 label[64];
    if (wcmp_ci(spec, L"usb") == 0) return d->usb;
    if (wcmp_ci(spec, L"local") == 0) return !d->usb;
    if (wcmp_ci(spec, L"remote") == 0) return FALSE;
    if (wcmp_ci(spec, d->name) == 0) return TRUE;
    disk_label(d, label, ARRAY_LEN(label));
    /* a model or vendor substring, as ESXi matches --firstdisk=<model> */
    UINTN n = wlen(spec), m = wlen(label);
    for (UINTN i = 0; n && i + n <= m; i++)
        if (wncmp_ci(label + i, spec, n) == 0) return TRUE;
    return FALSE;
}

static void parse(inst_t *s, ks_t *ks, const CHAR16 *path, const CHAR8 *text) {
    UINTN lineno = 0;
    const CHAR8 *p = text;
    while (*p) {
        CHAR16 line[KS_MAX_LINE], *w[16];
        UINTN n = 0;
        lineno++;
        while (*p && *p != '\n') {
            if (*p != '\r' && n + 1 < KS_MAX_LINE) line[n++] = (CHAR16)(UINT8)*p;
            p++;
        }
        if (*p == '\n') p++;
        line[n] = 0;
        UINTN nw = split(line, w, ARRAY_LEN(w));
        if (nw == 0 || w[0][0] == '#') continue;
        if (w[0][0] == '%') break; /* %pre / %post / %firstboot sections: not run by the simulator */
        if (wcmp_ci(w[0], L"vmaccepteula") == 0 || wcmp_ci(w[0], L"accepteula") == 0) {
            ks->eula = TRUE;
        } else if (wcmp_ci(w[0], L"rootpw") == 0) {
            UINTN i = 1;
            if (i < nw && wcmp_ci(w[i], L"--iscrypted") == 0) i++;
            if (i >= nw) { ks_err(ks, path, lineno, L"rootpw: a password is required", NULL); continue; }
            const CHAR16 *pw = w[i];
            if (wstarts_ci(pw, L"--password=")) pw += 11;
            const CHAR16 *problem = password_problem(pw);
            if (problem && i == 1) { ks_err(ks, path, lineno, L"rootpw: ", problem); continue; }
            wcopy(s->pw, PW_CAP, pw);
            ks->have_pw = TRUE;
        } else if (wcmp_ci(w[0], L"keyboard") == 0) {
            CHAR16 name[64];
            name[0] = 0;
            for (UINTN i = 1; i < nw; i++) {
                if (i > 1) wcat(name, ARRAY_LEN(name), L" ");
                wcat(name, ARRAY_LEN(name), w[i]);
            }
            BOOLEAN found = FALSE;
            for (UINTN i = 0; i < keyboard_count; i++)
                if (wcmp_ci(name, keyboard_names[i]) == 0) {
                    s->keyboard = i;
                    found = TRUE;
                }
            if (!found) ks_err(ks, path, lineno, L"keyboard: unknown keyboard layout ", name);
        } else if (wcmp_ci(w[0], L"install") == 0) {
            ks->have_install = TRUE;
            wcopy(ks->firstdisk, ARRAY_LEN(ks->firstdisk), L"local,remote,usb");
            for (UINTN i = 1; i < nw; i++) {
                if (wstarts_ci(w[i], L"--firstdisk=")) wcopy(ks->firstdisk, ARRAY_LEN(ks->firstdisk), w[i] + 12);
                else if (wcmp_ci(w[i], L"--firstdisk") == 0) {
                } else if (wcmp_ci(w[i], L"--overwritevmfs") == 0) ks->overwrite = TRUE;
                else if (wcmp_ci(w[i], L"--preservevmfs") == 0) ks->preserve = TRUE;
                else if (wcmp_ci(w[i], L"--novmfsondisk") == 0) ks->novmfs = TRUE;
                else if (wcmp_ci(w[i], L"--ignoressd") == 0 || wcmp_ci(w[i], L"--ignoreprereqwarnings") == 0 ||
                         wcmp_ci(w[i], L"--ignoreprereqerrors") == 0 || wcmp_ci(w[i], L"--forceunsupportedinstall") == 0) {
                } else ks_err(ks, path, lineno, L"install: unknown option ", w[i]);
            }
        } else if (wcmp_ci(w[0], L"reboot") == 0) {
            ks->reboot = TRUE;
        } else if (wcmp_ci(w[0], L"network") == 0 || wcmp_ci(w[0], L"serialnum") == 0 ||
                   wcmp_ci(w[0], L"clearpart") == 0 || wcmp_ci(w[0], L"paranoid") == 0 ||
                   wcmp_ci(w[0], L"dryrun") == 0) {
            /* accepted, nothing to simulate */
        } else {
            CHAR16 q[80];
            SPrint(q, sizeof q, L"\"%s\"", w[0]);
            ks_err(ks, path, lineno, L"unknown command ", q);
        }
    }
    if (!ks->eula) ks_err(ks, path, lineno, L"vmaccepteula command was not found.", NULL);
    if (!ks->have_pw) ks_err(ks, path, lineno, L"rootpw command was not found.", NULL);
    if (!ks->have_install) ks_err(ks, path, lineno, L"install command was not found.", NULL);
}

static BOOLEAN pick_disk(inst_t *s, ks_t *ks) {
    CHAR16 list[128], *q = list;
    wcopy(list, ARRAY_LEN(list), ks->firstdisk);
    while (*q) {
        CHAR16 *spec = q;
        while (*q && *q != ',') q++;
        if (*q) *q++ = 0;
        for (UINTN v = 0; v < s->n_visible; v++)
            if (disk_matches(&s->all[s->visible[v]], spec)) {
                s->target = s->all[s->visible[v]];
                return TRUE;
            }
    }
    return FALSE;
}

void ks_run(inst_t *s, const CHAR16 *spec) {
    ks_t *ks = xalloc(sizeof *ks);
    CHAR16 path[120], line[160];
    iso_file f;
    dlg_t d;
    const CHAR16 *lines[4];

    dlg_open(&d, 60, 9, L"Reading installation script", NULL);
    dlg_center(&d, 4, A_DIALOG, L"Reading the installation script...");
    sim_delay(200, 3000);
    if (!wstarts_ci(spec, L"cdrom:")) {
        SPrint(line, sizeof line, L"error: unsupported kickstart location -- %s", spec);
        lines[0] = line;
        ks_fail(lines, 1);
    }
    wcopy(path, ARRAY_LEN(path), spec + 6);
    if (!s->have_cd || !iso_find(&s->cd, path, &f)) {
        SPrint(line, sizeof line, L"error:%s: cannot find kickstart file on cd-rom with path -- %s", path, path);
        lines[0] = line;
        ks_fail(lines, 1);
    }
    CHAR8 *text = iso_read_all(&s->cd, &f, NULL);
    if (!text) {
        SPrint(line, sizeof line, L"error:%s: cannot read the kickstart file", path);
        lines[0] = line;
        ks_fail(lines, 1);
    }
    parse(s, ks, path, text);
    xfree(text);
    if (ks->n_errors) {
        for (UINTN i = 0; i < ks->n_errors; i++) lines[i] = ks->errors[i];
        ks_fail(lines, ks->n_errors);
    }
    inst_scan_disks(s);
    if (!pick_disk(s, ks)) {
        SPrint(line, sizeof line, L"error:%s: install --firstdisk=%s: no matching disk was found", path, ks->firstdisk);
        lines[0] = line;
        ks_fail(lines, 1);
    }
    if (!inst_disk_big_enough(&s->target)) {
        lines[0] = PROFILE->too_small;
        ks_fail(lines, 1);
    }
    BOOLEAN vmfs = FALSE;
    s->existing = inst_probe_existing(&s->target, &vmfs);
    if (vmfs && !ks->overwrite && !ks->preserve) {
        SPrint(line, sizeof line, L"error:%s: the disk (%s) contains a VMFS datastore:", path, s->target.name);
        lines[0] = line;
        lines[1] = L"use install --overwritevmfs or --preservevmfs";
        ks_fail(lines, 2);
    }
    s->mode = ks->preserve ? MODE_INSTALL_PRESERVE : MODE_INSTALL_OVERWRITE;
    s->novmfs = ks->novmfs;
    s->ks_reboot = ks->reboot;
    s->kickstart = TRUE;
    if (s->target.usb && !ks->novmfs)
        SPrint(s->warning, sizeof s->warning, L"Warning: the disk (%s) does not support VMFS.", s->target.name);

    CHAR16 msgs[4][200];
    UINTN n = 0, warnings = 0;
    if (sysscan_check(&s->target, msgs, ARRAY_LEN(msgs), &n, &warnings)) {
        for (UINTN i = 0; i < n; i++) lines[i] = msgs[i];
        ks_fail(lines, n);
    }
    xfree(ks);
    if (scr_progress(s) == SCR_COMPLETE) scr_complete(s);
    sys_reset();
}
