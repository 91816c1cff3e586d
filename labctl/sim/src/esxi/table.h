/* table.h - esxcli output formatters. */
#ifndef SIM_ESXI_TABLE_H
#define SIM_ESXI_TABLE_H
#include "esxi.h"
#define TABLE_MAX_COLS 8
/* cells: nrow*ncol strings, row-major. right[c]: right-align column c (NULL: all left). */
void table_print(const CHAR16 *const *hdr, const BOOLEAN *right, UINTN ncol, const CHAR16 *const *cells,
                 UINTN nrow);
void kv_print(const CHAR16 *key, const CHAR16 *val);
#endif
