/* Minimal JSON writing helpers shared by the JSON outputs. */
#ifndef VMSTACK_JSON_H
#define VMSTACK_JSON_H

#include <stddef.h>
#include <stdio.h>

/* A JSON string literal (quotes included); NULL is written as null. */
void json_str(FILE *f, const char *s);
/* Length of the valid UTF-8 sequence starting at p (1 for ASCII), or 0 when invalid. */
size_t utf8_len(const unsigned char *p);

/* A name read from the target, for a terminal: printable ASCII and valid UTF-8 (past the
 * C1 controls) as they are, any other byte as \xNN. */
void text_put(FILE *f, const char *s);

#endif
