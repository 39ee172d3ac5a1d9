/* count_allocs.c - LD_PRELOAD counter of allocation calls (part of leakscope's benchmark).
 *
 * build: gcc -O2 -shared -fPIC -o count_allocs.so count_allocs.c
 * use:   COUNT_ALLOCS_OUT=FILE LD_PRELOAD=./count_allocs.so PROG ARGS
 *
 * Interposes malloc, calloc, realloc, reallocarray, posix_memalign, aligned_alloc,
 * memalign, valloc, pvalloc and free, forwards them to glibc's exported __libc_* entry
 * points (no dlsym, so nothing to bootstrap), and counts the calls. C++ operator new/delete
 * and glibc-internal allocations reach malloc/free through the PLT, so they are counted too.
 * At exit (this library's destructor, which runs after the program's) one line is appended
 * to $COUNT_ALLOCS_OUT per process:
 *   pid=P malloc=N calloc=N realloc=N memalign=N free=N free_null=N allocs=N
 * allocs = malloc + calloc + realloc (incl. reallocarray) + memalign family: the same
 * quantity heaptrack prints as "calls to allocation functions".
 * Counting costs an atomic add per call; the counting run is never timed. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void *__libc_valloc(size_t);
extern void *__libc_pvalloc(size_t);
extern void __libc_free(void *);

enum { C_MALLOC, C_CALLOC, C_REALLOC, C_MEMALIGN, C_FREE, C_FREE_NULL, C_N };
static unsigned long counts[C_N];

static inline void bump(int k) { __atomic_fetch_add(&counts[k], 1, __ATOMIC_RELAXED); }

void *malloc(size_t n)
{
    bump(C_MALLOC);
    return __libc_malloc(n);
}

void *calloc(size_t a, size_t b)
{
    bump(C_CALLOC);
    return __libc_calloc(a, b);
}

void *realloc(void *p, size_t n)
{
    bump(C_REALLOC);
    return __libc_realloc(p, n);
}

void *reallocarray(void *p, size_t a, size_t b)
{
    bump(C_REALLOC);
    size_t n;
    if (__builtin_mul_overflow(a, b, &n)) {
        errno = ENOMEM;
        return NULL;
    }
    return __libc_realloc(p, n);
}

static int pow2(size_t a) { return a && !(a & (a - 1)); }

int posix_memalign(void **out, size_t align, size_t n)
{
    bump(C_MEMALIGN);
    if (!pow2(align) || align % sizeof(void *))
        return EINVAL;
    void *p = __libc_memalign(align, n);
    if (!p)
        return ENOMEM;
    *out = p;
    return 0;
}

void *aligned_alloc(size_t align, size_t n)
{
    bump(C_MEMALIGN);
    return __libc_memalign(align, n);
}

void *memalign(size_t align, size_t n)
{
    bump(C_MEMALIGN);
    return __libc_memalign(align, n);
}

void *valloc(size_t n)
{
    bump(C_MEMALIGN);
    return __libc_valloc(n);
}

void *pvalloc(size_t n)
{
    bump(C_MEMALIGN);
    return __libc_pvalloc(n);
}

void free(void *p)
{
    bump(p ? C_FREE : C_FREE_NULL);
    __libc_free(p);
}

static char *put(char *o, const char *key, unsigned long v)
{
    char tmp[24];
    int n = 0;
    while (*key)
        *o++ = *key++;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *o++ = tmp[--n];
    return o;
}

__attribute__((destructor)) static void report(void)
{
    const char *path = getenv("COUNT_ALLOCS_OUT");
    if (!path)
        return;
    unsigned long c[C_N];
    for (int k = 0; k < C_N; k++)
        c[k] = __atomic_load_n(&counts[k], __ATOMIC_RELAXED);
    char line[512], *o = line;
    o = put(o, "pid=", (unsigned long)getpid());
    o = put(o, " malloc=", c[C_MALLOC]);
    o = put(o, " calloc=", c[C_CALLOC]);
    o = put(o, " realloc=", c[C_REALLOC]);
    o = put(o, " memalign=", c[C_MEMALIGN]);
    o = put(o, " free=", c[C_FREE]);
    o = put(o, " free_null=", c[C_FREE_NULL]);
    o = put(o, " allocs=", c[C_MALLOC] + c[C_CALLOC] + c[C_REALLOC] + c[C_MEMALIGN]);
    *o++ = '\n';
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0) {
        ssize_t w = write(fd, line, (size_t)(o - line));
        (void)w;
        close(fd);
    }
}
