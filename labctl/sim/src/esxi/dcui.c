/* dcui.c - the Direct Console User Interface (reference §4): the main screen, F2 Authentication Required,
 * System Customization, Troubleshooting Mode Options, F12 Shut Down/Restart. Every screen redraws itself
 * from the state when the shell console hands the screen back (K_REDRAW). */
#include "esxi.h"
#include "sysinfo.h"

#define A_PANE   EFI_TEXT_ATTR(EFI_BLACK, EFI_LIGHTGRAY)
#define A_PANEHL EFI_TEXT_ATTR(EFI_WHITE, EFI_BLACK)
#define A_RIGHT  EFI_TEXT_ATTR(EFI_LIGHTGRAY, EFI_BLACK)
#define A_RTITLE EFI_TEXT_ATTR(EFI_YELLOW, EFI_BLACK)
#define A_FOOT   EFI_TEXT_ATTR(EFI_YELLOW, EFI_BLACK)

/* ------------------------------------------------------------------------------------------ main screen */

static void draw_main(void) {
    CHAR16 line[TUI_COLS + 1], platform[80], cpu[64];
    CALL(ST->ConOut->EnableCursor, 2, ST->ConOut, FALSE);
    tui_clear(A_SCREEN);
    tui_fill(0, 0, TUI_COLS, 12, A_DCUI_TOP);
    tui_text(2, 2, A_DCUI_TOP, ESXI_TITLE);
    sysinfo_platform(platform, ARRAY_LEN(platform));
    tui_text(4, 2, A_DCUI_TOP, platform);
    sysinfo_cpu(cpu, ARRAY_LEN(cpu));
    SPrint(line, sizeof line, L"%d x %s", sys_cpu_count(), cpu);
    tui_text(6, 2, A_DCUI_TOP, line);
    UINT64 gib10 = (sys_ram_bytes() * 10 + (1ULL << 29)) >> 30;
    SPrint(line, sizeof line, L"%ld.%ld GiB Memory", gib10 / 10, gib10 % 10);
    tui_text(7, 2, A_DCUI_TOP, line);
    tui_text(14, 2, A_SCREEN, L"To manage this host go to:");
    tui_text(15, 2, A_SCREEN, L"http://10.0.2.15/ (DHCP)");
    tui_text(16, 2, A_SCREEN, L"http://[fe80::5054:ff:fe12:3456]/ (STATIC)");
    if (PROFILE->degraded_alert && !G->rt.persistent) {
        /* a USB/SD host without a datastore for scratch and logs (8.0) */
        tui_text(18, 2, A_SCREEN, L"ALERT: No persistent storage available for system logs and data. ESX is");
        tui_text(19, 2, A_SCREEN, L"operating with limited system storage space, logs and system data will be");
        tui_text(20, 2, A_SCREEN, L"lost on reboot.");
    }
    tui_text(24, 0, A_FOOT, L"<F2> Customize System/View Logs");
    tui_text(24, 55, A_FOOT, L"<F12> Shut Down/Restart");
}

/* ------------------------------------------------------------------------------------ a dialog frame */

typedef struct {
    UINTN row, col, w, h;
} box_t;

static void box_open(box_t *b, UINTN w, UINTN h, const CHAR16 *title, const CHAR16 *footer) {
    b->w = w;
    b->h = h;
    b->col = (TUI_COLS - w) / 2;
    b->row = (TUI_ROWS - h) / 2;
    tui_box(b->row, b->col, w, h, A_DIALOG, NULL);
    tui_center(b->row + 1, b->col, w, A_DTITLE, title);
    if (footer) tui_text(b->row + h - 2, b->col + 2, A_DIALOG, footer);
}

static void box_line(const box_t *b, UINTN r, UINTN attr, const CHAR16 *s) {
    tui_text_w(b->row + r, b->col + 2, b->w - 4, attr, s);
}

/* -------------------------------------------------------------------------- Authentication Required */

/* TRUE once root logged in with the right password, FALSE on Esc. redraw repaints what lies beneath. */
static BOOLEAN login(void (*redraw)(void)) {
    CHAR16 user[33], pw[65];
    UINTN focus = 1; /* 0 login name, 1 password */
    BOOLEAN failed = FALSE;
    wcopy(user, ARRAY_LEN(user), L"root");
    pw[0] = 0;
    tui_flush_keys();
    for (;;) {
        box_t b;
        CHAR16 kb[64];
        const CHAR16 *kname = st_get(L"keyboard");
        redraw();
        box_open(&b, 64, 13, L"Authentication Required", L"<Enter> OK  <Esc> Cancel");
        box_line(&b, 3, A_DIALOG, L"Enter an authorized login name and password for localhost.");
        SPrint(kb, sizeof kb, L"Configured Keyboard (%s)", kname && kname[0] ? kname : L"US Default");
        box_line(&b, 5, A_DIALOG, kb);
        for (;;) {
            tui_text(b.row + 6, b.col + 2, A_DIALOG, L"Login Name:  [");
            tui_field(b.row + 6, b.col + 16, 30, user, FALSE, A_FIELD);
            tui_text(b.row + 6, b.col + 46, A_DIALOG, L"]");
            tui_text(b.row + 7, b.col + 2, A_DIALOG, L"Password:    [");
            tui_field(b.row + 7, b.col + 16, 30, pw, TRUE, A_FIELD);
            tui_text(b.row + 7, b.col + 46, A_DIALOG, L"]");
            box_line(&b, 9, A_DERROR, failed ? L"Invalid login name or password." : L"");
            tui_cursor(b.row + 6 + focus, b.col + 16 + wlen(focus ? pw : user), TRUE);
            tui_key k;
            if (!con_read_key(CON_DCUI, &k, 0)) continue;
            if (k.scan == K_REDRAW) break;
            if (k.scan == K_ESC) {
                CALL(ST->ConOut->EnableCursor, 2, ST->ConOut, FALSE);
                return FALSE;
            }
            if (k.ch == CH_TAB || k.scan == K_UP || k.scan == K_DOWN) {
                focus ^= 1;
                continue;
            }
            if (k.ch == CH_ENTER) {
                CALL(ST->ConOut->EnableCursor, 2, ST->ConOut, FALSE);
                if (st_password_ok(user, pw)) {
                    ZeroMem(pw, sizeof pw);
                    return TRUE;
                }
                sim_delay(300, 2000);
                failed = TRUE;
                pw[0] = 0;
                focus = 1;
                continue;
            }
            if (focus == 0)
                tui_edit(user, ARRAY_LEN(user), &k);
            else
                tui_edit(pw, ARRAY_LEN(pw), &k);
        }
    }
}

/* ----------------------------------------------------------------------------- two-pane menu screens */

typedef void (*detail_fn)(UINTN sel);

static void draw_menu(const CHAR16 *title, const CHAR16 *const *items, UINTN n, UINTN sel, detail_fn detail,
                      const CHAR16 *footer) {
    CALL(ST->ConOut->EnableCursor, 2, ST->ConOut, FALSE);
    tui_clear(A_RIGHT);
    tui_fill(0, 0, 38, 23, A_PANE);
    tui_text(1, 2, A_PANE, title);
    for (UINTN i = 0; i < n; i++) tui_text_w(3 + i, 2, 34, i == sel ? A_PANEHL : A_PANE, items[i]);
    detail(sel);
    tui_text(24, 0, A_FOOT, footer);
}

static void right(UINTN r, UINTN attr, const CHAR16 *s) {
    tui_text_w(r, 40, TUI_COLS - 40, attr, s);
}

static const CHAR16 *const custom_items[] = {
    L"Configure Password",        L"Configure Lockdown Mode",   L"Configure Management Network",
    L"Restart Management Network", L"Test Management Network",   L"Network Restore Options",
    L"View Support Information",  L"View System Logs",          L"Troubleshooting Options",
    L"Reset System Configuration", L"Configure Keyboard",
};
#define ITEM_TROUBLESHOOTING 8

static void custom_detail(UINTN sel) {
    for (UINTN r = 1; r < 23; r++) right(r, A_RIGHT, L"");
    switch (sel) {
    case 0:
        right(1, A_RTITLE, L"Configure Password");
        right(3, A_RIGHT, L"Set");
        right(5, A_RIGHT, L"To prevent unauthorized access to this");
        right(6, A_RIGHT, L"system, set the password for the");
        right(7, A_RIGHT, L"user.");
        break;
    case 1:
        right(1, A_RTITLE, L"Configure Lockdown Mode");
        right(3, A_RIGHT, L"Lockdown Mode: Disabled");
        break;
    case 2:
        right(1, A_RTITLE, L"Configure Management Network");
        right(3, A_RIGHT, L"Hostname:");
        right(4, A_RIGHT, L"  localhost");
        right(6, A_RIGHT, L"IPv4 Addresses:");
        right(7, A_RIGHT, L"  10.0.2.15 (DHCP)");
        break;
    case ITEM_TROUBLESHOOTING:
        right(1, A_RTITLE, L"Troubleshooting Options");
        right(3, A_RIGHT, L"To view various troubleshooting mode");
        right(4, A_RIGHT, L"options like Enable ESXi Shell, Enable");
        right(5, A_RIGHT, L"SSH or Restart Agents.");
        break;
    case 10: {
        const CHAR16 *kname = st_get(L"keyboard");
        right(1, A_RTITLE, L"Configure Keyboard");
        right(3, A_RIGHT, kname && kname[0] ? kname : L"US Default");
        break;
    }
    default:
        right(1, A_RTITLE, custom_items[sel]);
        right(3, A_RIGHT, L"(not part of the lab: the labctl");
        right(4, A_RIGHT, L"simulator does not implement it)");
        break;
    }
}

static const CHAR16 *shell_item(void) {
    return st_bool(L"shell.enabled", FALSE) ? L"Disable ESXi Shell" : L"Enable ESXi Shell";
}
static const CHAR16 *ssh_item(void) {
    return st_bool(L"ssh.enabled", FALSE) ? L"Disable SSH" : L"Enable SSH";
}

static void trouble_detail(UINTN sel) {
    for (UINTN r = 1; r < 23; r++) right(r, A_RIGHT, L"");
    switch (sel) {
    case 0:
        right(1, A_RTITLE, L"ESXi Shell");
        right(3, A_RIGHT, st_bool(L"shell.enabled", FALSE) ? L"ESXi Shell is Enabled" : L"ESXi Shell is Disabled");
        right(5, A_RIGHT, L"Change current state of the ESXi Shell");
        break;
    case 1:
        right(1, A_RTITLE, L"SSH");
        right(3, A_RIGHT, st_bool(L"ssh.enabled", FALSE) ? L"SSH is Enabled" : L"SSH is Disabled");
        right(5, A_RIGHT, L"Change current state of SSH");
        break;
    case 2:
        right(1, A_RTITLE, L"Modify ESXi Shell and SSH timeouts");
        right(3, A_RIGHT, L"Availability Timeout is Disabled");
        right(4, A_RIGHT, L"Idle Timeout is Disabled");
        break;
    case 3:
        right(1, A_RTITLE, L"Modify DCUI idle timeout");
        right(3, A_RIGHT, L"DCUI Idle Timeout is Disabled");
        break;
    default:
        right(1, A_RTITLE, L"Restart Management Agents");
        right(3, A_RIGHT, L"To restart management agents on this");
        right(4, A_RIGHT, L"host.");
        break;
    }
}

static void not_needed(const CHAR16 *what) {
    box_t b;
    box_open(&b, 60, 9, what, L"<Enter> OK");
    box_line(&b, 3, A_DIALOG, L"The labctl simulator does not need this for the lab.");
    for (;;) {
        tui_key k;
        if (con_read_key(CON_DCUI, &k, 0) && (k.ch == CH_ENTER || k.scan == K_ESC || k.scan == K_REDRAW)) return;
    }
}

/* Redraw only the two rows that changed and the right pane on Up/Down (a full repaint is slow under TCG). */
static void move_sel(const CHAR16 *const *items, UINTN *sel, UINTN to, detail_fn detail) {
    tui_text_w(3 + *sel, 2, 34, A_PANE, items[*sel]);
    *sel = to;
    tui_text_w(3 + *sel, 2, 34, A_PANEHL, items[*sel]);
    detail(*sel);
}

static void troubleshooting(void) {
    UINTN sel = 0;
    const UINTN n = 5;
    BOOLEAN full = TRUE;
    for (;;) {
        const CHAR16 *items[5] = {shell_item(), ssh_item(), L"Modify ESXi Shell and SSH timeouts",
                                  L"Modify DCUI idle timeout", L"Restart Management Agents"};
        if (full)
            draw_menu(L"Troubleshooting Mode Options", items, n, sel, trouble_detail,
                      L"<Up/Down> Select                  <Enter> Change                  <Esc> Exit");
        full = FALSE;
        tui_key k;
        if (!con_read_key(CON_DCUI, &k, 0)) continue;
        if (k.scan == K_REDRAW) full = TRUE;
        if (k.scan == K_ESC) return;
        if (k.scan == K_UP && sel > 0) move_sel(items, &sel, sel - 1, trouble_detail);
        if (k.scan == K_DOWN && sel + 1 < n) move_sel(items, &sel, sel + 1, trouble_detail);
        if (k.ch == CH_ENTER) {
            if (sel == 0) {
                st_set_bool(L"shell.enabled", !st_bool(L"shell.enabled", FALSE));
            } else if (sel == 1) {
                st_set_bool(L"ssh.enabled", !st_bool(L"ssh.enabled", FALSE));
            } else {
                not_needed(items[sel]);
                full = TRUE;
                continue;
            }
            items[0] = shell_item();
            items[1] = ssh_item();
            move_sel(items, &sel, sel, trouble_detail);
        }
    }
}

static void customization(void) {
    UINTN sel = 0;
    const UINTN n = ARRAY_LEN(custom_items);
    BOOLEAN full = TRUE;
    for (;;) {
        if (full)
            draw_menu(L"System Customization", custom_items, n, sel, custom_detail,
                      L"<Up/Down> Select                  <Enter> More                    <Esc> Log Out");
        full = FALSE;
        tui_key k;
        if (!con_read_key(CON_DCUI, &k, 0)) continue;
        if (k.scan == K_REDRAW) full = TRUE;
        if (k.scan == K_ESC) return;
        if (k.scan == K_UP && sel > 0) move_sel(custom_items, &sel, sel - 1, custom_detail);
        if (k.scan == K_DOWN && sel + 1 < n) move_sel(custom_items, &sel, sel + 1, custom_detail);
        if (k.ch == CH_ENTER) {
            if (sel == ITEM_TROUBLESHOOTING)
                troubleshooting();
            else
                not_needed(custom_items[sel]);
            full = TRUE;
        }
    }
}

/* ---------------------------------------------------------------------------------- Shut Down/Restart */

static void shutdown_dialog(void) {
    for (;;) {
        box_t b;
        draw_main();
        box_open(&b, 64, 11, L"Shut Down/Restart", L"<F2> Shut Down     <F11> Restart     <Esc> Cancel");
        box_line(&b, 3, A_DIALOG, L"Shutting down or restarting this host will stop all virtual");
        box_line(&b, 4, A_DIALOG, L"machines running on it.");
        for (;;) {
            tui_key k;
            if (!con_read_key(CON_DCUI, &k, 0)) continue;
            if (k.scan == K_REDRAW) break;
            if (k.scan == K_ESC) return;
            if (k.scan == K_F2) esxi_shutdown(FALSE);
            if (k.scan == K_F11) esxi_shutdown(TRUE);
        }
    }
}

void dcui_run(void) {
    tui_flush_keys();
    for (;;) {
        draw_main();
        tui_key k;
        if (!con_read_key(CON_DCUI, &k, 0)) continue;
        if (k.scan == K_F2 && !(k.shift & TUI_ALT)) {
            if (login(draw_main)) customization();
        } else if (k.scan == K_F12) {
            if (login(draw_main)) shutdown_dialog();
        }
    }
}
