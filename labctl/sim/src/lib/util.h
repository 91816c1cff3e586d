/* util.h - small helpers shared by the installer and the installed system (gnu-efi, C99). */
#ifndef SIM_UTIL_H
#define SIM_UTIL_H

#include <efi.h>
#include <efilib.h>

#define CALL uefi_call_wrapper
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Build speed: build.py passes -DSIM_SPEED_REAL=1 for `--speed real`. */
#ifndef SIM_SPEED_REAL
#define SIM_SPEED_REAL 0
#endif
/* Sleep fast_ms in fast builds, real_ms in real builds. */
void sim_delay(UINTN fast_ms, UINTN real_ms);
/* A wait of the machine's own that is not a sim_delay (the boot loader's countdown running out), announced on
 * the serial port like one in real builds, with what it was: "labctl-sim: delay 5000 ms (boot loader countdown)". */
void sim_mark_waited(UINTN ms, const CHAR8 *what);
/* Real builds only: "labctl-sim: <what>" on the serial port, so the host can time the guest's own work between
 * two such lines (writing the partitions under emulation). */
void sim_note(const CHAR8 *what);
void sleep_ms(UINTN ms);

void *xalloc(UINTN bytes);                /* zeroed pool memory, never NULL (halts on failure) */
void xfree(void *p);
void *xalloc_pages(UINTN bytes);          /* page-aligned zeroed buffer (for BlockIO) */
void xfree_pages(void *p, UINTN bytes);

UINTN wlen(const CHAR16 *s);
void wcopy(CHAR16 *dst, UINTN cap, const CHAR16 *src);     /* cap in CHAR16 incl. NUL */
void wcat(CHAR16 *dst, UINTN cap, const CHAR16 *src);
CHAR16 wlower(CHAR16 c);
int wcmp_ci(const CHAR16 *a, const CHAR16 *b);             /* 0 when equal ignoring case */
int wncmp_ci(const CHAR16 *a, const CHAR16 *b, UINTN n);
int wstarts_ci(const CHAR16 *s, const CHAR16 *prefix);
/* ASCII bytes -> CHAR16, stopping at NUL or n, trimming trailing spaces. */
void a2w(CHAR16 *dst, UINTN cap, const CHAR8 *src, UINTN n);
/* CHAR16 -> ASCII (non-ASCII becomes '?'); returns the length. */
UINTN w2a(CHAR8 *dst, UINTN cap, const CHAR16 *src);
UINTN alen(const CHAR8 *s);

UINT32 crc32(const void *data, UINTN len);
/* Little-endian integers at any alignment (on-disk and firmware tables). */
UINT32 le32(const UINT8 *p);
UINT64 le64(const UINT8 *p);
/* "16.00 GiB" / "512.00 MiB" like the ESXi installer. */
void fmt_capacity(CHAR16 *out, UINTN cap, UINT64 bytes);

/* Physical RAM in bytes from the memory map (usable + firmware-owned RAM, not MMIO/reserved). */
UINT64 sys_ram_bytes(void);
/* Number of enabled CPUs (EFI_MP_SERVICES_PROTOCOL), 1 when the protocol is absent. */
UINTN sys_cpu_count(void);
/* CPUID: VMX (Intel) or SVM (AMD) present. */
BOOLEAN sys_has_hw_virt(void);
/* Cold reset; never returns. */
void sys_reset(void);
/* Power off; never returns. */
void sys_poweroff(void);

/* Pseudo random numbers seeded from the clock (GUIDs for new partitions). */
UINT64 sim_random(void);

#endif

#ifndef SIM_UTIL_PWHASH
#define SIM_UTIL_PWHASH
/* Root password as stored in state.cfg: "fnv1a64:<16 hex digits>" of the ASCII password. out: 26 CHAR16. */
void sim_pwhash(const CHAR16 *pw, CHAR16 *out);
#endif
