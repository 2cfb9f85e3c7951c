/*
 * redis_cluster.c -- test harness: a Redis Cluster on loopback (see
 * redis_cluster.h).
 *
 * Ports: a node needs its port and port + 10000 (the cluster bus). Each
 * candidate comes from binding port 0 (the kernel's choice, so two test
 * processes do not pick the same one), is kept only if port + 10000 binds
 * too, and all sockets stay bound until the six ports are chosen, so the
 * harness never picks one twice; they are released just before the
 * servers start.
 */
#include "redis_cluster.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define START_TIMEOUT_MS 30000
#define CREATE_TIMEOUT_MS 30000
#define PORT_TRIES 200

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

/* ------------------------------------------------------------------------
 * Hash slots (Redis's cluster.c: CRC16/XMODEM of the hash tag)
 * ------------------------------------------------------------------------ */

static unsigned crc16(const char *buf, size_t len)
{
    unsigned crc = 0;
    size_t i;
    int b;

    for (i = 0; i < len; i++) {
        crc ^= (unsigned)(unsigned char)buf[i] << 8;
        for (b = 0; b < 8; b++)
            crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff
                               : (crc << 1) & 0xffff;
    }
    return crc;
}

int redis_cluster_key_slot(const char *key)
{
    size_t len = strlen(key), s, e;

    for (s = 0; s < len && key[s] != '{'; s++)
        ;
    if (s < len) {
        for (e = s + 1; e < len && key[e] != '}'; e++)
            ;
        if (e < len && e > s + 1)
            return (int)(crc16(key + s + 1, e - s - 1) & 16383);
    }
    return (int)(crc16(key, len) & 16383);
}

/* ------------------------------------------------------------------------
 * Ports and children
 * ------------------------------------------------------------------------ */

static int bind_loopback(int port)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    if (fd < 0)
        return -1;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)port);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int port_of(int fd)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;

    if (getsockname(fd, (struct sockaddr *)&a, &len) < 0)
        return -1;
    return ntohs(a.sin_port);
}

/* Chooses n ports p with p and p + 10000 free. Returns 0 or -1. */
static int choose_ports(int *ports, int n)
{
    int held[2 * REDIS_CLUSTER_NODES], nheld = 0, got = 0, tries, i;

    for (tries = 0; got < n && tries < PORT_TRIES; tries++) {
        int fd = bind_loopback(0), bus, p;

        if (fd < 0)
            break;
        p = port_of(fd);
        bus = p > 0 && p + 10000 <= 65535 ? bind_loopback(p + 10000) : -1;
        if (bus < 0) {
            close(fd);
            continue;
        }
        held[nheld++] = fd;
        held[nheld++] = bus;
        ports[got++] = p;
    }
    for (i = 0; i < nheld; i++)
        close(held[i]);
    if (got < n) {
        fprintf(stderr, "redis_cluster: found only %d of %d free port pairs "
                        "(port and port + 10000)\n", got, n);
        return -1;
    }
    return 0;
}

/* Runs argv as a child with stdout and stderr appended to `log`. Returns
 * the pid or -1. */
static pid_t spawn_logged(const char *const *argv, const char *log)
{
    pid_t parent = getpid(), pid = fork();

    if (pid < 0) {
        fprintf(stderr, "redis_cluster: fork: %s\n", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        sigset_t none;

        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
            _exit(126);
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (fd >= 0) {
            dup2(fd, STDOUT_FILENO);
            dup2(fd, STDERR_FILENO);
            close(fd);
        }
        fd = open("/dev/null", O_RDONLY);
        if (fd >= 0) {
            dup2(fd, STDIN_FILENO);
            close(fd);
        }
        execvp(argv[0], (char *const *)argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    return pid;
}

int redis_cluster_wait_child(pid_t pid, long timeout_ms)
{
    long deadline = now_ms() + timeout_ms;
    int status;

    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        if (w < 0 && errno != EINTR)
            return -1;
        if (now_ms() >= deadline) {
            fprintf(stderr, "redis_cluster: child %d still running after "
                            "%ld ms, killed\n", (int)pid, timeout_ms);
            kill(pid, SIGKILL);
            while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                ;
            return -1;
        }
        sleep_ms(20);
    }
}

static void print_file(const char *path)
{
    char buf[4096];
    FILE *f = fopen(path, "r");
    size_t n;

    if (f == NULL)
        return;
    n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    fprintf(stderr, "redis_cluster: %s:\n%s\n", path, buf);
}

/* ------------------------------------------------------------------------
 * Reading the cluster's state
 * ------------------------------------------------------------------------ */

static bool alive(const redis_cluster_t *c, int i)
{
    return c->node[i].srv.pid > 0;
}

redisContext *redis_cluster_connect(const redis_cluster_t *c, int i)
{
    if (i < 0 || i >= c->nnodes || !alive(c, i))
        return NULL;
    return redis_server_connect(&c->node[i].srv);
}

static int index_of_port(const redis_cluster_t *c, long long port)
{
    int i;

    for (i = 0; i < c->nnodes; i++)
        if (c->node[i].port == port)
            return i;
    return -1;
}

/* A field of an INFO-style reply ("name:value\r\n") copied into out. */
static bool info_field(const char *text, const char *name, char *out,
                       size_t len)
{
    size_t n = strlen(name);
    const char *p = text;

    while (p != NULL && *p != '\0') {
        if (strncmp(p, name, n) == 0 && p[n] == ':') {
            size_t k = strcspn(p + n + 1, "\r\n");
            if (k >= len)
                k = len - 1;
            memcpy(out, p + n + 1, k);
            out[k] = '\0';
            return true;
        }
        p = strchr(p, '\n');
        if (p != NULL)
            p++;
    }
    return false;
}

static bool node_info(const redis_cluster_t *c, int i, const char *cmd,
                      const char *field, char *out, size_t len)
{
    redisContext *ctx = redis_cluster_connect(c, i);
    redisReply *r;
    bool ok = false;

    if (ctx == NULL)
        return false;
    r = redisCommand(ctx, cmd);
    if (r != NULL && r->type == REDIS_REPLY_STRING)
        ok = info_field(r->str, field, out, len);
    freeReplyObject(r);
    redisFree(ctx);
    return ok;
}

/* Fills owner[slot] with the index of the primary serving it according to
 * node i (-1: none). Returns 0 or -1. */
static int slot_owners(const redis_cluster_t *c, int i, int *owner)
{
    redisContext *ctx = redis_cluster_connect(c, i);
    redisReply *r;
    size_t k;
    int s;

    for (s = 0; s < REDIS_CLUSTER_SLOTS; s++)
        owner[s] = -1;
    if (ctx == NULL)
        return -1;
    r = redisCommand(ctx, "CLUSTER SLOTS");
    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(r);
        redisFree(ctx);
        return -1;
    }
    for (k = 0; k < r->elements; k++) {
        redisReply *e = r->element[k];
        long long a, b, j;
        int who;

        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
            e->element[2]->type != REDIS_REPLY_ARRAY ||
            e->element[2]->elements < 2)
            continue;
        a = e->element[0]->integer;
        b = e->element[1]->integer;
        who = index_of_port(c, e->element[2]->element[1]->integer);
        for (j = a; j <= b && j < REDIS_CLUSTER_SLOTS; j++)
            owner[j] = who;
    }
    freeReplyObject(r);
    redisFree(ctx);
    return 0;
}

int redis_cluster_primary_of(const redis_cluster_t *c, int slot)
{
    static int owner[REDIS_CLUSTER_SLOTS];
    int i;

    if (slot < 0 || slot >= REDIS_CLUSTER_SLOTS)
        return -1;
    for (i = 0; i < c->nnodes; i++)
        if (alive(c, i) && slot_owners(c, i, owner) == 0)
            return owner[slot];
    return -1;
}

/* Reads node i's id and role from CLUSTER NODES ("myself" line); also
 * the master of each node into master_of (-1: none) when not NULL. */
static int read_nodes(redis_cluster_t *c, int i, int *master_of)
{
    redisContext *ctx = redis_cluster_connect(c, i);
    redisReply *r;
    char *line, *save = NULL, *text;
    char masters[REDIS_CLUSTER_NODES][64];
    int j, k;

    if (ctx == NULL)
        return -1;
    r = redisCommand(ctx, "CLUSTER NODES");
    redisFree(ctx);
    if (r == NULL || r->type != REDIS_REPLY_STRING) {
        freeReplyObject(r);
        return -1;
    }
    text = strdup(r->str);
    freeReplyObject(r);
    if (text == NULL)
        return -1;
    if (master_of != NULL)
        for (j = 0; j < c->nnodes; j++)
            master_of[j] = -1;
    /* <id> <ip:port@bus> <flags> <master|-> ...; ids first, then masters
     * (a replica's line may come before its master's). */
    for (j = 0; j < c->nnodes; j++)
        masters[j][0] = '\0';
    for (line = strtok_r(text, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        char id[64], addr[128], flags[128], master[64];
        const char *colon;
        int who;

        if (sscanf(line, "%63s %127s %127s %63s", id, addr, flags, master) != 4)
            continue;
        colon = strrchr(addr, ':');
        who = colon != NULL ? index_of_port(c, atoll(colon + 1)) : -1;
        if (who < 0)
            continue;
        snprintf(c->node[who].id, sizeof c->node[who].id, "%s", id);
        c->node[who].primary = strstr(flags, "master") != NULL &&
                               strstr(flags, "fail") == NULL;
        snprintf(masters[who], sizeof masters[who], "%s",
                 strcmp(master, "-") != 0 ? master : "");
    }
    free(text);
    if (master_of != NULL)
        for (j = 0; j < c->nnodes; j++)
            for (k = 0; k < c->nnodes && masters[j][0] != '\0'; k++)
                if (strcmp(c->node[k].id, masters[j]) == 0)
                    master_of[j] = k;
    return 0;
}

int redis_cluster_primaries(redis_cluster_t *c, int *out)
{
    int i, n = 0;

    for (i = 0; i < c->nnodes; i++)
        if (alive(c, i) && read_nodes(c, i, NULL) == 0)
            break;
    if (i == c->nnodes)
        return -1;
    for (i = 0; i < c->nnodes; i++)
        if (c->node[i].primary && alive(c, i))
            out[n++] = i;
    return n;
}

/* One check of what redis_cluster_wait_ok() waits for; `why` says what is
 * missing. */
static bool cluster_ok(redis_cluster_t *c, char *why, size_t len)
{
    static int first[REDIS_CLUSTER_SLOTS], other[REDIS_CLUSTER_SLOTS];
    bool have_first = false;
    char v[64];
    int i, s;

    for (i = 0; i < c->nnodes; i++) {
        if (!alive(c, i))
            continue;
        if (!node_info(c, i, "CLUSTER INFO", "cluster_state", v, sizeof v) ||
            strcmp(v, "ok") != 0) {
            snprintf(why, len, "node %d (port %d): cluster_state %s", i,
                     c->node[i].port, v);
            return false;
        }
        if (!node_info(c, i, "INFO replication", "role", v, sizeof v)) {
            snprintf(why, len, "node %d: no role", i);
            return false;
        }
        if (strcmp(v, "slave") == 0 &&
            (!node_info(c, i, "INFO replication", "master_link_status", v,
                        sizeof v) || strcmp(v, "up") != 0)) {
            snprintf(why, len, "node %d (port %d): replica link %s", i,
                     c->node[i].port, v);
            return false;
        }
        if (slot_owners(c, i, have_first ? other : first) < 0) {
            snprintf(why, len, "node %d: no CLUSTER SLOTS", i);
            return false;
        }
        for (s = 0; s < REDIS_CLUSTER_SLOTS; s++) {
            int o = have_first ? other[s] : first[s];
            if (o < 0 || !alive(c, o) ||
                (have_first && other[s] != first[s])) {
                snprintf(why, len, "node %d (port %d): slot %d served by %d",
                         i, c->node[i].port, s, o);
                return false;
            }
        }
        have_first = true;
    }
    return have_first;
}

int redis_cluster_wait_ok(redis_cluster_t *c, long timeout_ms)
{
    long deadline = now_ms() + timeout_ms;
    char why[256] = "no node alive";

    for (;;) {
        if (cluster_ok(c, why, sizeof why))
            return 0;
        if (now_ms() >= deadline)
            break;
        sleep_ms(50);
    }
    fprintf(stderr, "redis_cluster: not ok after %ld ms: %s\n", timeout_ms,
            why);
    return -1;
}

/* ------------------------------------------------------------------------
 * Start and stop
 * ------------------------------------------------------------------------ */

static int start_once(redis_cluster_t *c, const char *const *extra)
{
    int ports[REDIS_CLUSTER_NODES], i, rc;
    char log[400];
    const char *argv[REDIS_CLUSTER_NODES + 8];
    char addrs[REDIS_CLUSTER_NODES][32];
    pid_t pid;

    memset(c, 0, sizeof *c);
    if (choose_ports(ports, REDIS_CLUSTER_NODES) < 0)
        return -1;
    for (i = 0; i < REDIS_CLUSTER_NODES; i++) {
        char port[16];
        const char *args[48];
        int n = 0, k;

        snprintf(port, sizeof port, "%d", ports[i]);
        args[n++] = "--port";
        args[n++] = port;
        args[n++] = "--bind";
        args[n++] = "127.0.0.1";
        args[n++] = "--cluster-enabled";
        args[n++] = "yes";
        args[n++] = "--cluster-config-file";
        args[n++] = "nodes.conf";
        args[n++] = "--cluster-node-timeout";
        args[n++] = "2000";
        for (k = 0; extra != NULL && extra[k] != NULL && n < 46; k++)
            args[n++] = extra[k];
        args[n] = NULL;
        c->node[i].port = ports[i];
        snprintf(c->node[i].url, sizeof c->node[i].url,
                 "redis://127.0.0.1:%d", ports[i]);
        if (redis_server_start(&c->node[i].srv, args) < 0) {
            c->nnodes = i;
            goto err;
        }
        c->nnodes = i + 1;
    }
    /* Primaries are the first three addresses given, replicas the rest. */
    argv[0] = "redis-cli";
    argv[1] = "--cluster";
    argv[2] = "create";
    for (i = 0; i < REDIS_CLUSTER_NODES; i++) {
        snprintf(addrs[i], sizeof addrs[i], "127.0.0.1:%d", ports[i]);
        argv[3 + i] = addrs[i];
    }
    argv[3 + i] = "--cluster-replicas";
    argv[4 + i] = "1";
    argv[5 + i] = "--cluster-yes";
    argv[6 + i] = NULL;
    snprintf(log, sizeof log, "%s/cluster-create.log", c->node[0].srv.dir);
    pid = spawn_logged(argv, log);
    if (pid < 0)
        goto err;
    rc = redis_cluster_wait_child(pid, CREATE_TIMEOUT_MS);
    if (rc != 0) {
        fprintf(stderr, "redis_cluster: redis-cli --cluster create exited "
                        "with %d\n", rc);
        print_file(log);
        goto err;
    }
    if (redis_cluster_wait_ok(c, START_TIMEOUT_MS) < 0)
        goto err;
    for (i = 0; i < c->nnodes; i++)
        if (read_nodes(c, i, NULL) < 0) {
            fprintf(stderr, "redis_cluster: node %d: no CLUSTER NODES\n", i);
            goto err;
        }
    return 0;

err:
    redis_cluster_stop(c);
    return -1;
}

int redis_cluster_start(redis_cluster_t *c, const char *const *extra)
{
    /* The ports were free a moment before they were used: another test
     * (or program) may take one meanwhile, and then a node fails to
     * listen. Each try chooses its ports afresh. */
    for (int tries = 0; tries < 3; tries++) {
        if (start_once(c, extra) == 0)
            return 0;
        fprintf(stderr, "redis_cluster: start failed (try %d of 3)\n", tries + 1);
    }
    return -1;
}

void redis_cluster_stop(redis_cluster_t *c)
{
    int i;

    if (c == NULL)
        return;
    for (i = 0; i < c->nnodes; i++)
        redis_server_stop(&c->node[i].srv);
    memset(c, 0, sizeof *c);
}

/* ------------------------------------------------------------------------
 * Failover and resharding
 * ------------------------------------------------------------------------ */

int redis_cluster_kill_primary(redis_cluster_t *c, int i, long timeout_ms)
{
    int master_of[REDIS_CLUSTER_NODES], j, k;
    long deadline = now_ms() + timeout_ms;
    char role[32];

    if (i < 0 || i >= c->nnodes || !alive(c, i))
        return -1;
    for (k = 0; k < c->nnodes; k++)
        if (k != i && alive(c, k) && read_nodes(c, k, master_of) == 0)
            break;
    if (k == c->nnodes) {
        fprintf(stderr, "redis_cluster: no live node answers CLUSTER NODES\n");
        return -1;
    }
    redis_server_kill(&c->node[i].srv, SIGKILL);
    for (;;) {
        for (j = 0; j < c->nnodes; j++)
            if (master_of[j] == i && alive(c, j) &&
                node_info(c, j, "INFO replication", "role", role,
                          sizeof role) &&
                strcmp(role, "master") == 0)
                break;
        if (j < c->nnodes)
            break;
        if (now_ms() >= deadline) {
            fprintf(stderr, "redis_cluster: no replica of node %d promoted "
                            "after %ld ms\n", i, timeout_ms);
            return -1;
        }
        sleep_ms(50);
    }
    if (redis_cluster_wait_ok(c, deadline - now_ms() > 0
                                     ? deadline - now_ms() : 1) < 0)
        return -1;
    for (k = 0; k < c->nnodes; k++)
        if (alive(c, k))
            (void)read_nodes(c, k, NULL);
    c->node[i].primary = false;
    return j;
}

pid_t redis_cluster_reshard_start(redis_cluster_t *c, int from, int to,
                                  int nslots)
{
    char addr[32], n[16], log[400];
    const char *argv[16];

    if (from < 0 || to < 0 || from >= c->nnodes || to >= c->nnodes ||
        !alive(c, from) || !alive(c, to))
        return -1;
    snprintf(addr, sizeof addr, "127.0.0.1:%d", c->node[to].port);
    snprintf(n, sizeof n, "%d", nslots);
    argv[0] = "redis-cli";
    argv[1] = "--cluster";
    argv[2] = "reshard";
    argv[3] = addr;
    argv[4] = "--cluster-from";
    argv[5] = c->node[from].id;
    argv[6] = "--cluster-to";
    argv[7] = c->node[to].id;
    argv[8] = "--cluster-slots";
    argv[9] = n;
    argv[10] = "--cluster-yes";
    argv[11] = NULL;
    snprintf(log, sizeof log, "%s/reshard.log", c->node[0].srv.dir);
    return spawn_logged(argv, log);
}

int redis_cluster_reshard(redis_cluster_t *c, int from, int to, int nslots,
                          long timeout_ms)
{
    long deadline = now_ms() + timeout_ms;
    pid_t pid = redis_cluster_reshard_start(c, from, to, nslots);
    int rc;
    char log[400];

    if (pid < 0)
        return -1;
    rc = redis_cluster_wait_child(pid, timeout_ms);
    if (rc != 0) {
        snprintf(log, sizeof log, "%s/reshard.log", c->node[0].srv.dir);
        fprintf(stderr, "redis_cluster: reshard exited with %d\n", rc);
        print_file(log);
        return -1;
    }
    return redis_cluster_wait_ok(c, deadline - now_ms() > 0
                                        ? deadline - now_ms() : 1);
}

/* ------------------------------------------------------------------------
 * Blocking commands that follow redirections
 * ------------------------------------------------------------------------ */

/* Sends a formatted command to node i (ASKING first when `asking`). */
static redisReply *send_to(const redis_cluster_t *c, int i, const char *cmd,
                           size_t len, bool asking)
{
    redisContext *ctx = redis_cluster_connect(c, i);
    redisReply *r = NULL;
    void *reply = NULL;

    if (ctx == NULL)
        return NULL;
    if (asking)
        redisAppendCommand(ctx, "ASKING");
    redisAppendFormattedCommand(ctx, cmd, len);
    if (asking && redisGetReply(ctx, &reply) == REDIS_OK)
        freeReplyObject(reply);
    if (redisGetReply(ctx, &reply) == REDIS_OK)
        r = reply;
    else
        fprintf(stderr, "redis_cluster: node %d: %s\n", i, ctx->errstr);
    redisFree(ctx);
    return r;
}

redisReply *redis_cluster_vcmd(redis_cluster_t *c, const char *fmt,
                               va_list ap)
{
    char *cmd = NULL;
    int len = redisvFormatCommand(&cmd, fmt, ap), i, hops;
    redisReply *r = NULL;
    bool asking = false;

    if (len < 0)
        return NULL;
    if (strncasecmp(fmt, "FUNCTION", 8) == 0) {
        int prim[REDIS_CLUSTER_NODES], n = redis_cluster_primaries(c, prim);
        for (i = 0; i < n; i++) {
            freeReplyObject(r);
            r = send_to(c, prim[i], cmd, (size_t)len, false);
        }
        redisFreeCommand(cmd);
        return r;
    }
    for (i = 0; i < c->nnodes && !alive(c, i); i++)
        ;
    for (hops = 0; i < c->nnodes && hops < 8; hops++) {
        const char *colon;
        r = send_to(c, i, cmd, (size_t)len, asking);
        if (r == NULL || r->type != REDIS_REPLY_ERROR ||
            (strncmp(r->str, "MOVED ", 6) != 0 &&
             strncmp(r->str, "ASK ", 4) != 0))
            break;
        asking = r->str[1] == 'S';
        colon = strrchr(r->str, ':');
        i = colon != NULL ? index_of_port(c, atoll(colon + 1)) : -1;
        freeReplyObject(r);
        r = NULL;
        if (i < 0)
            break;
    }
    redisFreeCommand(cmd);
    return r;
}

redisReply *redis_cluster_cmd(redis_cluster_t *c, const char *fmt, ...)
{
    va_list ap;
    redisReply *r;

    va_start(ap, fmt);
    r = redis_cluster_vcmd(c, fmt, ap);
    va_end(ap);
    return r;
}
