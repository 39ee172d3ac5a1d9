/*
 * leakscope.h: what a C or C++ program can tell leakscope itself.
 *
 * Nothing here is needed to use leakscope (`leakscope run -- PROG` traces
 * unmodified programs). Include it to
 *
 *   - control tracing:   leakscope_disable(), leakscope_enable(),
 *                        leakscope_check(), leakscope_ignore(ptr),
 *                        leakscope_is_active();
 *   - give allocation calls their source location without debug
 *     information: define LEAKSCOPE_SOURCE_LOCATIONS before including it, and
 *     malloc, calloc, realloc, free, strdup and strndup carry __FILE__,
 *     __LINE__ and __func__ into leakscope's report.
 *
 * Every leakscope function is declared weak and called only when present, so
 * a program built with this header builds, links and runs without leakscope:
 * the calls then do nothing (the control API) or are the plain functions (the
 * macros). The functions are defined by leakscope's preload library, which
 * `leakscope run` loads; a program can also link it directly
 * (`-lleakscope`, or `pkg-config --cflags --libs leakscope`), and then runs
 * normally when it is not started by `leakscope run`.
 *
 * With LEAKSCOPE_SOURCE_LOCATIONS, include this header after every system
 * header: the macros would rename the declarations of a header included later.
 * In C++, std::malloc and friends keep working.
 *
 * See docs/api.md in the leakscope sources.
 */
#ifndef LEAKSCOPE_H
#define LEAKSCOPE_H

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Where an allocation call is in the source. */
struct leakscope_location {
    const char *file;
    const char *function;
    unsigned int line;
};

/*
 * Stop reporting new allocations, until the matching leakscope_enable().
 * Process-wide, and calls nest. Blocks allocated meanwhile are never
 * reported as leaks (and what they point to counts as reachable); frees are
 * still checked. `leakscope run --start-disabled` starts the program as if it
 * had called leakscope_disable() once, like glibc's mtrace()/muntrace().
 */
extern void leakscope_disable(void) __attribute__((weak));
/* Undo one leakscope_disable() (extra calls do nothing). */
extern void leakscope_enable(void) __attribute__((weak));
/*
 * Look for leaks now and continue: a reachability scan of the whole process.
 * Returns the number of the program's blocks that are lost (definitely,
 * indirectly or possibly); `leakscope run` prints their details while the
 * program keeps running, and the report at exit has them too. 0 without
 * leakscope.
 */
extern unsigned long leakscope_check(void) __attribute__((weak));
/*
 * The heap block ptr points to (at its start or inside it) is kept on
 * purpose: never report it as a leak. Returns 1 when ptr is in a live block,
 * 0 otherwise (and without leakscope).
 */
extern int leakscope_ignore(const void *ptr) __attribute__((weak));
/* 1 when the program runs under leakscope (tracing on or off), else 0. */
extern int leakscope_is_active(void) __attribute__((weak));

/* The allocation calls with a source location, behind the macros below. */
extern void *leakscope_malloc_at(size_t size, const struct leakscope_location *loc) __attribute__((weak));
extern void *leakscope_calloc_at(size_t n, size_t size, const struct leakscope_location *loc) __attribute__((weak));
extern void *leakscope_realloc_at(void *ptr, size_t size, const struct leakscope_location *loc) __attribute__((weak));
extern void leakscope_free_at(void *ptr, const struct leakscope_location *loc) __attribute__((weak));
extern char *leakscope_strdup_at(const char *s, const struct leakscope_location *loc) __attribute__((weak));
extern char *leakscope_strndup_at(const char *s, size_t n, const struct leakscope_location *loc) __attribute__((weak));

#ifdef __cplusplus
}
#endif

/* Call the control functions only when leakscope provides them. */
#define leakscope_disable() (leakscope_disable ? leakscope_disable() : (void)0)
#define leakscope_enable() (leakscope_enable ? leakscope_enable() : (void)0)
#define leakscope_check() (leakscope_check ? leakscope_check() : 0UL)
#define leakscope_ignore(ptr) (leakscope_ignore ? leakscope_ignore(ptr) : 0)
#define leakscope_is_active() (leakscope_is_active ? leakscope_is_active() : 0)

#ifdef LEAKSCOPE_SOURCE_LOCATIONS

/* Always inlined (even at -O0), so leakscope sees the call in the caller. */
#define LEAKSCOPE__INLINE static __inline__ __attribute__((always_inline, unused))
#define LEAKSCOPE__SET(loc) ((loc).file = file, (loc).function = func, (loc).line = line)

LEAKSCOPE__INLINE void *leakscope__malloc(size_t size, const char *file, unsigned int line, const char *func)
{
    if (leakscope_malloc_at) {
        struct leakscope_location loc;
        LEAKSCOPE__SET(loc);
        return leakscope_malloc_at(size, &loc);
    }
    return malloc(size);
}

LEAKSCOPE__INLINE void *leakscope__calloc(size_t n, size_t size, const char *file, unsigned int line,
                                          const char *func)
{
    if (leakscope_calloc_at) {
        struct leakscope_location loc;
        LEAKSCOPE__SET(loc);
        return leakscope_calloc_at(n, size, &loc);
    }
    return calloc(n, size);
}

LEAKSCOPE__INLINE void *leakscope__realloc(void *ptr, size_t size, const char *file, unsigned int line,
                                           const char *func)
{
    if (leakscope_realloc_at) {
        struct leakscope_location loc;
        LEAKSCOPE__SET(loc);
        return leakscope_realloc_at(ptr, size, &loc);
    }
    return realloc(ptr, size);
}

LEAKSCOPE__INLINE void leakscope__free(void *ptr, const char *file, unsigned int line, const char *func)
{
    if (leakscope_free_at) {
        struct leakscope_location loc;
        LEAKSCOPE__SET(loc);
        leakscope_free_at(ptr, &loc);
        return;
    }
    free(ptr);
}

LEAKSCOPE__INLINE char *leakscope__strdup(const char *s, const char *file, unsigned int line, const char *func)
{
    if (leakscope_strdup_at) {
        struct leakscope_location loc;
        LEAKSCOPE__SET(loc);
        return leakscope_strdup_at(s, &loc);
    }
    /* strdup itself, without needing POSIX's declaration of it. */
    {
        size_t n = strlen(s) + 1;
        char *p = (char *)malloc(n);
        if (p)
            memcpy(p, s, n);
        return p;
    }
}

LEAKSCOPE__INLINE char *leakscope__strndup(const char *s, size_t n, const char *file, unsigned int line,
                                           const char *func)
{
    if (leakscope_strndup_at) {
        struct leakscope_location loc;
        LEAKSCOPE__SET(loc);
        return leakscope_strndup_at(s, n, &loc);
    }
    {
        size_t len = 0;
        char *p;
        while (len < n && s[len])
            len++;
        p = (char *)malloc(len + 1);
        if (p) {
            memcpy(p, s, len);
            p[len] = 0;
        }
        return p;
    }
}

#ifdef __cplusplus
/* So that std::malloc(n) and friends still name something after the macros. */
namespace std {
using ::leakscope__malloc;
using ::leakscope__calloc;
using ::leakscope__realloc;
using ::leakscope__free;
}
#endif

#undef malloc
#undef calloc
#undef realloc
#undef free
#undef strdup
#undef strndup
#define malloc(size) leakscope__malloc((size), __FILE__, __LINE__, __func__)
#define calloc(n, size) leakscope__calloc((n), (size), __FILE__, __LINE__, __func__)
#define realloc(ptr, size) leakscope__realloc((ptr), (size), __FILE__, __LINE__, __func__)
#define free(ptr) leakscope__free((ptr), __FILE__, __LINE__, __func__)
#define strdup(s) leakscope__strdup((s), __FILE__, __LINE__, __func__)
#define strndup(s, n) leakscope__strndup((s), (n), __FILE__, __LINE__, __func__)

#endif /* LEAKSCOPE_SOURCE_LOCATIONS */

#endif /* LEAKSCOPE_H */
