/* installer.h - the ESXi installer (weasel) screens as a state machine (reference §2). Each screen is one
 * function taking the state and returning the next screen; what differs between releases (texts, rules)
 * is read from PROFILE (lib/profile.h). */
#ifndef SIM_INSTALLER_H
#define SIM_INSTALLER_H

#include "../lib/bootloader.h"
#include "../lib/disks.h"
#include "../lib/gpt.h"
#include "../lib/iso9660.h"
#include "../lib/profile.h"
#define PW_CAP 65

typedef enum {
    SCR_WELCOME, SCR_EULA, SCR_SCAN, SCR_DISKS, SCR_OSDATA, SCR_EXISTING, SCR_KEYBOARD, SCR_PASSWORD,
    SCR_SYSSCAN, SCR_CONFIRM, SCR_PROGRESS, SCR_COMPLETE, SCR_REBOOT
} screen_id;

typedef enum { EXIST_NONE, EXIST_PARTITIONS, EXIST_ESXI, EXIST_VMFS, EXIST_ESXI_VMFS } existing_kind;
typedef enum { MODE_INSTALL_OVERWRITE, MODE_INSTALL_PRESERVE, MODE_UPGRADE } install_mode;

typedef struct {
    CHAR16 options[BOOTOPTS_CAP];  /* kernel options from the boot loader */
    BOOLEAN prefer_vmklinux;
    disk_t cd;
    BOOLEAN have_cd;
    disk_t all[DISKS_MAX];          /* every disk the firmware shows */
    UINTN n_all;
    BOOLEAN vmfs[DISKS_MAX];        /* all[i] holds a VMFS datastore (read at scan time) */
    UINTN visible[DISKS_MAX];       /* indices into all[] listed by the installer */
    UINTN n_visible;
    UINTN sel;                      /* index into visible[] */
    disk_t target;
    disk_t osdata;                  /* where OSData goes (8.0): the target unless another disk was chosen */
    existing_kind existing;
    install_mode mode;
    BOOLEAN novmfs;                 /* kickstart --novmfsondisk */
    UINTN keyboard;                 /* index in keyboard_names */
    CHAR16 pw[PW_CAP], pw2[PW_CAP];
    BOOLEAN kickstart;
    BOOLEAN ks_reboot;
    CHAR16 warning[160];            /* shown on the progress screen (kickstart) */
} inst_t;

extern const CHAR16 *const keyboard_names[];
extern const UINTN keyboard_count;
UINTN keyboard_default(void);

/* dialog.c - the grey dialog frame shared by every screen */
typedef struct {
    UINTN row, col, w, h;
} dlg_t;
void dlg_open(dlg_t *d, UINTN w, UINTN h, const CHAR16 *title, const CHAR16 *footer);
void dlg_line(const dlg_t *d, UINTN r, UINTN attr, const CHAR16 *s);
void dlg_center(const dlg_t *d, UINTN r, UINTN attr, const CHAR16 *s);
void dlg_footer(const dlg_t *d, const CHAR16 *footer);
/* A message dialog with "(Enter) OK"; waits for Enter. */
void dlg_message(const CHAR16 *title, const CHAR16 *const *lines, UINTN n);
/* Esc anywhere: "Confirm Cancel". Returns only on F9 (No); F11 (Yes) resets the machine. */
void confirm_cancel(void);

/* disk helpers (scan.c, existing.c) */
void inst_scan_disks(inst_t *s);
void scan_screen(void);
existing_kind inst_probe_existing(const disk_t *d, BOOLEAN *vmfs);
BOOLEAN inst_has_vmfs(const disk_t *d);

/* screens */
screen_id scr_welcome(inst_t *s);
screen_id scr_eula(inst_t *s);
screen_id scr_scan(inst_t *s);
screen_id scr_disks(inst_t *s);
screen_id scr_osdata(inst_t *s);
screen_id scr_existing(inst_t *s);
screen_id scr_keyboard(inst_t *s);
screen_id scr_password(inst_t *s);
screen_id scr_sysscan(inst_t *s);
screen_id scr_confirm(inst_t *s);
screen_id scr_progress(inst_t *s);
screen_id scr_complete(inst_t *s);

/* sysscan.c: fills messages for the target (NULL: no target yet); returns number of errors (warnings
 * counted in *warnings) */
UINTN sysscan_check(const disk_t *target, CHAR16 msgs[][200], UINTN cap, UINTN *n_msgs, UINTN *warnings);
/* disklist.c: the disk meets the profile's minimum size */
BOOLEAN inst_disk_big_enough(const disk_t *d);
/* "ESXi 6.7.0" */
const CHAR16 *inst_release(void);
/* password.c: the rule message for pw, or NULL when acceptable */
const CHAR16 *password_problem(const CHAR16 *pw);
/* install.c: write the disk; progress callback gets 0..100 */
typedef void (*progress_fn)(UINTN percent, const CHAR16 *what);
EFI_STATUS install_to_disk(inst_t *s, progress_fn progress, CHAR16 *err, UINTN errcap);
/* ks.c: kickstart run (never returns to the interactive flow) */
void ks_run(inst_t *s, const CHAR16 *path);

#endif
