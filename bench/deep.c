/* Bench fixture: one thread spins 30 frames deep, the main thread sits in pause(). */
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

static int ready_fd = 1;
static volatile unsigned long depth, spins;

static void ready(void)
{
  static const char msg[] = "ready\n";
  ssize_t r = write(ready_fd, msg, sizeof msg - 1);
  (void)r;
  if (ready_fd != 1)
    close(ready_fd);
}

static __attribute__((noinline)) void bottom(void)
{
  ready();
  for (;;)
    spins++;
}

/* d30 .. d01: each calls the next and does work after it, so no call is a tail call */
#define LEVEL(n, next) \
  static __attribute__((noinline)) void n(void) \
  { \
    depth++; \
    next(); \
    depth--; \
  }

LEVEL(d30, bottom)
LEVEL(d29, d30) LEVEL(d28, d29) LEVEL(d27, d28) LEVEL(d26, d27) LEVEL(d25, d26)
LEVEL(d24, d25) LEVEL(d23, d24) LEVEL(d22, d23) LEVEL(d21, d22) LEVEL(d20, d21)
LEVEL(d19, d20) LEVEL(d18, d19) LEVEL(d17, d18) LEVEL(d16, d17) LEVEL(d15, d16)
LEVEL(d14, d15) LEVEL(d13, d14) LEVEL(d12, d13) LEVEL(d11, d12) LEVEL(d10, d11)
LEVEL(d09, d10) LEVEL(d08, d09) LEVEL(d07, d08) LEVEL(d06, d07) LEVEL(d05, d06)
LEVEL(d04, d05) LEVEL(d03, d04) LEVEL(d02, d03) LEVEL(d01, d02)

static void *spinner(void *arg)
{
  (void)arg;
  d01();
  return NULL;
}

int main(int argc, char **argv)
{
  if (argc > 1)
    ready_fd = atoi(argv[1]);
  pthread_t th;
  if (pthread_create(&th, NULL, spinner, NULL))
    return 1;
  for (;;)
    pause();
}
