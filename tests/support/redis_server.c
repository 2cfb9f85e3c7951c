/*
 * redis_server.c -- test harness: a real redis-server per test (see
 * redis_server.h).
 *
 * The server runs in the foreground as our child, on a unix socket in a
 * fresh temp directory, with no TCP port unless the caller asks for one
 * (`--port N` in the extra arguments; take N from redis_server_free_port()).
 * The child gets SIGKILL when the test process dies (PR_SET_PDEATHSIG), so
 * a crashing test never leaves a server behind; its temp directory does
 * stay then (nothing else can remove it).
 *
 * Everything here blocks (fork, waitpid, a blocking hiredis client): fine
 * in tests, never in the engine.
 */
#include "redis_server.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define READY_TIMEOUT_MS 5000
#define STOP_TIMEOUT_MS 5000

/* ------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* True when `prog` is an executable file in one of $PATH's directories. */
static bool in_path(const char *prog)
{
    const char *path = getenv("PATH");
    char buf[4096];

    if (path == NULL || *path == '\0')
        path = "/usr/local/bin:/usr/bin:/bin";
    while (*path != '\0') {
        const char *end = strchr(path, ':');
        size_t n = end != NULL ? (size_t)(end - path) : strlen(path);

        if (n > 0 && n + strlen(prog) + 2 < sizeof buf) {
            memcpy(buf, path, n);
            buf[n] = '/';
            strcpy(buf + n + 1, prog);
            if (access(buf, X_OK) == 0)
                return true;
        }
        path += n;
        if (*path == ':')
            path++;
    }
    return false;
}

/* Removes `path` and everything below it (no symlinks followed). */
static void rm_tree(const char *path)
{
    struct stat st;
    DIR *d;
    struct dirent *e;

    if (lstat(path, &st) < 0)
        return;
    if (!S_ISDIR(st.st_mode)) {
        unlink(path);
        return;
    }
    d = opendir(path);
    if (d != NULL) {
        while ((e = readdir(d)) != NULL) {
            char sub[1024];
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            if (snprintf(sub, sizeof sub, "%s/%s", path, e->d_name) <
                (int)sizeof sub)
                rm_tree(sub);
        }
        closedir(d);
    }
    rmdir(path);
}

/* Prints the end of the server's log, to explain a failed start. */
static void print_log_tail(const redis_server_t *s)
{
    char path[300], buf[2048];
    FILE *f;
    long size;
    size_t n;

    snprintf(path, sizeof path, "%s/redis.log", s->dir);
    f = fopen(path, "r");
    if (f == NULL)
        return;
    fseek(f, 0, SEEK_END);
    size = ftell(f);
    fseek(f, size > (long)sizeof buf - 1 ? size - (long)sizeof buf + 1 : 0,
          SEEK_SET);
    n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    fprintf(stderr, "redis_server: end of %s:\n%s\n", path, buf);
}

/* Waits up to `ms` for `pid` to exit. Returns 0 when reaped, -1 if not. */
static int reap(pid_t pid, long ms)
{
    long deadline = now_ms() + ms;
    int status;

    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid || (w < 0 && errno == ECHILD))
            return 0;
        if (w < 0 && errno != EINTR)
            return 0;
        if (now_ms() >= deadline)
            return -1;
        sleep_ms(5);
    }
}

/* Ends the process (signal `sig`, SIGKILL after STOP_TIMEOUT_MS), reaps it
 * and marks the server not running. */
static void end_process(redis_server_t *s, int sig)
{
    if (s->pid <= 0)
        return;
    kill(s->pid, sig);
    if (sig != SIGKILL)
        kill(s->pid, SIGCONT);  /* a stopped server cannot handle SIGTERM */
    if (reap(s->pid, STOP_TIMEOUT_MS) < 0) {
        fprintf(stderr, "redis_server: pid %d ignored signal %d for %d ms, "
                        "sending SIGKILL\n", (int)s->pid, sig, STOP_TIMEOUT_MS);
        kill(s->pid, SIGKILL);
        while (waitpid(s->pid, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    s->pid = 0;
}

/* ------------------------------------------------------------------------
 * Starting
 * ------------------------------------------------------------------------ */

/* In the child, between fork and exec. */
static void exec_server(const redis_server_t *s, pid_t parent)
{
    char log[300];
    const char *base[] = {
        "redis-server", "--port", "0", "--unixsocket", s->socket,
        "--unixsocketperm", "700", "--dir", s->dir, "--save", "",
        "--appendonly", "no", "--daemonize", "no", "--logfile", log};
    size_t nbase = sizeof base / sizeof base[0];
    const char *argv[64];
    sigset_t none;
    size_t i;
    int fd;

    /* Die with the test process, even if it crashes. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
        _exit(126);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    /* Do not inherit the test's sockets (hiredis 0.14 does not set
     * close-on-exec): a restarted server would keep old clients alive. */
    if (syscall(SYS_close_range, 3U, ~0U, 0U) < 0)
        for (fd = 3; fd < 4096; fd++)
            close(fd);
    fd = open("/dev/null", O_RDWR);
    if (fd >= 0) {
        dup2(fd, STDIN_FILENO);
        dup2(fd, STDOUT_FILENO);
        if (fd > STDERR_FILENO)
            close(fd);
    }
    snprintf(log, sizeof log, "%s/redis.log", s->dir);
    for (i = 0; i < nbase; i++)
        argv[i] = base[i];
    for (i = 0; i < (size_t)s->nargs && nbase + i < 63; i++)
        argv[nbase + i] = s->args[i];
    argv[nbase + i] = NULL;
    execvp("redis-server", (char *const *)argv);
    fprintf(stderr, "redis_server: exec redis-server: %s\n", strerror(errno));
    _exit(127);
}

/* True once the server answers a command (PONG, or NOAUTH when the
 * default user is off: it is up, just not for anonymous clients). */
static bool answers(const redis_server_t *s)
{
    struct timeval tv = {0, 200000};
    redisContext *c = redisConnectUnixWithTimeout(s->socket, tv);
    redisReply *rep;
    bool ok = false;

    if (c == NULL)
        return false;
    if (c->err == 0) {
        redisSetTimeout(c, tv);
        rep = redisCommand(c, "PING");
        if (rep != NULL) {
            ok = rep->type == REDIS_REPLY_STATUS ||
                 (rep->type == REDIS_REPLY_ERROR &&
                  strncmp(rep->str, "NOAUTH", 6) == 0);
            freeReplyObject(rep);
        }
    }
    redisFree(c);
    return ok;
}

/* Spawns the server on s->dir with s->args and waits until it answers. */
static int spawn(redis_server_t *s)
{
    pid_t parent = getpid();
    long deadline;
    pid_t pid;
    int status;

    /* Remove a stale socket so "answers" cannot mean the old process. */
    unlink(s->socket);
    pid = fork();
    if (pid < 0) {
        fprintf(stderr, "redis_server: fork: %s\n", strerror(errno));
        return -1;
    }
    if (pid == 0)
        exec_server(s, parent);
    s->pid = pid;

    deadline = now_ms() + READY_TIMEOUT_MS;
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid) {
            s->pid = 0;
            if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
                fprintf(stderr, "redis_server: could not run redis-server\n");
            else
                fprintf(stderr, "redis_server: redis-server exited during "
                                "startup (status %d)\n", status);
            print_log_tail(s);
            return -1;
        }
        if (answers(s))
            return 0;
        if (now_ms() >= deadline)
            break;
        sleep_ms(10);
    }
    fprintf(stderr, "redis_server: redis-server did not answer PING within "
                    "%d ms on %s\n", READY_TIMEOUT_MS, s->socket);
    print_log_tail(s);
    end_process(s, SIGKILL);
    return -1;
}

/* ------------------------------------------------------------------------
 * Public functions
 * ------------------------------------------------------------------------ */

/* Zeroes `s`, makes its directory, starts the server. Returns 0, or -1
 * with a message on stderr; then nothing is left (no process, no
 * directory) and redis_server_stop(s) is a no-op. */
int redis_server_start(redis_server_t *s, const char *const *extra)
{
    const char *tmp = getenv("TMPDIR");
    size_t i, n = 0;

    memset(s, 0, sizeof *s);
    if (!in_path("redis-server")) {
        fprintf(stderr, "redis_server: redis-server not found on PATH; "
                        "install the `redis-server` package "
                        "(e.g. apt-get install redis-server)\n");
        return -1;
    }
    /* The socket path must fit sun_path: fall back to /tmp for a long
     * $TMPDIR. */
    if (tmp == NULL || tmp[0] == '\0' ||
        strlen(tmp) + sizeof "/saga-redis-XXXXXX/redis.sock" >
            sizeof(((struct sockaddr_un *)0)->sun_path))
        tmp = "/tmp";
    snprintf(s->dir, sizeof s->dir, "%s/saga-redis-XXXXXX", tmp);
    if (mkdtemp(s->dir) == NULL) {
        fprintf(stderr, "redis_server: mkdtemp %s: %s\n", s->dir,
                strerror(errno));
        s->dir[0] = '\0';
        return -1;
    }
    snprintf(s->socket, sizeof s->socket, "%s/redis.sock", s->dir);
    snprintf(s->url, sizeof s->url, "unix://%s", s->socket);

    while (extra != NULL && extra[n] != NULL)
        n++;
    if (n > 40) {
        fprintf(stderr, "redis_server: too many extra arguments (%zu)\n", n);
        goto err;
    }
    if (n > 0) {
        s->args = calloc(n, sizeof *s->args);
        if (s->args == NULL)
            goto err;
        for (i = 0; i < n; i++) {
            s->args[i] = strdup(extra[i]);
            if (s->args[i] == NULL)
                goto err;
            s->nargs++;
        }
    }
    if (spawn(s) < 0)
        goto err;
    return 0;

err:
    redis_server_stop(s);
    return -1;
}

/* Sends `sig`. For SIGSTOP/SIGCONT/SIGTSTP/0 the server keeps running (no
 * reaping); for any other signal it is reaped (SIGKILL if it is still
 * there after 5 s) and s->pid becomes 0. No-op when not running. */
void redis_server_kill(redis_server_t *s, int sig)
{
    if (s->pid <= 0)
        return;
    if (sig == 0 || sig == SIGSTOP || sig == SIGCONT || sig == SIGTSTP) {
        kill(s->pid, sig);
        return;
    }
    end_process(s, sig);
}

/* Starts the server again with the same directory and arguments; a
 * running one is stopped first (SIGTERM). Returns 0 or -1 (message on
 * stderr, server not running). */
int redis_server_restart(redis_server_t *s)
{
    if (s->dir[0] == '\0') {
        fprintf(stderr, "redis_server: restart of a server never started\n");
        return -1;
    }
    end_process(s, SIGTERM);
    return spawn(s);
}

/* Stops the process (SIGTERM, SIGKILL after 5 s), removes the directory,
 * frees the arguments and zeroes `s`. Accepts a zeroed struct. */
void redis_server_stop(redis_server_t *s)
{
    int i;

    if (s == NULL)
        return;
    end_process(s, SIGTERM);
    if (s->dir[0] != '\0')
        rm_tree(s->dir);
    for (i = 0; i < s->nargs; i++)
        free(s->args[i]);
    free(s->args);
    memset(s, 0, sizeof *s);
}

/* Blocking client on the unix socket (2 s connect timeout). Returns NULL
 * with a message on stderr on failure; the caller frees with redisFree. */
redisContext *redis_server_connect(const redis_server_t *s)
{
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectUnixWithTimeout(s->socket, tv);

    if (c == NULL) {
        fprintf(stderr, "redis_server: connect %s: out of memory\n",
                s->socket);
        return NULL;
    }
    if (c->err != 0) {
        fprintf(stderr, "redis_server: connect %s: %s\n", s->socket,
                c->errstr);
        redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    return c;
}

/* A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0,
 * read back, released), for `--port N`. Returns the port or -1. */
int redis_server_free_port(void)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int port = -1;

    if (fd < 0)
        return -1;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}
