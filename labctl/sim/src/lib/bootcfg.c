/* bootcfg.c - see bootcfg.h */
#include "bootcfg.h"
#include "iso9660.h"

BOOLEAN bootcfg_value(const CHAR8 *t, UINTN len, const CHAR8 *key, CHAR16 *out, UINTN cap) {
    UINTN kl = alen(key), i = 0;
    while (i < len) {
        UINTN e = i;
        while (e < len && t[e] != '\n') e++;
        if (e - i > kl && CompareMem(t + i, key, kl) == 0 && t[i + kl] == '=') {
            a2w(out, cap, t + i + kl + 1, e - i - kl - 1);
            UINTN n = wlen(out);
            while (n > 0 && (out[n - 1] == '\r' || out[n - 1] == ' ')) out[--n] = 0;
            if (out[0] == '@' && out[1] == '@') out[0] = 0;
            return TRUE;
        }
        i = e + 1;
    }
    return FALSE;
}

void bootcfg_parse(const CHAR8 *text, UINTN len, bootcfg_t *cfg) {
    CHAR16 v[16];
    CHAR16 title[80];
    cfg->found = TRUE;
    if (bootcfg_value(text, len, (const CHAR8 *)"title", title, ARRAY_LEN(title)) && title[0])
        wcopy(cfg->title, ARRAY_LEN(cfg->title), title);
    bootcfg_value(text, len, (const CHAR8 *)"kernelopt", cfg->kernelopt, ARRAY_LEN(cfg->kernelopt));
    if (bootcfg_value(text, len, (const CHAR8 *)"timeout", v, ARRAY_LEN(v)) && v[0]) {
        UINTN n = 0;
        BOOLEAN ok = TRUE;
        for (const CHAR16 *p = v; *p; p++) {
            if (*p < '0' || *p > '9' || n > 3600) {
                ok = FALSE;
                break;
            }
            n = n * 10 + (*p - '0');
        }
        if (ok) cfg->timeout = n;
    }
}

BOOLEAN bootcfg_read_cd(const disk_t *cd, bootcfg_t *cfg) {
    static const CHAR16 *const paths[] = {L"/EFI/BOOT/BOOT.CFG", L"/BOOT.CFG"};
    for (UINTN i = 0; i < ARRAY_LEN(paths); i++) {
        iso_file f;
        if (!iso_find(cd, paths[i], &f)) continue;
        UINTN len = 0;
        CHAR8 *text = iso_read_all(cd, &f, &len);
        if (!text) continue;
        bootcfg_parse(text, len, cfg);
        xfree(text);
        return TRUE;
    }
    return FALSE;
}
