/* Minimal JSON writing helpers shared by the JSON outputs. */
#ifndef VMSTACK_JSON_H
#define VMSTACK_JSON_H

#include <stdio.h>

/* A JSON string literal (quotes included); NULL is written as null. */
void json_str(FILE *f, const char *s);

#endif
