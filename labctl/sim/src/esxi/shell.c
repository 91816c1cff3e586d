/* shell.c - the ESXi Shell console (Alt+F1): blank with a hint while the ESXi Shell is disabled, a login
 * prompt once it is enabled, then the busybox shell: prompt "[root@localhost:~] ", line editing with
 * Backspace (Ctrl+C drops the line, Ctrl+D on an empty line logs out), the commands of reference §4.
 * The console's state survives switching to the DCUI and back (the grid in vt.c). */
#include "esxi.h"

#define LINE_CAP 512
#define MAX_ARGS 32
#define PROMPT L"[root@localhost:~] "

typedef enum { SH_OFF, SH_LOGIN_USER, SH_LOGIN_PASS, SH_READY } sh_mode;

static sh_mode mode = SH_OFF;
static CHAR16 line[LINE_CAP];
static CHAR16 user[64];
static CHAR16 hist[LINE_CAP];

/* "cmd | grep [-i] [-v] WORD": output lines pass through this filter (plain substring match). */
static struct {
    BOOLEAN on, icase, invert;
    CHAR16 pat[64];
    CHAR16 buf[1024];
    UINTN n;
} filt;

static BOOLEAN contains(const CHAR16 *s, const CHAR16 *p, BOOLEAN icase) {
    UINTN pl = wlen(p);
    for (; *s; s++) {
        UINTN i = 0;
        while (i < pl && s[i] && (icase ? wlower(s[i]) == wlower(p[i]) : s[i] == p[i])) i++;
        if (i == pl) return TRUE;
    }
    return pl == 0;
}

static void filt_line(void) {
    filt.buf[filt.n] = 0;
    while (filt.n > 0 && filt.buf[filt.n - 1] == '\r') filt.buf[--filt.n] = 0;
    if (contains(filt.buf, filt.pat, filt.icase) != filt.invert) {
        vt_puts(filt.buf);
        vt_puts(L"\r\n");
    }
    filt.n = 0;
}

void shell_out(const CHAR16 *fmt, ...) {
    CHAR16 buf[1024];
    va_list ap;
    va_start(ap, fmt);
    VSPrint(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (!filt.on) {
        vt_puts(buf);
        return;
    }
    for (const CHAR16 *p = buf; *p; p++) {
        if (*p == '\n')
            filt_line();
        else if (filt.n + 1 < ARRAY_LEN(filt.buf))
            filt.buf[filt.n++] = *p;
    }
}

static void login_prompt(void) {
    vt_clear();
    vt_printf(L"ESXi %s http://www.vmware.com\r\n", ESXI_VERSION);
    vt_puts(L"Copyright (c) 2007-2018 VMware, Inc.\r\n\r\n");
    vt_puts(HOSTNAME L" login: ");
    line[0] = 0;
    mode = SH_LOGIN_USER;
}

static void draw_disabled(void) {
    CALL(ST->ConOut->EnableCursor, 2, ST->ConOut, FALSE);
    tui_clear(A_SCREEN);
    tui_text(22, 0, A_SCREEN, L"ESXi Shell access is disabled on this host.");
    tui_text(23, 0, A_SCREEN, L"Enable it in the DCUI (Alt+F2): <F2>, Troubleshooting Options.");
}

static void welcome(void) {
    vt_puts(L"The time and date of this login have been sent to the system logs.\r\n\r\n");
    vt_puts(L"WARNING:\r\n");
    vt_puts(L"   All commands run on the ESXi shell are logged and may be included in\r\n");
    vt_puts(L"   support bundles. Do not provide passwords directly on the command line.\r\n");
    vt_puts(L"   Most tools can prompt for secrets or accept them from standard input.\r\n\r\n");
    vt_puts(L"VMware offers supported, powerful system administration tools.  Please\r\n");
    vt_puts(L"see www.vmware.com/go/sysadmintools for details.\r\n\r\n");
    vt_puts(L"The ESXi Shell can be disabled by an administrative user. See the\r\n");
    vt_puts(L"vSphere Security documentation for more information.\r\n");
}

/* Split a command line into words: blanks separate, '...' and "..." quote. Returns argc. */
static UINTN split(CHAR16 *s, CHAR16 **argv, UINTN max) {
    UINTN argc = 0;
    CHAR16 *w = s;
    while (*s) {
        while (*s == ' ' || *s == '\t') s++;
        if (!*s) break;
        if (argc >= max) break;
        argv[argc++] = w;
        while (*s && *s != ' ' && *s != '\t') {
            if (*s == '"' || *s == '\'') {
                CHAR16 q = *s++;
                while (*s && *s != q) *w++ = *s++;
                if (*s == q) s++;
            } else {
                *w++ = *s++;
            }
        }
        if (*s) s++;
        *w++ = 0;
    }
    return argc;
}

static void run_words(UINTN argc, CHAR16 **argv) {
    if (StrCmp(argv[0], L"exit") == 0 || StrCmp(argv[0], L"logout") == 0) {
        login_prompt();
        return;
    }
    if (StrCmp(argv[0], L"esxcli") == 0 || StrCmp(argv[0], L"/sbin/esxcli") == 0) {
        esxcli_main(argc, argv);
        return;
    }
    if (cmd_run(argc, argv)) return;
    shell_out(L"-sh: %s: not found\r\n", argv[0]);
}

static void run_line(CHAR16 *cmd) {
    CHAR16 *argv[MAX_ARGS];
    CHAR16 *pipe = NULL;
    for (CHAR16 *p = cmd; *p; p++)
        if (*p == '|') {
            *p = 0;
            pipe = p + 1;
            break;
        }
    UINTN argc = split(cmd, argv, MAX_ARGS);
    if (pipe) {
        CHAR16 *pv[8];
        UINTN pc = split(pipe, pv, ARRAY_LEN(pv));
        if (pc == 0 || argc == 0) {
            shell_out(L"-sh: syntax error: unexpected \"|\"\r\n");
            return;
        }
        if (StrCmp(pv[0], L"grep") != 0) {
            shell_out(L"-sh: %s: not found\r\n", pv[0]);
            return;
        }
        ZeroMem(&filt, sizeof filt);
        for (UINTN i = 1; i < pc; i++) {
            if (StrCmp(pv[i], L"-i") == 0) filt.icase = TRUE;
            else if (StrCmp(pv[i], L"-v") == 0) filt.invert = TRUE;
            else wcopy(filt.pat, ARRAY_LEN(filt.pat), pv[i]);
        }
        filt.on = TRUE;
        run_words(argc, argv);
        if (filt.n) filt_line();
        filt.on = FALSE;
        return;
    }
    if (argc == 0) return;
    run_words(argc, argv);
}

/* One key on the shell console. */
static void on_key(const tui_key *k) {
    UINTN n = wlen(line);
    if (k->ch == CH_ENTER) {
        vt_puts(L"\r\n");
        if (mode == SH_LOGIN_USER) {
            if (!line[0]) { /* busybox login asks again for an empty name */
                vt_puts(HOSTNAME L" login: ");
                return;
            }
            wcopy(user, ARRAY_LEN(user), line);
            line[0] = 0;
            vt_puts(L"Password: ");
            mode = SH_LOGIN_PASS;
            return;
        }
        if (mode == SH_LOGIN_PASS) {
            BOOLEAN ok = st_password_ok(user, line);
            ZeroMem(line, sizeof line);
            if (ok) {
                welcome();
                mode = SH_READY;
                vt_puts(PROMPT);
            } else {
                sim_delay(300, 3000);
                vt_puts(L"\r\nLogin incorrect\r\n\r\n" HOSTNAME L" login: ");
                mode = SH_LOGIN_USER;
            }
            return;
        }
        CHAR16 cmd[LINE_CAP];
        wcopy(cmd, LINE_CAP, line);
        if (line[0]) wcopy(hist, LINE_CAP, line);
        line[0] = 0;
        run_line(cmd);
        if (mode == SH_READY) vt_puts(PROMPT);
        return;
    }
    if (k->ch == CH_BACKSPACE || k->ch == 0x7f) {
        if (n > 0) {
            line[n - 1] = 0;
            if (mode != SH_LOGIN_PASS) vt_backspace();
        }
        return;
    }
    if ((k->shift & TUI_CTRL) && (k->ch == 'c' || k->ch == 'C' || k->ch == 3)) {
        vt_puts(L"^C\r\n");
        line[0] = 0;
        if (mode == SH_READY)
            vt_puts(PROMPT);
        else
            login_prompt();
        return;
    }
    if ((k->shift & TUI_CTRL) && (k->ch == 'd' || k->ch == 'D' || k->ch == 4)) {
        if (n == 0 && mode == SH_READY) {
            vt_puts(L"\r\n");
            login_prompt();
        }
        return;
    }
    if (k->scan == K_UP && mode == SH_READY && hist[0]) {
        while (wlen(line) > 0) {
            line[wlen(line) - 1] = 0;
            vt_backspace();
        }
        wcopy(line, LINE_CAP, hist);
        vt_puts(line);
        return;
    }
    if (k->ch >= 0x20 && k->ch < 0x7f && n + 1 < LINE_CAP) {
        CHAR16 s[2] = {k->ch, 0};
        line[n] = k->ch;
        line[n + 1] = 0;
        if (mode != SH_LOGIN_PASS) vt_puts(s);
    }
}

void shell_console_run(void) {
    BOOLEAN enabled = st_bool(L"shell.enabled", FALSE);
    if (!enabled) {
        mode = SH_OFF;
        vt_show(FALSE);
        draw_disabled();
    } else {
        if (mode == SH_OFF) {
            vt_show(FALSE);
            login_prompt();
        }
        vt_show(TRUE);
    }
    for (;;) {
        tui_key k;
        if (!con_read_key(CON_SHELL, &k, 0)) continue;
        if (k.scan == K_TO_DCUI) break;
        if (mode != SH_OFF) on_key(&k);
    }
    vt_show(FALSE);
}
