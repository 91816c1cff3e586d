/* esxi.h - the installed ESXi system (reference §4): boot screen, DCUI, consoles, ESXi Shell, esxcli,
 * and the settings state kept on the bootbank (partition 5). One file per screen or concern; what differs
 * between releases comes from PROFILE (lib/profile.h). */
#ifndef SIM_ESXI_H
#define SIM_ESXI_H

#include "../lib/bootloader.h"
#include "../lib/disks.h"
#include "../lib/fsfile.h"
#include "../lib/gpt.h"
#include "../lib/profile.h"

#define ESXI_TITLE (PROFILE->title)
#define ESXI_VERSION (PROFILE->version)
#define ESXI_BUILD (PROFILE->build)
#define HOSTNAME L"localhost"
#define STATE_FILE L"state.cfg"
#define BOOTCFG_FILE L"boot.cfg"

/* state.c: key=value settings of the bootbank's state.cfg (kept in file order, comments kept). */
#define ST_MAX 64
#define ST_KEY 48
#define ST_VAL 160
typedef struct {
    CHAR16 key[ST_KEY];     /* empty for a comment / blank line */
    CHAR16 val[ST_VAL];     /* or the whole line for a comment */
} st_entry;

/* What this boot runs with (fixed at boot: "Runtime" columns, the scratch location). */
typedef struct {
    BOOLEAN prefer_vmklinux;
    BOOLEAN vmkusb_loaded;
    CHAR16 scratch[160];        /* /tmp/scratch or /vmfs/volumes/<uuid>/.locker */
    BOOLEAN persistent;         /* scratch lies on a datastore: no degraded-storage alert (8.0) */
} runtime_t;

typedef struct {
    EFI_HANDLE image;
    EFI_HANDLE boot_part;           /* partition 1 of the boot disk */
    BOOLEAN have_bootbank;
    BOOLEAN dirty;                  /* settings changed since the last save */
    st_entry st[ST_MAX];
    UINTN n_st;
    CHAR16 options[BOOTOPTS_CAP];   /* kernel options this boot ran with */
    runtime_t rt;
    disk_t disks[DISKS_MAX];
    UINTN n_disks;
    INTN boot_disk;                 /* index in disks[], -1 when unknown */
    CHAR16 boot_disk_path[160];
    /* a local VMFS datastore found at boot */
    BOOLEAN have_vmfs;
    CHAR16 vmfs_uuid[40];
    CHAR16 vmfs_name[32];
} esxi_t;

extern esxi_t *G;

/* state.c */
void state_parse(const CHAR8 *text, UINTN len);
BOOLEAN state_load(void);           /* from the bootbank; FALSE when there is no state file */
BOOLEAN state_save(void);           /* auto-backup to the bootbank; FALSE on an error */
const CHAR16 *st_get(const CHAR16 *key);   /* trimmed value or NULL */
void st_set(const CHAR16 *key, const CHAR16 *val);
BOOLEAN st_bool(const CHAR16 *key, BOOLEAN dflt);
void st_set_bool(const CHAR16 *key, BOOLEAN v);
/* root password check against the installer's fnv1a64 hash (or plain text) */
BOOLEAN st_password_ok(const CHAR16 *user, const CHAR16 *pw);

/* boot.c */
void boot_run(void);                /* boot loader countdown, loading screen, runtime setup */
void esxi_shutdown(BOOLEAN restart); /* saves the state, shows the message, resets or powers off */

/* consoles.c - Alt+F1 shell console, Alt+F2 DCUI */
typedef enum { CON_DCUI, CON_SHELL } con_id;
#define K_REDRAW 0xFFF0             /* tui_key.scan: the console was away, redraw the screen */
#define K_TO_DCUI 0xFFF1            /* tui_key.scan: Alt+F2 pressed on the shell console */
/* Read a key for console `who`. Alt+F1 on the DCUI runs the shell console until Alt+F2, then returns
 * a K_REDRAW key. Returns FALSE on timeout. */
BOOLEAN con_read_key(con_id who, tui_key *k, UINTN timeout_ms);

/* vt.c - the shell console's own screen (a text grid mirrored to ConOut while it is shown) */
void vt_reset(void);
void vt_show(BOOLEAN shown);        /* TRUE: redraw the grid on ConOut and keep mirroring */
void vt_puts(const CHAR16 *s);
void vt_printf(const CHAR16 *fmt, ...);
void vt_backspace(void);
void vt_clear(void);

/* dcui.c */
void dcui_run(void);                /* never returns */

/* shell.c */
void shell_console_run(void);       /* until Alt+F2 */
void shell_out(const CHAR16 *fmt, ...);   /* output of a command (vt_printf) */

/* esxcli.c */
void esxcli_main(UINTN argc, CHAR16 **argv);
void esxcli_boot_snapshot(void);      /* the "Runtime" column: values at boot */
/* cmds.c: the other shell commands; FALSE when argv[0] is not one of them */
BOOLEAN cmd_run(UINTN argc, CHAR16 **argv);
void parted_setptbl(UINTN argc, CHAR16 **argv);   /* datastore.c: partedUtil setptbl */
void vmkfs_create(UINTN argc, CHAR16 **argv);     /* datastore.c: vmkfstools -C */
void guid_upper(const EFI_GUID *g, CHAR16 *out); /* cmds.c: a type GUID as partedUtil spells it (32 hex digits) */
/* esxi/disks: helpers */
const disk_t *esxi_find_disk(const CHAR16 *name);   /* by mpx./vml. name or /dev/disks/ path */
void esxi_vml_name(const disk_t *d, CHAR16 *out, UINTN cap);
void esxi_volume_uuid(const EFI_GUID *g, CHAR16 *out, UINTN cap);   /* 8-8-4-12 lowercase hex */
void hex_lower(CHAR16 *out, const UINT8 *b, UINTN n);
/* 8.0: the boot disk's OSData volume (partition 7, VMFS-L): its label (LOCKER-... / OSDATA-..., read from
 * the volume header the installer wrote) and UUID. FALSE when there is none. */
BOOLEAN esxi_osdata_volume(CHAR16 *label, UINTN cap, CHAR16 *uuid, UINTN ucap);

#endif
