/* Minimal JSON writing helpers shared by the JSON outputs. */
#ifndef VMSTACK_JSON_H
#define VMSTACK_JSON_H

#include <stddef.h>
#include <stdio.h>

/* A JSON string literal (quotes included); NULL is written as null. */
void json_str(FILE *f, const char *s);
/* Length of the valid UTF-8 sequence starting at p (1 for ASCII), or 0 when invalid. */
size_t utf8_len(const unsigned char *p);

#endif
