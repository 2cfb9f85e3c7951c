/*
 * postgres_server.c -- test harness: a real PostgreSQL server per test
 * (see postgres_server.h).
 *
 * The postmaster runs in its own process group (setsid), so a SIGKILL
 * can take its backends with it, as a machine crash would; it gets
 * SIGKILL when the test process dies (PR_SET_PDEATHSIG).
 */
#include "postgres_server.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define READY_TIMEOUT_MS 30000
#define STOP_TIMEOUT_MS 10000

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void rm_tree(const char *path) {
    struct stat st;
    if (lstat(path, &st) < 0)
        return;
    if (!S_ISDIR(st.st_mode)) {
        unlink(path);
        return;
    }
    DIR *d = opendir(path);
    if (d != NULL) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            char sub[1024];
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            if (snprintf(sub, sizeof sub, "%s/%s", path, e->d_name) < (int)sizeof sub)
                rm_tree(sub);
        }
        closedir(d);
    }
    rmdir(path);
}

static void print_tail(const char *path) {
    char buf[3000];
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, size > (long)sizeof buf - 1 ? size - (long)sizeof buf + 1 : 0, SEEK_SET);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    fprintf(stderr, "postgres_server: end of %s:\n%s\n", path, buf);
}

/* The directory of initdb and postgres, into s->bindir. */
static int find_bindir(postgres_server_t *s) {
    FILE *p = popen("pg_config --bindir 2>/dev/null", "r");
    if (p != NULL) {
        char line[256] = "";
        if (fgets(line, sizeof line, p) != NULL) {
            line[strcspn(line, "\n")] = '\0';
            char probe[300];
            snprintf(probe, sizeof probe, "%s/initdb", line);
            if (access(probe, X_OK) == 0)
                snprintf(s->bindir, sizeof s->bindir, "%s", line);
        }
        pclose(p);
        if (s->bindir[0] != '\0')
            return 0;
    }
    glob_t g;
    if (glob("/usr/lib/postgresql/*/bin/initdb", 0, NULL, &g) == 0 && g.gl_pathc > 0) {
        /* the newest version: glob sorts, take the last */
        snprintf(s->bindir, sizeof s->bindir, "%s", g.gl_pathv[g.gl_pathc - 1]);
        s->bindir[strlen(s->bindir) - strlen("/initdb")] = '\0';
        globfree(&g);
        return 0;
    }
    if (access("/usr/local/bin/initdb", X_OK) == 0) {
        snprintf(s->bindir, sizeof s->bindir, "/usr/local/bin");
        return 0;
    }
    fprintf(stderr, "postgres_server: initdb not found (pg_config --bindir, "
                    "/usr/lib/postgresql/*/bin); install the `postgresql` package\n");
    return -1;
}

/* In the child: drop to the server's user, send output to `log`, exec. */
static void exec_as(const postgres_server_t *s, const char *log, char *const *argv,
                    bool own_group, pid_t parent) {
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
        _exit(126);
    if (own_group)
        setsid();
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (syscall(SYS_close_range, 3U, ~0U, 0U) < 0)
        for (int fd = 3; fd < 4096; fd++)
            close(fd);
    if (s->as_other) {
        if (setgroups(0, NULL) != 0 || setgid(s->gid) != 0 || setuid(s->uid) != 0) {
            fprintf(stderr, "postgres_server: cannot become uid %d: %s\n", (int)s->uid,
                    strerror(errno));
            _exit(125);
        }
    }
    int in = open("/dev/null", O_RDONLY);
    int out = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (in >= 0)
        dup2(in, STDIN_FILENO);
    if (out >= 0) {
        dup2(out, STDOUT_FILENO);
        dup2(out, STDERR_FILENO);
    }
    if (chdir(s->dir) != 0)
        _exit(124);
    execv(argv[0], argv);
    fprintf(stderr, "postgres_server: exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

static int run_initdb(postgres_server_t *s) {
    char prog[300], log[300];
    snprintf(prog, sizeof prog, "%s/initdb", s->bindir);
    snprintf(log, sizeof log, "%s/initdb.log", s->dir);
    char *argv[] = {prog, "-D", s->data, "-U", "postgres", "-A", "trust", "-E", "UTF8",
                    "--locale=C", "--no-sync", NULL};
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0)
        exec_as(s, log, argv, false, parent);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "postgres_server: initdb failed (status %d)\n", status);
        print_tail(log);
        return -1;
    }
    return 0;
}

static bool answers(const postgres_server_t *s) {
    return PQping(s->conninfo) == PQPING_OK;
}

/* Whether a live (not zombie) process of process group `pgrp` remains:
 * the backends of a killed postmaster are reparented, not reaped by us,
 * and hold its shared memory until they are gone. */
static bool group_alive(pid_t pgrp) {
    DIR *d = opendir("/proc");
    if (d == NULL)
        return false;
    bool alive = false;
    struct dirent *e;
    while (!alive && (e = readdir(d)) != NULL) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        char path[300], buf[512];
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        /* "pid (comm) state ppid pgrp ...": comm may hold anything, so
         * read after its last ')' */
        const char *rp = strrchr(buf, ')');
        char state;
        int ppid, grp;
        if (rp != NULL && sscanf(rp + 1, " %c %d %d", &state, &ppid, &grp) == 3 &&
            grp == (int)pgrp && state != 'Z')
            alive = true;
    }
    closedir(d);
    return alive;
}

static void end_process(postgres_server_t *s, int sig) {
    if (s->pid <= 0)
        return;
    if (sig == SIGKILL)
        kill(-s->pid, SIGKILL); /* the whole group: postmaster and backends */
    else
        kill(s->pid, sig);
    long deadline = now_ms() + STOP_TIMEOUT_MS;
    for (;;) {
        int status;
        pid_t w = waitpid(s->pid, &status, WNOHANG);
        if (w == s->pid || (w < 0 && errno != EINTR))
            break;
        if (now_ms() >= deadline) {
            fprintf(stderr, "postgres_server: pid %d ignored signal %d, SIGKILL\n",
                    (int)s->pid, sig);
            kill(-s->pid, SIGKILL);
            while (waitpid(s->pid, NULL, 0) < 0 && errno == EINTR)
                ;
            break;
        }
        sleep_ms(5);
    }
    if (sig == SIGKILL) {
        /* backends die with the group, but after the postmaster: a new
         * postmaster refuses to start while they still hold the old one's
         * shared memory ("pre-existing shared memory block is still in
         * use"), so wait until the last is gone */
        long gone_by = now_ms() + STOP_TIMEOUT_MS;
        while (group_alive(s->pid) && now_ms() < gone_by) {
            kill(-s->pid, SIGKILL);
            sleep_ms(5);
        }
        char pidfile[400];
        snprintf(pidfile, sizeof pidfile, "%s/postmaster.pid", s->data);
        unlink(pidfile);
    }
    s->pid = 0;
}

static int spawn(postgres_server_t *s) {
    char prog[300], log[300];
    snprintf(prog, sizeof prog, "%s/postgres", s->bindir);
    snprintf(log, sizeof log, "%s/postgres.log", s->dir);
    char port[16], listen[64];
    snprintf(port, sizeof port, "%d", s->port);
    snprintf(listen, sizeof listen, "listen_addresses=%s", s->port != 5432 ? "127.0.0.1" : "");
    char *argv[] = {prog, "-D", s->data, "-k", s->dir, "-p", port,
                    "-c", listen,
                    "-c", "fsync=off",
                    "-c", "synchronous_commit=off",
                    "-c", "full_page_writes=off",
                    "-c", "max_connections=60",
                    "-c", "shared_buffers=16MB",
                    "-c", "unix_socket_permissions=0777",
                    NULL};
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "postgres_server: fork: %s\n", strerror(errno));
        return -1;
    }
    if (pid == 0)
        exec_as(s, log, argv, true, parent);
    s->pid = pid;
    long deadline = now_ms() + READY_TIMEOUT_MS;
    for (;;) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            s->pid = 0;
            fprintf(stderr, "postgres_server: postgres exited during startup (status %d)\n",
                    status);
            print_tail(log);
            return -1;
        }
        if (answers(s))
            return 0;
        if (now_ms() >= deadline)
            break;
        sleep_ms(20);
    }
    fprintf(stderr, "postgres_server: no answer within %d ms on %s\n", READY_TIMEOUT_MS,
            s->dir);
    print_tail(log);
    end_process(s, SIGKILL);
    return -1;
}

/* A TCP port on 127.0.0.1 that was free a moment ago, or -1. */
static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    socklen_t len = sizeof a;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static int start(postgres_server_t *s, bool tcp);

int postgres_server_start(postgres_server_t *s) { return start(s, false); }

int postgres_server_start_tcp(postgres_server_t *s) { return start(s, true); }

static int start(postgres_server_t *s, bool tcp) {
    memset(s, 0, sizeof *s);
    s->port = 5432;
    if (tcp && (s->port = free_port()) <= 0) {
        fprintf(stderr, "postgres_server: no free TCP port\n");
        return -1;
    }
    if (find_bindir(s) != 0)
        return -1;
    s->uid = getuid();
    s->gid = getgid();
    if (geteuid() == 0) {
        struct passwd *pw = getpwnam("postgres");
        if (pw == NULL) {
            fprintf(stderr, "postgres_server: running as root and there is no `postgres` "
                            "user to run the server as (PostgreSQL refuses root)\n");
            return -1;
        }
        s->uid = pw->pw_uid;
        s->gid = pw->pw_gid;
        s->as_other = true;
    }
    snprintf(s->dir, sizeof s->dir, "/tmp/saga-pg-XXXXXX");
    if (mkdtemp(s->dir) == NULL) {
        fprintf(stderr, "postgres_server: mkdtemp: %s\n", strerror(errno));
        s->dir[0] = '\0';
        return -1;
    }
    if (s->as_other && chown(s->dir, s->uid, s->gid) != 0) {
        fprintf(stderr, "postgres_server: chown %s: %s\n", s->dir, strerror(errno));
        goto err;
    }
    chmod(s->dir, 0755);
    snprintf(s->data, sizeof s->data, "%s/data", s->dir);
    snprintf(s->conninfo, sizeof s->conninfo,
             "host=%s port=%d dbname=postgres user=postgres connect_timeout=5", s->dir,
             s->port);
    snprintf(s->url, sizeof s->url, "postgresql://postgres@/postgres?host=%s&port=%d",
             s->dir, s->port);
    if (run_initdb(s) != 0 || spawn(s) != 0)
        goto err;
    return 0;
err:
    rm_tree(s->dir);
    s->dir[0] = '\0';
    return -1;
}

void postgres_server_kill(postgres_server_t *s, int sig) { end_process(s, sig); }

int postgres_server_restart(postgres_server_t *s) {
    if (s->pid > 0)
        end_process(s, SIGINT);
    return spawn(s);
}

void postgres_server_stop(postgres_server_t *s) {
    if (s->dir[0] == '\0')
        return;
    end_process(s, SIGINT);
    rm_tree(s->dir);
    s->dir[0] = '\0';
}

PGconn *postgres_server_connect(const postgres_server_t *s) {
    PGconn *c = PQconnectdb(s->conninfo);
    if (c == NULL || PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "postgres_server: connect: %s", c ? PQerrorMessage(c) : "no memory\n");
        PQfinish(c);
        return NULL;
    }
    return c;
}

int postgres_exec(PGconn *c, const char *sql) {
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    int rc = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? 0 : -1;
    if (rc != 0)
        fprintf(stderr, "postgres_exec: %s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    return rc;
}

long postgres_long(PGconn *c, const char *sql) {
    PGresult *r = PQexec(c, sql);
    long v = -1;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0))
        v = strtol(PQgetvalue(r, 0, 0), NULL, 10);
    else if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fprintf(stderr, "postgres_long: %s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    return v;
}
