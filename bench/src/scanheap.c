/* scanheap.c - N live blocks of 16..128 bytes at exit, half still referenced
 * from a heap array (indirectly lost once main returns), half unreferenced:
 * the reachability scan's worst case is every block being visited.
 * usage: scanheap N */
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    void **keep = malloc(n * sizeof(void *));
    size_t bytes = 0;
    for (long i = 0; i < n; i++) {
        size_t sz = 16 + (i % 8) * 16;
        keep[i] = malloc(sz);
        bytes += sz;
    }
    for (long i = 0; i < n; i += 2) keep[i] = 0;
    printf("scanheap blocks=%ld bytes=%zu\n", n, bytes);
    return 0;
}
