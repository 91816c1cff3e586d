/* state.c - the settings state on the bootbank (partition 5, \state.cfg): key=value lines, values may be
 * padded with spaces by the installer (trimmed here). Loaded at boot; written back on reboot/shut down
 * (like ESXi's auto-backup of state.tgz) and by /sbin/auto-backup.sh. The host reads it with mtools. */
#include "esxi.h"

static void trim(CHAR16 *s) {
    UINTN n = wlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r')) s[--n] = 0;
    UINTN i = 0;
    while (s[i] == ' ' || s[i] == '\t') i++;
    if (i) {
        UINTN j = 0;
        while (s[i]) s[j++] = s[i++];
        s[j] = 0;
    }
}

void state_parse(const CHAR8 *text, UINTN len) {
    UINTN i = 0;
    G->n_st = 0;
    while (i < len && G->n_st < ST_MAX) {
        UINTN e = i;
        while (e < len && text[e] != '\n') e++;
        CHAR16 line[ST_KEY + ST_VAL];
        UINTN n = 0;
        for (UINTN j = i; j < e && n + 1 < ARRAY_LEN(line); j++) line[n++] = (CHAR16)text[j];
        line[n] = 0;
        i = e + 1;
        st_entry *s = &G->st[G->n_st++];
        ZeroMem(s, sizeof *s);
        UINTN eq = 0;
        while (line[eq] && line[eq] != '=') eq++;
        if (line[0] == '#' || line[eq] != '=') {
            trim(line);
            wcopy(s->val, ST_VAL, line);
            if (!line[0] && i >= len) G->n_st--; /* no trailing empty entry */
            continue;
        }
        line[eq] = 0;
        wcopy(s->key, ST_KEY, line);
        trim(s->key);
        wcopy(s->val, ST_VAL, line + eq + 1);
        trim(s->val);
        /* an installer placeholder never filled in reads as empty */
        if (s->val[0] == '@' && s->val[1] == '@') s->val[0] = 0;
    }
}

static st_entry *find(const CHAR16 *key) {
    for (UINTN i = 0; i < G->n_st; i++)
        if (G->st[i].key[0] && StrCmp(G->st[i].key, (CHAR16 *)key) == 0) return &G->st[i];
    return NULL;
}

const CHAR16 *st_get(const CHAR16 *key) {
    st_entry *e = find(key);
    return e ? e->val : NULL;
}

void st_set(const CHAR16 *key, const CHAR16 *val) {
    st_entry *e = find(key);
    if (!e) {
        if (G->n_st >= ST_MAX) return;
        e = &G->st[G->n_st++];
        ZeroMem(e, sizeof *e);
        wcopy(e->key, ST_KEY, key);
    }
    if (StrCmp(e->val, (CHAR16 *)val) != 0) G->dirty = TRUE;
    wcopy(e->val, ST_VAL, val);
}

BOOLEAN st_bool(const CHAR16 *key, BOOLEAN dflt) {
    const CHAR16 *v = st_get(key);
    if (!v || !v[0]) return dflt;
    return wcmp_ci(v, L"TRUE") == 0 || wcmp_ci(v, L"1") == 0 || wcmp_ci(v, L"yes") == 0;
}

void st_set_bool(const CHAR16 *key, BOOLEAN v) {
    st_set(key, v ? L"TRUE" : L"FALSE");
}

/* The installer stores the root password as "fnv1a64:<hex>" (sim_pwhash); plain text is accepted too. */
BOOLEAN st_password_ok(const CHAR16 *user, const CHAR16 *pw) {
    const CHAR16 *want = st_get(L"rootpw");
    CHAR16 hash[26];
    if (StrCmp((CHAR16 *)user, L"root") != 0) return FALSE;
    if (!want || !want[0]) return pw[0] == 0; /* no password stored: empty password */
    if (wstarts_ci(want, L"fnv1a64:")) {
        sim_pwhash(pw, hash);
        return wcmp_ci(hash, want) == 0;
    }
    return StrCmp((CHAR16 *)want, (CHAR16 *)pw) == 0;
}

BOOLEAN state_load(void) {
    EFI_FILE_HANDLE root = fs_open_sibling(G->boot_part, 5);
    UINTN len = 0;
    CHAR8 *text = fs_read_all(root, STATE_FILE, &len);
    fs_close(root);
    G->have_bootbank = root != NULL;
    if (!text) {
        G->n_st = 0;
        return FALSE;
    }
    state_parse(text, len);
    FreePool(text);
    G->dirty = FALSE;
    return TRUE;
}

BOOLEAN state_save(void) {
    UINTN cap = G->n_st * (ST_KEY + ST_VAL + 2) + 1, n = 0;
    CHAR8 *buf = xalloc(cap);
    for (UINTN i = 0; i < G->n_st; i++) {
        st_entry *e = &G->st[i];
        if (e->key[0]) {
            n += w2a(buf + n, cap - n, e->key);
            buf[n++] = '=';
        }
        n += w2a(buf + n, cap - n, e->val);
        buf[n++] = '\n';
    }
    EFI_FILE_HANDLE root = fs_open_sibling(G->boot_part, 5);
    EFI_STATUS st = root ? fs_write_all(root, STATE_FILE, buf, n) : EFI_NOT_FOUND;
    fs_close(root);
    xfree(buf);
    if (!EFI_ERROR(st)) G->dirty = FALSE;
    return !EFI_ERROR(st);
}
