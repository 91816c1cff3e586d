/* util.c - see util.h */
#include "util.h"

void sleep_ms(UINTN ms) {
    while (ms > 0) {
        UINTN chunk = ms > 1000 ? 1000 : ms;
        CALL(BS->Stall, 1, chunk * 1000);
        ms -= chunk;
    }
}

/* Real builds say on the serial port (only there: the UART itself, not the console the screen mirrors) how
 * long each of their own delays is, "labctl-sim: delay <ms> ms", so a benchmark can tell the simulated
 * machine's waiting from the harness's (benchmarks/e2e.py). Fast builds stay silent. */
static void serial_write(CHAR8 *line, UINTN len) {
    static EFI_SERIAL_IO_PROTOCOL *ser;
    static BOOLEAN looked;
    if (!looked) {
        looked = TRUE;
        if (EFI_ERROR(CALL(BS->LocateProtocol, 3, &SerialIoProtocol, NULL, (void **)&ser))) ser = NULL;
    }
    if (ser) CALL(ser->Write, 3, ser, &len, line);
}

static void serial_mark(UINTN ms, const CHAR8 *what) {
    CHAR8 line[96];
    CHAR8 digits[24];
    UINTN n = 0, o = 0;
    do {
        digits[n++] = (CHAR8)('0' + ms % 10);
        ms /= 10;
    } while (ms && n < sizeof digits);
    const CHAR8 *head = (const CHAR8 *)"\r\nlabctl-sim: delay ";
    for (UINTN i = 0; head[i]; i++) line[o++] = head[i];
    while (n) line[o++] = digits[--n];
    const CHAR8 *tail = (const CHAR8 *)" ms\r\n";
    for (UINTN i = 0; tail[i] && o < sizeof line - 2; i++) line[o++] = tail[i];
    if (what) {
        o -= 2; /* before the CR LF: " ms (what)" */
        line[o++] = ' ';
        line[o++] = '(';
        for (UINTN i = 0; what[i] && o < sizeof line - 3; i++) line[o++] = what[i];
        line[o++] = ')';
        line[o++] = '\r';
        line[o++] = '\n';
    }
    serial_write(line, o);
}

void sim_note(const CHAR8 *what) {
    if (!SIM_SPEED_REAL || !what) return;
    CHAR8 line[96];
    UINTN o = 0;
    const CHAR8 *head = (const CHAR8 *)"\r\nlabctl-sim: ";
    for (UINTN i = 0; head[i]; i++) line[o++] = head[i];
    for (UINTN i = 0; what[i] && o < sizeof line - 2; i++) line[o++] = what[i];
    line[o++] = '\r';
    line[o++] = '\n';
    serial_write(line, o);
}

void sim_mark_waited(UINTN ms, const CHAR8 *what) {
    if (SIM_SPEED_REAL && ms) serial_mark(ms, what);
}

void sim_delay(UINTN fast_ms, UINTN real_ms) {
    UINTN ms = SIM_SPEED_REAL ? real_ms : fast_ms;
    if (SIM_SPEED_REAL && ms) serial_mark(ms, NULL);
    sleep_ms(ms);
}

void *xalloc(UINTN bytes) {
    void *p = AllocateZeroPool(bytes ? bytes : 1);
    if (!p) {
        Print(L"\r\nout of memory\r\n");
        for (;;) CALL(BS->Stall, 1, 1000000);
    }
    return p;
}

void xfree(void *p) {
    if (p) FreePool(p);
}

void *xalloc_pages(UINTN bytes) {
    EFI_PHYSICAL_ADDRESS addr = 0;
    UINTN pages = (bytes + 4095) / 4096;
    EFI_STATUS st = CALL(BS->AllocatePages, 4, AllocateAnyPages, EfiLoaderData, pages, &addr);
    if (EFI_ERROR(st)) {
        Print(L"\r\nout of memory (%d pages)\r\n", pages);
        for (;;) CALL(BS->Stall, 1, 1000000);
    }
    ZeroMem((void *)(UINTN)addr, pages * 4096);
    return (void *)(UINTN)addr;
}

void xfree_pages(void *p, UINTN bytes) {
    if (p) CALL(BS->FreePages, 2, (EFI_PHYSICAL_ADDRESS)(UINTN)p, (bytes + 4095) / 4096);
}

UINTN wlen(const CHAR16 *s) {
    UINTN n = 0;
    while (s && s[n]) n++;
    return n;
}

void wcopy(CHAR16 *dst, UINTN cap, const CHAR16 *src) {
    UINTN i = 0;
    if (cap == 0) return;
    while (src && src[i] && i + 1 < cap) {
        dst[i] = src[i];
        i++;
    }
    dst[i] = 0;
}

void wcat(CHAR16 *dst, UINTN cap, const CHAR16 *src) {
    UINTN n = wlen(dst);
    if (n < cap) wcopy(dst + n, cap - n, src);
}

CHAR16 wlower(CHAR16 c) {
    return (c >= 'A' && c <= 'Z') ? (CHAR16)(c - 'A' + 'a') : c;
}

int wncmp_ci(const CHAR16 *a, const CHAR16 *b, UINTN n) {
    for (UINTN i = 0; i < n; i++) {
        CHAR16 x = wlower(a[i]), y = wlower(b[i]);
        if (x != y) return x < y ? -1 : 1;
        if (x == 0) return 0;
    }
    return 0;
}

int wcmp_ci(const CHAR16 *a, const CHAR16 *b) {
    return wncmp_ci(a, b, (UINTN)-1);
}

int wstarts_ci(const CHAR16 *s, const CHAR16 *prefix) {
    return wncmp_ci(s, prefix, wlen(prefix)) == 0;
}

void a2w(CHAR16 *dst, UINTN cap, const CHAR8 *src, UINTN n) {
    UINTN i = 0;
    while (i < n && src[i] && i + 1 < cap) {
        dst[i] = (CHAR16)src[i];
        i++;
    }
    dst[i] = 0;
    while (i > 0 && (dst[i - 1] == ' ' || dst[i - 1] == 0)) dst[--i] = 0;
}

UINTN w2a(CHAR8 *dst, UINTN cap, const CHAR16 *src) {
    UINTN i = 0;
    while (src[i] && i + 1 < cap) {
        dst[i] = (CHAR8)(src[i] < 0x80 ? src[i] : '?');
        i++;
    }
    dst[i] = 0;
    return i;
}

UINTN alen(const CHAR8 *s) {
    UINTN n = 0;
    while (s && s[n]) n++;
    return n;
}

UINT32 le32(const UINT8 *p) {
    return (UINT32)p[0] | ((UINT32)p[1] << 8) | ((UINT32)p[2] << 16) | ((UINT32)p[3] << 24);
}

UINT64 le64(const UINT8 *p) {
    return (UINT64)le32(p) | ((UINT64)le32(p + 4) << 32);
}

UINT32 crc32(const void *data, UINTN len) {
    UINT32 crc = 0;
    CALL(BS->CalculateCrc32, 3, (void *)data, len, &crc);
    return crc;
}

void fmt_capacity(CHAR16 *out, UINTN cap, UINT64 bytes) {
    static const CHAR16 *units[] = {L"B", L"KiB", L"MiB", L"GiB", L"TiB"};
    UINTN u = 0;
    UINT64 scale = 1;
    while (u + 1 < ARRAY_LEN(units) && bytes >= scale * 1024) {
        scale *= 1024;
        u++;
    }
    UINT64 hundredths = (bytes * 100 + scale / 2) / scale;
    SPrint(out, cap * sizeof(CHAR16), L"%ld.%02ld %s", hundredths / 100, hundredths % 100, units[u]);
}

UINT64 sys_ram_bytes(void) {
    UINTN entries = 0, key = 0, desc_size = 0;
    UINT32 desc_ver = 0;
    EFI_MEMORY_DESCRIPTOR *map = LibMemoryMap(&entries, &key, &desc_size, &desc_ver);
    UINT64 total = 0;
    if (!map) return 0;
    UINT8 *p = (UINT8 *)map;
    for (UINTN i = 0; i < entries; i++, p += desc_size) {
        EFI_MEMORY_DESCRIPTOR *d = (EFI_MEMORY_DESCRIPTOR *)p;
        switch (d->Type) {
        case EfiLoaderCode: case EfiLoaderData: case EfiBootServicesCode: case EfiBootServicesData:
        case EfiRuntimeServicesCode: case EfiRuntimeServicesData: case EfiConventionalMemory:
        case EfiACPIReclaimMemory: case EfiACPIMemoryNVS:
            total += d->NumberOfPages * 4096ULL;
            break;
        default:
            break;
        }
    }
    FreePool(map);
    return total;
}

/* EFI_MP_SERVICES_PROTOCOL (PI spec); gnu-efi does not declare it. Only the first member is used. */
typedef struct {
    EFI_STATUS (EFIAPI *GetNumberOfProcessors)(void *This, UINTN *Count, UINTN *Enabled);
} SIM_MP_SERVICES;

UINTN sys_cpu_count(void) {
    EFI_GUID guid = {0x3fdda605, 0xa76e, 0x4f46, {0xad, 0x29, 0x12, 0xf4, 0x53, 0x1b, 0x3d, 0x08}};
    SIM_MP_SERVICES *mp = NULL;
    if (EFI_ERROR(CALL(BS->LocateProtocol, 3, &guid, NULL, (void **)&mp)) || !mp) return 1;
    UINTN count = 0, enabled = 0;
    if (EFI_ERROR(CALL(mp->GetNumberOfProcessors, 3, mp, &count, &enabled))) return 1;
    return enabled ? enabled : 1;
}

static void cpuid(UINT32 leaf, UINT32 *a, UINT32 *b, UINT32 *c, UINT32 *d) {
    __asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(0));
}

BOOLEAN sys_has_hw_virt(void) {
    UINT32 a, b, c, d;
    cpuid(1, &a, &b, &c, &d);
    if (c & (1u << 5)) return TRUE; /* VMX */
    cpuid(0x80000000u, &a, &b, &c, &d);
    if (a >= 0x80000001u) {
        cpuid(0x80000001u, &a, &b, &c, &d);
        if (c & (1u << 2)) return TRUE; /* SVM */
    }
    return FALSE;
}

void sys_reset(void) {
    CALL(RT->ResetSystem, 4, EfiResetCold, EFI_SUCCESS, 0, NULL);
    for (;;) CALL(BS->Stall, 1, 1000000);
}

void sys_poweroff(void) {
    CALL(RT->ResetSystem, 4, EfiResetShutdown, EFI_SUCCESS, 0, NULL);
    for (;;) CALL(BS->Stall, 1, 1000000);
}

UINT64 sim_random(void) {
    static UINT64 state; /* per-application PRNG state */
    if (state == 0) {
        EFI_TIME t;
        UINT64 tsc;
        UINT32 lo, hi;
        __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
        tsc = ((UINT64)hi << 32) | lo;
        ZeroMem(&t, sizeof t);
        CALL(RT->GetTime, 2, &t, NULL);
        state = tsc ^ ((UINT64)t.Second << 40) ^ ((UINT64)t.Minute << 48) ^ t.Nanosecond ^ 0x9E3779B97F4A7C15ULL;
    }
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
}

void sim_pwhash(const CHAR16 *pw, CHAR16 *out) {
    UINT64 h = 0xcbf29ce484222325ULL;
    for (UINTN i = 0; pw[i]; i++) {
        h ^= (UINT8)pw[i];
        h *= 0x100000001b3ULL;
    }
    SPrint(out, 26 * sizeof(CHAR16), L"fnv1a64:%016lx", h);
}
