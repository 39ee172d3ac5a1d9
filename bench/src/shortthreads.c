/* shortthreads.c - many short-lived threads (a thread per small task), each
 * making a few allocations through a 5..20-frame call chain, 4 threads at a
 * time; measures what a tool pays per thread start and exit.
 * usage: shortthreads TOTAL_THREADS [ALLOCS_PER_THREAD]
 * Intentionally leaks LEAK_COUNT x LEAK_SIZE bytes (see common.h). Written for
 * leakscope's benchmark (not one of the anchor workloads). */
#include <pthread.h>
#include <stdio.h>
#include "common.h"

DEFINE_LEAK_SINK

#define BATCH 4

static void *volatile task_sink;
static int per_thread = 50;

__attribute__((noinline)) static long task_leaf(long n)
{
    char *p = malloc(16 + (size_t)(n % 200));
    if (!p) abort();
    p[0] = (char)n;
    task_sink = p;
    free(p);
    return n;
}

__attribute__((noinline)) static long task_step(int depth, long n)
{
    if (depth == 0)
        return task_leaf(n);
    long r = task_step(depth - 1, n + depth);
    task_sink = &r; /* not a tail call */
    return r + 1;
}

static void *task(void *arg)
{
    long k = (long)arg, acc = 0;
    for (int i = 0; i < per_thread; i++)
        acc += task_step(3 + (int)((i + k) % 16), i);
    return (void *)acc;
}

int main(int argc, char **argv)
{
    long total = argc > 1 ? atol(argv[1]) : 20000;
    if (argc > 2) per_thread = atoi(argv[2]);
    long acc = 0;
    for (long t = 0; t < total; t += BATCH) {
        pthread_t th[BATCH];
        for (int j = 0; j < BATCH; j++)
            if (pthread_create(&th[j], NULL, task, (void *)(t + j)) != 0) abort();
        for (int j = 0; j < BATCH; j++) {
            void *r;
            pthread_join(th[j], &r);
            acc += (long)r;
        }
    }
    make_known_leaks();
    printf("shortthreads threads=%ld per_thread=%d allocs=%ld checksum=%ld\n", total, per_thread, total * per_thread, acc);
    return 0;
}
