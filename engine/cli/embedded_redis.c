/*
 * embedded_redis.c -- see embedded_redis.h.
 *
 * Readiness is detected by connecting to the socket (uv_pipe_connect) every
 * few milliseconds and sending PING: the server accepts connections while
 * it still loads its data, and answers -LOADING until it is done, which
 * would fail the store's first connection. A server that exits early, or
 * does not answer +PONG within START_TIMEOUT_MS, is reported with the tail
 * of its log file.
 */
#include "cli/embedded_redis.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/log.h"

#define START_TIMEOUT_MS 15000
#define STOP_TIMEOUT_MS 15000
#define POLL_MS 20

struct saga_embedded_redis_s {
    uv_loop_t *loop;
    char dir[PATH_MAX];
    char sock[PATH_MAX + 16];
    char url[PATH_MAX + 32];
    char log[PATH_MAX + 16];
    char pidfile[PATH_MAX + 16];
    int lock_fd;
    uv_process_t proc;
    bool spawned;         /* proc is our child and its handle is open */
    bool exited;          /* the child exited */
    pid_t adopted;        /* a server left by a previous process */
    uv_timer_t timer;
    uv_pipe_t probe;
    bool probing;         /* the probe handle is open */
    bool probe_ok;        /* it read +PONG */
    uv_write_t probe_write;
    char probe_buf[64];   /* the start of the answer */
    size_t probe_len;
    uint64_t started;
    bool ready_sent;
    char start_error[600]; /* a failure found before the first poll */
    saga_embedded_ready_cb ready;
    void *data;
    void (*stopped)(void *);
    void *stopped_data;
    int open_handles;
};

/* The directory of an executable named `name` on $PATH, or false. */
static bool on_path(const char *name, char *out, size_t outlen) {
    const char *path = getenv("PATH");
    if (path == NULL)
        path = "/usr/local/bin:/usr/bin:/bin";
    char *copy = strdup(path), *save = NULL;
    bool found = false;
    for (char *d = strtok_r(copy, ":", &save); d && !found; d = strtok_r(NULL, ":", &save)) {
        snprintf(out, outlen, "%s/%s", d, name);
        found = access(out, X_OK) == 0;
    }
    free(copy);
    return found;
}

static void tail_of(const char *file, char *out, size_t outlen) {
    out[0] = '\0';
    FILE *f = fopen(file, "r");
    if (f == NULL)
        return;
    char buf[4096];
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, size > (long)sizeof(buf) - 1 ? size - (long)sizeof(buf) + 1 : 0, SEEK_SET);
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The last three lines are what explains a failed start. */
    int lines = 0;
    char *p = buf + n;
    while (p > buf && lines < 4)
        if (*--p == '\n')
            lines++;
    snprintf(out, outlen, "%s", p + (*p == '\n'));
    for (char *q = out; *q; q++)
        if (*q == '\n')
            *q = ' ';
}

static void report(saga_embedded_redis_t *er, int status, const char *msg) {
    if (er->ready_sent)
        return;
    er->ready_sent = true;
    uv_timer_stop(&er->timer);
    er->ready(er, status, msg, er->data);
}

static void fail_with_log(saga_embedded_redis_t *er, const char *what) {
    char tail[1024], msg[1600];
    tail_of(er->log, tail, sizeof(tail));
    snprintf(msg, sizeof(msg), "embedded redis-server in %s %s%s%s", er->dir, what,
             tail[0] ? "; its log ends: " : "", tail);
    report(er, -EIO, msg);
}

static void on_exit_cb(uv_process_t *p, int64_t status, int signo) {
    saga_embedded_redis_t *er = p->data;
    er->exited = true;
    if (!er->ready_sent) {
        char what[64];
        snprintf(what, sizeof(what), "exited during start (status %lld, signal %d)",
                 (long long)status, signo);
        fail_with_log(er, what);
    } else if (er->stopped == NULL) {
        saga_error("embedded redis-server in %s exited unexpectedly (status %lld, "
                   "signal %d); see %s", er->dir, (long long)status, signo, er->log);
    }
}

static void probe_closed(uv_handle_t *h) {
    saga_embedded_redis_t *er = h->data;
    er->probing = false;
    if (er->probe_ok)
        report(er, 0, NULL);
}

static void probe_end(saga_embedded_redis_t *er, bool ok) {
    er->probe_ok = ok;
    if (!uv_is_closing((uv_handle_t *)&er->probe))
        uv_close((uv_handle_t *)&er->probe, probe_closed);
}

static void probe_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
    saga_embedded_redis_t *er = h->data;
    (void)hint;
    *buf = uv_buf_init(er->probe_buf + er->probe_len,
                       (unsigned)(sizeof(er->probe_buf) - 1 - er->probe_len));
}

/* The answer to PING: +PONG once the data is loaded; -LOADING before (the
 * next poll probes again). */
static void on_probe_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf) {
    saga_embedded_redis_t *er = st->data;
    (void)buf;
    if (n < 0) {
        probe_end(er, false);
        return;
    }
    er->probe_len += (size_t)n;
    er->probe_buf[er->probe_len] = '\0';
    if (strstr(er->probe_buf, "\r\n") != NULL || er->probe_len == sizeof(er->probe_buf) - 1)
        probe_end(er, strncmp(er->probe_buf, "+PONG\r\n", 7) == 0);
}

static void on_probe_written(uv_write_t *req, int status) {
    saga_embedded_redis_t *er = req->data;
    if (status != 0)
        probe_end(er, false);
}

static void on_probe(uv_connect_t *req, int status) {
    saga_embedded_redis_t *er = req->data;
    free(req);
    if (status != 0) {
        probe_end(er, false);
        return;
    }
    static char ping[] = "PING\r\n";
    uv_buf_t b = uv_buf_init(ping, sizeof(ping) - 1);
    er->probe_len = 0;
    er->probe_write.data = er;
    if (uv_read_start((uv_stream_t *)&er->probe, probe_alloc, on_probe_read) != 0 ||
        uv_write(&er->probe_write, (uv_stream_t *)&er->probe, &b, 1, on_probe_written) != 0)
        probe_end(er, false);
}

static void probe(saga_embedded_redis_t *er) {
    if (er->probing)
        return;
    uv_connect_t *req = malloc(sizeof(*req));
    if (req == NULL)
        return;
    req->data = er;
    uv_pipe_init(er->loop, &er->probe, 0);
    er->probe.data = er;
    er->probing = true;
    er->probe_ok = false;
    uv_pipe_connect(req, &er->probe, er->sock, on_probe);
}

static void on_poll(uv_timer_t *t) {
    saga_embedded_redis_t *er = t->data;
    if (er->ready_sent)
        return;
    if (er->start_error[0] != '\0') {
        report(er, -ENOENT, er->start_error);
        return;
    }
    if (uv_now(er->loop) - er->started > START_TIMEOUT_MS) {
        fail_with_log(er, "did not accept connections in time");
        return;
    }
    probe(er);
}

static int spawn_server(saga_embedded_redis_t *er, char *err, size_t errlen) {
    char exe[PATH_MAX + 32];
    if (!on_path("redis-server", exe, sizeof(exe))) {
        snprintf(err, errlen, "redis-server is not installed (not found on PATH). "
                 "Install it (Debian/Ubuntu: sudo apt-get install redis-server), or "
                 "use a running Redis with --redis URL, or --store memory");
        return -ENOENT;
    }
    unlink(er->sock); /* a stale socket of a server that is gone */
    char *args[] = {
        exe, "--port", "0", "--unixsocket", er->sock, "--unixsocketperm", "700",
        "--dir", er->dir, "--appendonly", "yes", "--appendfsync", "always",
        "--save", "", "--daemonize", "no", "--logfile", er->log,
        "--pidfile", er->pidfile, "--maxmemory-policy", "noeviction", NULL};
    uv_stdio_container_t stdio[3] = {{UV_IGNORE, {0}}, {UV_IGNORE, {0}}, {UV_IGNORE, {0}}};
    uv_process_options_t o;
    memset(&o, 0, sizeof(o));
    o.file = exe;
    o.args = args;
    o.exit_cb = on_exit_cb;
    o.stdio = stdio;
    o.stdio_count = 3;
    o.cwd = er->dir;
    er->proc.data = er;
    int rc = uv_spawn(er->loop, &er->proc, &o);
    er->open_handles++; /* the handle is closed in every case */
    er->spawned = true;
    if (rc != 0) {
        snprintf(err, errlen, "cannot start %s: %s", exe, uv_strerror(rc));
        er->exited = true;
        return rc;
    }
    return 0;
}

/* A server from an earlier process still serving this directory? */
static pid_t leftover_server(saga_embedded_redis_t *er) {
    FILE *f = fopen(er->pidfile, "r");
    if (f == NULL)
        return 0;
    long pid = 0;
    if (fscanf(f, "%ld", &pid) != 1)
        pid = 0;
    fclose(f);
    if (pid <= 1 || kill((pid_t)pid, 0) != 0)
        return 0;
    char comm[PATH_MAX], buf[64] = "";
    snprintf(comm, sizeof(comm), "/proc/%ld/comm", pid);
    FILE *c = fopen(comm, "r");
    if (c != NULL) {
        if (fgets(buf, sizeof(buf), c) == NULL)
            buf[0] = '\0';
        fclose(c);
    }
    return strncmp(buf, "redis-server", 12) == 0 ? (pid_t)pid : 0;
}

saga_embedded_redis_t *saga_embedded_redis_start(uv_loop_t *loop,
                                                 const char *state_dir,
                                                 saga_embedded_ready_cb ready,
                                                 void *data, char *err,
                                                 size_t errlen) {
    if (mkdir(state_dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create state directory %s: %s", state_dir,
                 strerror(errno));
        return NULL;
    }
    saga_embedded_redis_t *er = calloc(1, sizeof(*er));
    if (er == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    er->loop = loop;
    er->ready = ready;
    er->data = data;
    er->lock_fd = -1;
    if (realpath(state_dir, er->dir) == NULL) {
        snprintf(err, errlen, "state directory %s: %s", state_dir, strerror(errno));
        free(er);
        return NULL;
    }
    snprintf(er->sock, sizeof(er->sock), "%s/redis.sock", er->dir);
    snprintf(er->url, sizeof(er->url), "unix://%s", er->sock);
    snprintf(er->log, sizeof(er->log), "%s/redis.log", er->dir);
    snprintf(er->pidfile, sizeof(er->pidfile), "%s/redis.pid", er->dir);
    if (strlen(er->sock) >= 108) { /* sun_path */
        snprintf(err, errlen, "state directory path %s is too long for a unix "
                 "socket; choose a shorter --state-dir", er->dir);
        free(er);
        return NULL;
    }

    char lock[PATH_MAX + 16];
    snprintf(lock, sizeof(lock), "%s/lock", er->dir);
    er->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (er->lock_fd < 0 || flock(er->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        char owner[32] = "?";
        if (er->lock_fd >= 0) {
            ssize_t n = pread(er->lock_fd, owner, sizeof(owner) - 1, 0);
            owner[n > 0 ? n : 0] = '\0';
            owner[strcspn(owner, "\n")] = '\0';
            close(er->lock_fd);
        }
        if (e == EWOULDBLOCK)
            snprintf(err, errlen, "state directory %s is in use by another saga "
                     "process (pid %s); wait for it, or use another --state-dir, or "
                     "share a Redis with --redis URL", er->dir, owner);
        else
            snprintf(err, errlen, "cannot lock %s: %s", lock, strerror(e));
        free(er);
        return NULL;
    }
    char pid[32];
    int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    if (ftruncate(er->lock_fd, 0) != 0 || pwrite(er->lock_fd, pid, (size_t)n, 0) != n)
        saga_warn("cannot record our pid in %s", lock);

    uv_timer_init(loop, &er->timer);
    er->timer.data = er;
    er->open_handles++;
    er->started = uv_now(loop);
    /* From here on, failures are reported through `ready`, and the caller's
     * saga_embedded_redis_stop() closes what was opened. */
    if ((er->adopted = leftover_server(er)) != 0)
        saga_info("state directory %s: adopting redis-server (pid %ld) left by an "
                  "earlier process", er->dir, (long)er->adopted);
    else
        spawn_server(er, er->start_error, sizeof(er->start_error));
    uv_timer_start(&er->timer, on_poll, 0, POLL_MS);
    return er;
}

const char *saga_embedded_redis_url(const saga_embedded_redis_t *er) { return er->url; }

static void on_handle_closed(uv_handle_t *h) {
    saga_embedded_redis_t *er = h->data;
    if (--er->open_handles > 0)
        return;
    if (er->lock_fd >= 0)
        close(er->lock_fd); /* releases the lock */
    void (*stopped)(void *) = er->stopped;
    void *data = er->stopped_data;
    free(er);
    if (stopped != NULL)
        stopped(data);
}

static void finish_stop(saga_embedded_redis_t *er) {
    uv_timer_stop(&er->timer);
    uv_close((uv_handle_t *)&er->timer, on_handle_closed);
    if (er->spawned)
        uv_close((uv_handle_t *)&er->proc, on_handle_closed);
}

static void on_stop_poll(uv_timer_t *t) {
    saga_embedded_redis_t *er = t->data;
    bool gone = er->spawned ? er->exited
                            : er->adopted == 0 || kill(er->adopted, 0) != 0;
    if (gone && !er->probing) {
        finish_stop(er);
        return;
    }
    if (uv_now(er->loop) - er->started > STOP_TIMEOUT_MS) {
        saga_error("embedded redis-server in %s did not stop in time; killing it",
                   er->dir);
        if (er->spawned && !er->exited)
            uv_process_kill(&er->proc, SIGKILL);
        else if (!er->spawned)
            kill(er->adopted, SIGKILL);
        er->started = uv_now(er->loop); /* give SIGKILL its own window */
    }
}

void saga_embedded_redis_stop(saga_embedded_redis_t *er,
                              void (*stopped)(void *data), void *data) {
    er->stopped = stopped;
    er->stopped_data = data;
    er->ready_sent = true;
    er->timer.data = er;
    er->proc.data = er;
    if (er->spawned && !er->exited)
        uv_process_kill(&er->proc, SIGTERM);
    else if (!er->spawned && er->adopted != 0)
        kill(er->adopted, SIGTERM);
    er->started = uv_now(er->loop);
    uv_timer_start(&er->timer, on_stop_poll, 0, POLL_MS);
}
