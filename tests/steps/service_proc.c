/*
 * service_proc.c -- the sample service as a test peer. See service_proc.h.
 */
#include "service_proc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <curl/curl.h>

void service_start(service_proc_t *s, const char *const *extra) {
    const char *build = getenv("SAGA_BUILD_DIR");
    cr_assert_not_null(build, "SAGA_BUILD_DIR is not set (run through ctest)");
    char prog[1024];
    snprintf(prog, sizeof(prog), "%s/bin/saga-sample-service", build);
    const char *argv[32] = {prog, "--port", "0"};
    int argc = 3;
    for (int i = 0; extra && extra[i] && argc < 31; i++)
        argv[argc++] = extra[i];
    argv[argc] = NULL;

    int out[2];
    cr_assert_eq(pipe(out), 0);
    pid_t parent = getpid();
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(1);
        dup2(out[1], 1);
        close(out[0]);
        close(out[1]);
        execv(prog, (char *const *)argv);
        fprintf(stderr, "cannot run %s: %s\n", prog, strerror(errno));
        _exit(127);
    }
    close(out[1]);
    char line[256];
    size_t n = 0;
    while (n + 1 < sizeof(line)) {
        struct pollfd p = {.fd = out[0], .events = POLLIN};
        int rc = poll(&p, 1, 5000);
        cr_assert(rc > 0, "the sample service did not print its port in 5 s");
        ssize_t k = read(out[0], line + n, 1);
        cr_assert(k == 1, "the sample service exited before listening");
        if (line[n] == '\n')
            break;
        n++;
    }
    line[n] = '\0';
    close(out[0]);
    cr_assert_eq(sscanf(line, "listening on 127.0.0.1:%d", &s->port), 1,
                 "unexpected first line: %s", line);
    s->pid = pid;
    snprintf(s->base, sizeof(s->base), "http://127.0.0.1:%d", s->port);
}

void service_stop(service_proc_t *s) {
    if (s->pid <= 0)
        return;
    kill(s->pid, SIGTERM);
    int st = 0;
    cr_assert_eq(waitpid(s->pid, &st, 0), s->pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "the sample service did not stop cleanly (status %d)", st);
    s->pid = 0;
}

static size_t on_data(char *p, size_t size, size_t n, void *ud) {
    FILE *f = ud;
    return fwrite(p, size, n, f);
}

json_t *service_request(service_proc_t *s, const char *method,
                        const char *path, const char *body) {
    char url[1024], *buf = NULL;
    size_t len = 0;
    snprintf(url, sizeof(url), "%s%s", s->base, path);
    FILE *f = open_memstream(&buf, &len);
    CURL *e = curl_easy_init();
    cr_assert_not_null(e);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, f);
    if (body != NULL)
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    CURLcode rc = curl_easy_perform(e);
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(e);
    fclose(f);
    cr_assert_eq(rc, CURLE_OK, "%s %s: %s", method, url, curl_easy_strerror(rc));
    cr_assert(status >= 200 && status <= 299, "%s %s: status %ld: %s", method,
              url, status, buf);
    json_error_t jerr;
    json_t *v = json_loadb(buf, len, JSON_DECODE_ANY, &jerr);
    cr_assert_not_null(v, "%s %s: not JSON: %s", method, url, buf);
    free(buf);
    return v;
}

json_t *service_get(service_proc_t *s, const char *path) {
    return service_request(s, "GET", path, NULL);
}

int service_connections(service_proc_t *s) {
    json_t *h = service_get(s, "/_health");
    int n = (int)json_integer_value(json_object_get(h, "connections"));
    json_decref(h);
    return n - 1;
}

int unused_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(fd >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t len = sizeof(a);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}
