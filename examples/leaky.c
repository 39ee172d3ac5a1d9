/* A small program with the mistakes leakscope finds: two leaks (one through
 * strdup, i.e. memory libc allocated for the program) and a double free.
 * Built -O2 without frame pointers on purpose: stacks are still complete. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct record {
    char *name;
    int values[8];
};

__attribute__((noinline)) static struct record *make_record(const char *name)
{
    struct record *r = malloc(sizeof *r);
    r->name = strdup(name);
    memset(r->values, 0, sizeof r->values);
    return r;
}

__attribute__((noinline)) static void drop_record(struct record *r)
{
    free(r); /* forgets r->name */
}

int main(void)
{
    struct record *kept = make_record("kept forever");
    struct record *tmp = make_record("temporary");
    drop_record(tmp);
    char *buf = malloc(64);
    snprintf(buf, 64, "%s", kept->name);
    free(buf);
    free(buf); /* double free: reported, and not passed on to glibc */
    printf("%s\n", kept->name);
    return 0;
}
