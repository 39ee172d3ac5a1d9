/* runrec.c - run one command and measure it (part of leakscope's benchmark harness).
 *
 * usage: runrec [-t TIMEOUT_S] [-e STDERR_FILE] [-E NAME=VALUE]... -- PROG [ARG ...]
 *
 * Forks, sets the -E variables in the child only (so an LD_PRELOAD given this way reaches
 * PROG and nothing else), execs PROG in its own process group with stdin and stdout on /dev/null (stderr on
 * STDERR_FILE, default /dev/null), reaps it, and prints one line on stdout:
 *   wall=S user=S sys=S maxrss_kib=K status=exit:N|signal:N timeout=0|1
 * wall is CLOCK_MONOTONIC from just before fork to just after the reap. user, sys and maxrss
 * come from wait4's rusage: they cover PROG and every descendant PROG waited for, and maxrss
 * is the peak RSS of the largest single process among them.
 *
 * Why C and not Python's subprocess: at exec the kernel folds the exec-ing process's old
 * peak RSS into the new program's ru_maxrss, so a child forked from a Python harness never
 * reports less than the harness's own RSS (~10 MiB; the anchors' "timer floor"). Forked from
 * this small process the floor is ~1 MiB.
 * On timeout the whole process group gets SIGKILL. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t timed_out;
static volatile pid_t child;

static void on_alarm(int sig)
{
    (void)sig;
    timed_out = 1;
    if (child > 0) {
        kill(-child, SIGKILL);
        kill(child, SIGKILL);
    }
}

static double tv(struct timeval t) { return (double)t.tv_sec + (double)t.tv_usec / 1e6; }

int main(int argc, char **argv)
{
    double timeout = 0;
    const char *errfile = "/dev/null";
    char *envs[64];
    int nenv = 0;
    int i = 1;
    for (; i < argc; i++) {
        if (!strcmp(argv[i], "--")) { i++; break; }
        if (!strcmp(argv[i], "-t") && i + 1 < argc) { timeout = atof(argv[++i]); continue; }
        if (!strcmp(argv[i], "-e") && i + 1 < argc) { errfile = argv[++i]; continue; }
        if (!strcmp(argv[i], "-E") && i + 1 < argc && nenv < 64 && strchr(argv[i + 1], '=')) {
            envs[nenv++] = argv[++i];
            continue;
        }
        fprintf(stderr, "usage: runrec [-t TIMEOUT_S] [-e STDERR_FILE] [-E NAME=VALUE]... -- PROG [ARG ...]\n");
        return 2;
    }
    if (i >= argc) {
        fprintf(stderr, "runrec: no command\n");
        return 2;
    }
    int devnull = open("/dev/null", O_RDWR);
    int errfd = open(errfile, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (devnull < 0 || errfd < 0) {
        perror("runrec: open");
        return 2;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    if (pid < 0) {
        perror("runrec: fork");
        return 2;
    }
    if (pid == 0) {
        setpgid(0, 0);
        dup2(devnull, 0);
        dup2(devnull, 1);
        dup2(errfd, 2);
        close(devnull);
        close(errfd);
        for (int k = 0; k < nenv; k++)
            putenv(envs[k]);
        execvp(argv[i], argv + i);
        dprintf(2, "runrec: cannot run %s: %s\n", argv[i], strerror(errno));
        _exit(127);
    }
    child = pid;
    setpgid(pid, pid); /* also from the parent, so a timeout can never miss the group */
    if (timeout > 0) {
        struct itimerval it;
        memset(&it, 0, sizeof it);
        it.it_value.tv_sec = (time_t)timeout;
        it.it_value.tv_usec = (suseconds_t)((timeout - (double)(time_t)timeout) * 1e6);
        setitimer(ITIMER_REAL, &it, NULL);
    }
    int status = 0;
    struct rusage ru;
    for (;;) {
        pid_t r = wait4(pid, &status, 0, &ru);
        if (r == pid) break;
        if (r < 0 && errno == EINTR) continue;
        perror("runrec: wait4");
        return 2;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (timeout > 0) {
        struct itimerval off;
        memset(&off, 0, sizeof off);
        setitimer(ITIMER_REAL, &off, NULL);
    }
    if (timed_out)
        kill(-pid, SIGKILL); /* stragglers of a killed run */
    double wall = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    char st[32];
    if (WIFSIGNALED(status))
        snprintf(st, sizeof st, "signal:%d", WTERMSIG(status));
    else
        snprintf(st, sizeof st, "exit:%d", WEXITSTATUS(status));
    printf("wall=%.6f user=%.6f sys=%.6f maxrss_kib=%ld status=%s timeout=%d\n", wall, tv(ru.ru_utime),
           tv(ru.ru_stime), ru.ru_maxrss, st, timed_out ? 1 : 0);
    return 0;
}
