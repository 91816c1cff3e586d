/* progress.c - "Installing ESXi 6.7.0" (the profile's release) with a progress bar while install.c writes the disk. */
#include "installer.h"

#define BAR_W 50

static dlg_t progress_dlg;

static void draw_progress(UINTN percent, const CHAR16 *what) {
    CHAR16 bar[BAR_W + 3], pct[8];
    UINTN fill = percent * BAR_W / 100;
    bar[0] = '[';
    for (UINTN i = 0; i < BAR_W; i++) bar[1 + i] = i < fill ? BLOCKELEMENT_FULL_BLOCK : ' ';
    bar[BAR_W + 1] = ']';
    bar[BAR_W + 2] = 0;
    SPrint(pct, sizeof pct, L"%3d %%", percent);
    tui_text(progress_dlg.row + 5, progress_dlg.col + 4, A_DIALOG, bar);
    tui_text(progress_dlg.row + 5, progress_dlg.col + 4 + BAR_W + 3, A_DIALOG, pct);
    tui_text_w(progress_dlg.row + 7, progress_dlg.col + 4, progress_dlg.w - 8, A_DIALOG, what);
}

static void error_screen(const CHAR16 *err) {
    const CHAR16 *lines[2] = {L"An error occurred while writing the selected disk:", err};
    dlg_message(L"Error", lines, 2);
    sys_reset();
}

screen_id scr_progress(inst_t *s) {
    CHAR16 err[160], title[40];
    SPrint(title, sizeof title, L"Installing %s", inst_release());
    dlg_open(&progress_dlg, 70, 12, title, NULL);
    if (s->warning[0]) tui_text(progress_dlg.row + 9, progress_dlg.col + 2, A_DIALOG, s->warning);
    draw_progress(0, L"");
    if (EFI_ERROR(install_to_disk(s, draw_progress, err, ARRAY_LEN(err)))) error_screen(err);
    draw_progress(100, L"");
    sim_delay(200, 1000);
    return SCR_COMPLETE;
}
